// The elementwise ops. exp (and sigmoid) use the kernels' exp (ops/kernels/exp.h), which vectorises
// without -ffast-math; log and tanh are glibc's scalar functions. inf and NaN follow IEEE.
#include "ops/elementwise.h"

#include <cmath>

#include "ops/common.h"
#include "ops/kernels/elementwise.h"
#include "ops/kernels/exp.h"
#include "ops/kernels/reduction.h"

namespace tapegrad {

namespace {

using kernels::map;
using kernels::zip;

// y = f(x) elementwise; backward x: grad * dydx(x, y). Every unary op is one line of forward math
// and one line of derivative.
template <class T, class Forward, class Derivative>
Tensor<T> unary_op(const std::string& op, const Tensor<T>& x, Forward f, Derivative dydx) {
  check_defined(op, x);
  return record<T>(op, map(x.value(), f), {x}, [x, op, dydx](const Node<T>& out) {
    // The derivative evaluated at (x, y) and multiplied by grad, in one pass.
    xt::xarray<T> g = xt::xarray<T>::from_shape(out.grad.shape());
    kernels::zip3_into(out.grad.data(), x.value().data(), out.value.data(), g.data(), g.size(),
                       [dydx](T gi, T xi, T yi) { return gi * dydx(xi, yi); });
    accumulate_grad(x, std::move(g), op);
  });
}

// sum_to_shape(g * x, shape): the gradient of a broadcast product. When the input was one element
// (the chapter's w) it is a dot product, computed without the (n, m) temporary.
template <class T>
xt::xarray<T> sum_product_to_shape(const xt::xarray<T>& g, const xt::xarray<T>& x,
                                   const Shape& shape) {
  if (numel(shape) == 1 && g.size() == x.size()) {
    xt::xarray<T> r = xt::zeros<T>(shape);
    *r.data() = static_cast<T>(kernels::dot(g.data(), x.data(), g.size()));
    return r;
  }
  return sum_to_shape(zip(g, x, [](T u, T v) { return u * v; }), shape);
}

template <class T>
void check_binary(const std::string& op, const Tensor<T>& a, const Tensor<T>& b) {
  check_defined(op, a);
  check_defined(op, b);
  with_names([&] { return broadcast_shapes(op, a.shape(), b.shape()); }, a, b);
}

}  // namespace

// a: grad        b: grad
template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("add", a, b);
  return record<T>("add", zip(a.value(), b.value(), [](T x, T y) { return x + y; }), {a, b},
                   [a, b](const Node<T>& out) {
                     if (a.requires_grad())
                       accumulate_grad(a, sum_to_shape(out.grad, a.shape()), "add");
                     if (b.requires_grad())
                       accumulate_grad(b, sum_to_shape(out.grad, b.shape()), "add");
                   });
}

// a: grad        b: -grad
template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("sub", a, b);
  return record<T>(
      "sub", zip(a.value(), b.value(), [](T x, T y) { return x - y; }), {a, b},
      [a, b](const Node<T>& out) {
        if (a.requires_grad()) accumulate_grad(a, sum_to_shape(out.grad, a.shape()), "sub");
        if (b.requires_grad())
          accumulate_grad(b, sum_to_shape(map(out.grad, [](T g) { return -g; }), b.shape()), "sub");
      });
}

// a: grad * b    b: grad * a
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("mul", a, b);
  return record<T>(
      "mul", zip(a.value(), b.value(), [](T x, T y) { return x * y; }), {a, b},
      [a, b](const Node<T>& out) {
        if (a.requires_grad())
          accumulate_grad(a, sum_product_to_shape(out.grad, b.value(), a.shape()), "mul");
        if (b.requires_grad())
          accumulate_grad(b, sum_product_to_shape(out.grad, a.value(), b.shape()), "mul");
      });
}

