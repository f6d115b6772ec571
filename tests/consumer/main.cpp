// A program outside tapegrad's tree, as a user writes it: the umbrella include, a training loop,
// printing and the tape as DOT; then the chapter's model through its own header, included the one
// way every public header is (<tapegrad/...>). Exit 0 when the fit recovers the line it was given
// and the model pools as the chapter says.
#include <cmath>
#include <iostream>

#include <tapegrad/models/nadaraya_watson.h>
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
  // Nadaraya-Watson with w = 0: equal logits, so each query gets the mean of its values.
  NWKernelRegression<double> model(0.0);
  Tensor<double> pooled = model.forward(tensor({0.0, 1.0}), tensor({{1.0, 2.0}, {0.0, 2.0}}),
                                        tensor({{4.0, 6.0}, {1.0, 3.0}}));
  std::cout << "pooled = " << pooled << "\n";
  const bool fitted =
      std::abs(w.value()(0, 0) - 2.0) < 1e-6 && std::abs(b.value()(0) + 1.0) < 1e-6 &&
      std::abs(pooled.value()(0) - 5.0) < 1e-12 && std::abs(pooled.value()(1) - 2.0) < 1e-12;
  std::cout << (fitted ? "consumer: ok\n" : "consumer: FAILED to fit\n");
  return fitted ? 0 : 1;
}
