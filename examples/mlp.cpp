// A 1-32-1 tanh MLP trained with SGD and momentum to fit a bump, y = 2 exp(-x^2) - 1 on [-2, 2).
// Exits 0 when the final mean squared error is below 1e-3.
#include <cmath>
#include <iostream>

#include "tapegrad.h"

using namespace tapegrad;

struct MLP {
  // Weights ~ N(0, 1 / fan_in) (LeCun), biases zero; all four are leaves that require grad.
  Tensor<double> W1 = randn({1, 32}, true), b1 = zeros({32}, true);
  Tensor<double> W2 = randn({32, 1}, true), b2 = zeros({1}, true);
  MLP() { W2.mutable_value() /= std::sqrt(32.0); }  // in place, like torch's no_grad() scaling

  // x (n, 1) -> (n, 1)
  Tensor<double> operator()(const Tensor<double>& x) const {
    Tensor<double> h = tanh(matmul(x, W1) + b1);  // (n, 32)
    return matmul(h, W2) + b2;
  }
  std::vector<Tensor<double>> parameters() const { return {W1, b1, W2, b2}; }
};

int main() {
  manual_seed(0);
  Tensor<double> x = reshape(arange<double>(-2.0, 2.0, 0.05), {-1, 1});  // (80, 1)
  Tensor<double> y = exp(-square(x)) * 2.0 - 1.0;

  MLP net;
  SGD<double> opt(net.parameters(), /*lr=*/0.05, /*momentum=*/0.9);
  double last = 0;
  for (int step = 1; step <= 3000; ++step) {
    Tensor<double> loss = mse_loss(net(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    last = loss.item();
    if (step % 500 == 0) std::cout << "step " << step << ", loss " << last << "\n";
  }
  NoGradGuard no_grad;  // evaluation: nothing recorded
  std::cout << "f(0) = " << net(zeros({1, 1})) << "\n";
  std::cout << "final loss " << last << (last < 1e-3 ? " (below 1e-3)\n" : " (too high)\n");
  return last < 1e-3 ? 0 : 1;
}