// a: grad / b    b: -grad * a / b^2  (= -grad * out / b)
template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("div", a, b);
  return record<T>(
      "div", zip(a.value(), b.value(), [](T x, T y) { return x / y; }), {a, b},
      [a, b](const Node<T>& out) {
        if (a.requires_grad())
          accumulate_grad(
              a, sum_to_shape(zip(out.grad, b.value(), [](T g, T y) { return g / y; }), a.shape()),
              "div");
        if (b.requires_grad()) {
          const xt::xarray<T> g_out = zip(out.grad, out.value, [](T g, T o) { return -g * o; });
          accumulate_grad(
              b, sum_to_shape(zip(g_out, b.value(), [](T u, T y) { return u / y; }), b.shape()),
              "div");
        }
      });
}

// self: grad
template <class T>
Tensor<T> add(const Tensor<T>& a, scalar_t<T> s) {
  return unary_op<T>(
      "add", a, [s](T x) { return x + s; }, [](T, T) { return T(1); });
}

// self: grad * s
template <class T>
Tensor<T> mul(const Tensor<T>& a, scalar_t<T> s) {
  return unary_op<T>(
      "mul", a, [s](T x) { return x * s; }, [s](T, T) { return s; });
}

// s / a.  self: -grad * s / a^2  (= -grad * result / a)
template <class T>
Tensor<T> rdiv(scalar_t<T> s, const Tensor<T>& a) {
  return unary_op<T>(
      "rdiv", a, [s](T x) { return s / x; }, [](T x, T y) { return -y / x; });
}

// self: -grad
template <class T>
Tensor<T> neg(const Tensor<T>& a) {
  return unary_op<T>(
      "neg", a, [](T x) { return -x; }, [](T, T) { return T(-1); });
}

// self: grad * p * self^(p - 1)      (0 where p == 0)
template <class T>
Tensor<T> pow(const Tensor<T>& a, scalar_t<T> p) {
  if (p == T(2))  // exact, and the chapter's hot path (square)
    return unary_op<T>(
        "pow", a, [](T x) { return x * x; }, [](T x, T) { return T(2) * x; });
  return unary_op<T>(
      "pow", a, [p](T x) { return std::pow(x, p); },
      [p](T x, T) { return p == T(0) ? T(0) : p * std::pow(x, p - T(1)); });
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
      "sqrt", a, [](T x) { return std::sqrt(x); }, [](T, T y) { return T(0.5) / y; });
}

// self: grad * result   (exp flushes results below the smallest normal to 0: ops/kernels/exp.h)
template <class T>
Tensor<T> exp(const Tensor<T>& a) {
  return unary_op<T>(
      "exp", a, [](T x) { return kernels::fast_exp(x); }, [](T, T y) { return y; });
}

// self: grad / self
template <class T>
Tensor<T> log(const Tensor<T>& a) {
  return unary_op<T>(
      "log", a, [](T x) { return std::log(x); }, [](T x, T) { return T(1) / x; });
}

// self: grad * sign(self)      (sign(0) = 0, as torch)
template <class T>
Tensor<T> abs(const Tensor<T>& a) {
  return unary_op<T>(
      "abs", a, [](T x) { return std::abs(x); },
      [](T x, T) { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)); });
}

// self: grad * (self > 0)
template <class T>
Tensor<T> relu(const Tensor<T>& a) {
  return unary_op<T>(
      "relu", a, [](T x) { return x > T(0) ? x : T(0); },
      [](T x, T) { return x > T(0) ? T(1) : T(0); });
}

// self: grad * (1 - result^2)
template <class T>
Tensor<T> tanh(const Tensor<T>& a) {
  return unary_op<T>(
      "tanh", a, [](T x) { return std::tanh(x); }, [](T, T y) { return T(1) - y * y; });
}

// self: grad * result * (1 - result)
template <class T>
Tensor<T> sigmoid(const Tensor<T>& a) {
  return unary_op<T>(
      "sigmoid", a, [](T x) { return T(1) / (T(1) + kernels::fast_exp(-x)); },
      [](T, T y) { return y * (T(1) - y); });
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
