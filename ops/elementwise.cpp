#include "ops/elementwise.h"

#include <cmath>

#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "ops/common.h"

namespace tapegrad {

namespace {

// y = f(x) elementwise. Backward x: grad * dydx(x, y): every unary op is one forward expression
// and one local derivative.
template <class T, class Forward, class Derivative>
Tensor<T> unary_op(const std::string& op, const Tensor<T>& x, Forward f, Derivative dydx) {
  check_defined(op, x);
  xt::xarray<T> y = f(x.value());
  return record<T>(op, std::move(y), {x}, [x, op, dydx](const Node<T>& out) {
    accumulate_grad(x, xt::xarray<T>(out.grad * dydx(x.value(), out.value)), op);
  });
}

template <class T>
void check_binary(const std::string& op, const Tensor<T>& a, const Tensor<T>& b) {
  check_defined(op, a);
  check_defined(op, b);
  broadcast_shapes(op, a.shape(), b.shape());  // throws with both shapes
}

}  // namespace

// a: grad        b: grad
template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("add", a, b);
  return record<T>("add", a.value() + b.value(), {a, b}, [a, b](const Node<T>& out) {
    if (a.requires_grad()) accumulate_grad(a, sum_to_shape(out.grad, a.shape()), "add");
    if (b.requires_grad()) accumulate_grad(b, sum_to_shape(out.grad, b.shape()), "add");
  });
}

// a: grad        b: -grad
template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("sub", a, b);
  return record<T>("sub", a.value() - b.value(), {a, b}, [a, b](const Node<T>& out) {
    if (a.requires_grad()) accumulate_grad(a, sum_to_shape(out.grad, a.shape()), "sub");
    if (b.requires_grad())
      accumulate_grad(b, sum_to_shape(xt::xarray<T>(-out.grad), b.shape()), "sub");
  });
}

// a: grad * b    b: grad * a
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("mul", a, b);
  return record<T>("mul", a.value() * b.value(), {a, b}, [a, b](const Node<T>& out) {
    if (a.requires_grad())
      accumulate_grad(a, sum_to_shape(xt::xarray<T>(out.grad * b.value()), a.shape()), "mul");
    if (b.requires_grad())
      accumulate_grad(b, sum_to_shape(xt::xarray<T>(out.grad * a.value()), b.shape()), "mul");
  });
}

// a: grad / b    b: -grad * a / b^2  (= -grad * out / b)
template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("div", a, b);
  return record<T>("div", a.value() / b.value(), {a, b}, [a, b](const Node<T>& out) {
    if (a.requires_grad())
      accumulate_grad(a, sum_to_shape(xt::xarray<T>(out.grad / b.value()), a.shape()), "div");
    if (b.requires_grad())
      accumulate_grad(b, sum_to_shape(xt::xarray<T>(-out.grad * out.value / b.value()), b.shape()),
                      "div");
  });
}

// self: grad
template <class T>
Tensor<T> add(const Tensor<T>& a, scalar_t<T> s) {
  return unary_op<T>(
      "add", a, [s](const auto& x) { return xt::xarray<T>(x + s); },
      [](const auto& x, const auto&) { return xt::ones_like(x); });
}

// self: grad * s
template <class T>
Tensor<T> mul(const Tensor<T>& a, scalar_t<T> s) {
  return unary_op<T>(
      "mul", a, [s](const auto& x) { return xt::xarray<T>(x * s); },
      [s](const auto& x, const auto&) { return xt::ones_like(x) * s; });
}

// s / a.  self: -grad * s / a^2  (= -grad * out / a)
template <class T>
Tensor<T> rdiv(scalar_t<T> s, const Tensor<T>& a) {
  return unary_op<T>(
      "rdiv", a, [s](const auto& x) { return xt::xarray<T>(s / x); },
      [](const auto& x, const auto& y) { return -y / x; });
}

// self: -grad
template <class T>
Tensor<T> neg(const Tensor<T>& a) {
  return unary_op<T>(
      "neg", a, [](const auto& x) { return xt::xarray<T>(-x); },
      [](const auto& x, const auto&) { return -xt::ones_like(x); });
}

