// The README's examples, compiled so they cannot rot: y = x^2 + 3x and its derivative, then a
// custom op (sin) with its own backward, proved by gradcheck.
#include <iostream>

#include <xtensor/xmath.hpp>

#include "tapegrad.h"

using namespace tapegrad;

// self: grad * cos(self)
Tensor<double> my_sin(const Tensor<double>& x) {
  return record<double>(
      "my_sin", xt::sin(x.value()), {x}, [x](const xt::xarray<double>& grad, const Node<double>&) {
        accumulate_grad(x, xt::xarray<double>(grad * xt::cos(x.value())), "my_sin");
      });
}

int main() {
  Tensor<double> x = scalar<double>(2.0, /*requires_grad=*/true);
  Tensor<double> y = x * x + 3.0 * x;  // each op appends one entry to the tape
  y.backward();                        // walks the tape in reverse: dy/dx = 2x + 3
  std::cout << "y = " << y.item() << ", dy/dx = " << x.grad()() << "\n";  // y = 10, dy/dx = 7

  auto z = tensor<double>(xt::xarray<double>{0.3, -1.2, 2.0}, true);
  GradcheckResult r =
      gradcheck([](const std::vector<Tensor<double>>& in) { return my_sin(in[0]); }, {z});
  std::cout << r << "\n";
  return r.ok ? 0 : 1;
}
