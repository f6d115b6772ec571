// A program outside tapegrad's tree, as a user writes it: one include, a training loop, printing
// and the tape as DOT. Exit 0 when the fit recovers the line it was given.
#include <cmath>
#include <iostream>

#include <tapegrad/tapegrad.h>

using namespace tapegrad;

int main() {
  manual_seed(42);
  Tensor<double> x = randn({32, 1});
  Tensor<double> y = x * 2.0 - 1.0;
  Tensor<double> w = zeros({1, 1}, true), b = zeros({1}, true);
  SGD<double> opt({w, b}, /*lr=*/0.1);
  Tensor<double> loss;
  for (int epoch = 0; epoch < 200; ++epoch) {
    loss = mse_loss(matmul(x, w) + b, y);
    opt.zero_grad();
    loss.backward(/*retain_graph=*/epoch == 199);
    opt.step();
  }
  std::cout << "w = " << w << "\nb = " << b << "\nloss = " << loss << "\n";
  std::cout << "graph of the last step: " << to_dot(loss).size() << " bytes of DOT\n";
  const bool fitted = std::abs(w.value()(0, 0) - 2.0) < 1e-6 && std::abs(b.value()(0) + 1.0) < 1e-6;
  std::cout << (fitted ? "consumer: ok\n" : "consumer: FAILED to fit\n");
  return fitted ? 0 : 1;
}
