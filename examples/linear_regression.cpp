// Linear regression with SGD, written as in PyTorch: random data from a seed, parameters that
// require grad, and the loop zero_grad / forward / backward / step.
// Fits y = X w + b to 200 noisy samples of a known line and exits 0 when it recovers it.
#include <cmath>
#include <iostream>

#include "tapegrad.h"

using namespace tapegrad;

int main() {
  manual_seed(0);
  const Tensor<double> true_w = tensor({{2.0}, {-3.4}, {0.5}});  // (3, 1)
  const double true_b = 4.2;
  Tensor<double> X = randn({200, 3});
  Tensor<double> y = matmul(X, true_w) + true_b + randn({200, 1}) * 0.01;

  Tensor<double> w = zeros({3, 1}, /*requires_grad=*/true);
  Tensor<double> b = zeros({1}, /*requires_grad=*/true);
  w.set_name("w");  // names appear in printing, in to_dot and in error messages
  b.set_name("b");
  SGD<double> opt({w, b}, /*lr=*/0.1);

  for (int epoch = 1; epoch <= 100; ++epoch) {
    Tensor<double> loss = mse_loss(matmul(X, w) + b, y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (epoch % 25 == 0) std::cout << "epoch " << epoch << ", loss " << loss.item() << "\n";
  }
  std::cout << w << "\n" << b << "\n";

  const double w_error = xt::amax(xt::abs(w.value() - true_w.value()))();
  const double b_error = std::abs(b.item() - true_b);
  std::cout << "max |w - true_w| = " << w_error << ", |b - true_b| = " << b_error << "\n";
  return w_error < 0.01 && b_error < 0.01 ? 0 : 1;
}