// self: grad * p * self^(p - 1)      (0 where p == 0)
template <class T>
Tensor<T> pow(const Tensor<T>& a, scalar_t<T> p) {
  return unary_op<T>(
      "pow", a,
      [p](const auto& x) {
        if (p == T(2)) return xt::xarray<T>(x * x);  // exact, and the chapter's hot path
        return xt::xarray<T>(xt::pow(x, p));
      },
      [p](const auto& x, const auto&) {
        if (p == T(0)) return xt::xarray<T>(xt::zeros_like(x));
        if (p == T(2)) return xt::xarray<T>(T(2) * x);
        return xt::xarray<T>(p * xt::pow(x, p - T(1)));
      });
}

// square(x) = pow(x, 2): self: grad * 2 * self
template <class T>
Tensor<T> square(const Tensor<T>& a) {
  return pow(a, T(2));
}

// self: grad / (2 * result)
template <class T>
Tensor<T> sqrt(const Tensor<T>& a) {
  return unary_op<T>(
      "sqrt", a, [](const auto& x) { return xt::xarray<T>(xt::sqrt(x)); },
      [](const auto&, const auto& y) { return T(0.5) / y; });
}

// self: grad * result
template <class T>
Tensor<T> exp(const Tensor<T>& a) {
  return unary_op<T>(
      "exp", a, [](const auto& x) { return xt::xarray<T>(xt::exp(x)); },
      [](const auto&, const auto& y) { return y; });
}

// self: grad / self
template <class T>
Tensor<T> log(const Tensor<T>& a) {
  return unary_op<T>(
      "log", a, [](const auto& x) { return xt::xarray<T>(xt::log(x)); },
      [](const auto& x, const auto&) { return T(1) / x; });
}

// self: grad * sign(self)      (sign(0) = 0, as torch)
template <class T>
Tensor<T> abs(const Tensor<T>& a) {
  return unary_op<T>(
      "abs", a, [](const auto& x) { return xt::xarray<T>(xt::abs(x)); },
      [](const auto& x, const auto&) { return xt::sign(x); });
}

// self: grad * (self > 0)
template <class T>
Tensor<T> relu(const Tensor<T>& a) {
  return unary_op<T>(
      "relu", a, [](const auto& x) { return xt::xarray<T>(xt::maximum(x, T(0))); },
      [](const auto& x, const auto&) { return xt::cast<T>(x > T(0)); });
}

// self: grad * (1 - result^2)
template <class T>
Tensor<T> tanh(const Tensor<T>& a) {
  return unary_op<T>(
      "tanh", a, [](const auto& x) { return xt::xarray<T>(xt::tanh(x)); },
      [](const auto&, const auto& y) { return T(1) - y * y; });
}

// self: grad * result * (1 - result)
template <class T>
Tensor<T> sigmoid(const Tensor<T>& a) {
  return unary_op<T>(
      "sigmoid", a, [](const auto& x) { return xt::xarray<T>(T(1) / (T(1) + xt::exp(-x))); },
      [](const auto&, const auto& y) { return y * (T(1) - y); });
}

#define TAPEGRAD_INSTANTIATE(T)                               \
  template Tensor<T> add(const Tensor<T>&, const Tensor<T>&); \
  template Tensor<T> sub(const Tensor<T>&, const Tensor<T>&); \
  template Tensor<T> mul(const Tensor<T>&, const Tensor<T>&); \
  template Tensor<T> div(const Tensor<T>&, const Tensor<T>&); \
  template Tensor<T> add(const Tensor<T>&, scalar_t<T>);      \
  template Tensor<T> mul(const Tensor<T>&, scalar_t<T>);      \
  template Tensor<T> rdiv(scalar_t<T>, const Tensor<T>&);     \
  template Tensor<T> neg(const Tensor<T>&);                   \
  template Tensor<T> pow(const Tensor<T>&, scalar_t<T>);      \
  template Tensor<T> square(const Tensor<T>&);                \
  template Tensor<T> sqrt(const Tensor<T>&);                  \
  template Tensor<T> exp(const Tensor<T>&);                   \
  template Tensor<T> log(const Tensor<T>&);                   \
  template Tensor<T> abs(const Tensor<T>&);                   \
  template Tensor<T> relu(const Tensor<T>&);                  \
  template Tensor<T> tanh(const Tensor<T>&);                  \
  template Tensor<T> sigmoid(const Tensor<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
