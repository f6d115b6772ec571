// The elementwise ops. exp (and sigmoid) use the kernels' exp (ops/kernels/exp.h), which vectorises
// without -ffast-math; log and tanh are glibc's scalar functions. inf and NaN follow IEEE.
#include "ops/elementwise.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <xtensor/xoperation.hpp>

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
  return record<T>(
      op, map(x.value(), f), {x}, [x, op, dydx](const xt::xarray<T>& grad, const Node<T>& out) {
        // The derivative evaluated at (x, y) and multiplied by grad, in one pass.
        xt::xarray<T> g = xt::xarray<T>::from_shape(grad.shape());
        kernels::zip3_into(grad.data(), x.value().data(), out.value.data(), g.data(), g.size(),
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
                   [a, b](const xt::xarray<T>& grad, const Node<T>&) {
                     if (a.requires_grad())
                       accumulate_grad(a, sum_to_shape(grad, a.shape()), "add");
                     if (b.requires_grad())
                       accumulate_grad(b, sum_to_shape(grad, b.shape()), "add");
                   });
}

// a: grad        b: -grad
template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("sub", a, b);
  return record<T>("sub", zip(a.value(), b.value(), [](T x, T y) { return x - y; }), {a, b},
                   [a, b](const xt::xarray<T>& grad, const Node<T>&) {
                     if (a.requires_grad())
                       accumulate_grad(a, sum_to_shape(grad, a.shape()), "sub");
                     if (b.requires_grad())
                       accumulate_grad(
                           b, sum_to_shape(map(grad, [](T g) { return -g; }), b.shape()), "sub");
                   });
}

// a: grad * b    b: grad * a
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("mul", a, b);
  return record<T>("mul", zip(a.value(), b.value(), [](T x, T y) { return x * y; }), {a, b},
                   [a, b](const xt::xarray<T>& grad, const Node<T>&) {
                     if (a.requires_grad())
                       accumulate_grad(a, sum_product_to_shape(grad, b.value(), a.shape()), "mul");
                     if (b.requires_grad())
                       accumulate_grad(b, sum_product_to_shape(grad, a.value(), b.shape()), "mul");
                   });
}

// a: grad / b    b: -grad * a / b^2  (= -grad * out / b)
template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  check_binary("div", a, b);
  return record<T>(
      "div", zip(a.value(), b.value(), [](T x, T y) { return x / y; }), {a, b},
      [a, b](const xt::xarray<T>& grad, const Node<T>& out) {
        if (a.requires_grad())
          accumulate_grad(
              a, sum_to_shape(zip(grad, b.value(), [](T g, T y) { return g / y; }), a.shape()),
              "div");
        if (b.requires_grad()) {
          const xt::xarray<T> g_out = zip(grad, out.value, [](T g, T o) { return -g * o; });
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

// self: grad * cos(self)
template <class T>
Tensor<T> sin(const Tensor<T>& a) {
  return unary_op<T>(
      "sin", a, [](T x) { return std::sin(x); }, [](T x, T) { return std::cos(x); });
}

// self: grad * -sin(self)
template <class T>
Tensor<T> cos(const Tensor<T>& a) {
  return unary_op<T>(
      "cos", a, [](T x) { return std::cos(x); }, [](T x, T) { return -std::sin(x); });
}

// self: grad * (min <= self <= max), a missing bound always satisfied
template <class T>
Tensor<T> clamp(const Tensor<T>& a, std::optional<scalar_t<T>> min,
                std::optional<scalar_t<T>> max) {
  if (!min && !max)
    throw std::invalid_argument("clamp: at least one of min and max must be given (input " +
                                (a.defined() ? describe(a) : std::string("undefined")) + ")");
  const T lo = min ? T(*min) : -std::numeric_limits<T>::infinity();
  const T hi = max ? T(*max) : std::numeric_limits<T>::infinity();
  // std::max(x, lo) keeps a NaN x (the comparison is false), as torch propagates NaN.
  return unary_op<T>(
      "clamp", a, [lo, hi](T x) { return std::min(std::max(x, lo), hi); },
      [lo, hi](T x, T) { return x >= lo && x <= hi ? T(1) : T(0); });
}

namespace {

// maximum (sign +1) or minimum (sign -1) of a and b with broadcasting. The input that wins gets
// grad; on a tie each gets grad / 2. A NaN on either side gives NaN, as in torch.
template <class T>
Tensor<T> extremum(const std::string& op, const Tensor<T>& a, const Tensor<T>& b, T sign) {
  check_binary(op, a, b);
  return record<T>(op,
                   zip(a.value(), b.value(),
                       [sign](T x, T y) { return sign * x >= sign * y || std::isnan(x) ? x : y; }),
                   {a, b}, [a, b, op, sign](const xt::xarray<T>& grad, const Node<T>&) {
                     // The share of grad that goes to a: 1 where a wins, 1/2 on a tie, 0 where b wins.
                     const xt::xarray<T> share = zip(a.value(), b.value(), [sign](T x, T y) {
                       return x == y ? T(0.5) : (sign * x > sign * y ? T(1) : T(0));
                     });
                     if (a.requires_grad())
                       accumulate_grad(a, sum_product_to_shape(grad, share, a.shape()), op);
                     if (b.requires_grad()) {
                       const xt::xarray<T> rest = map(share, [](T s) { return T(1) - s; });
                       accumulate_grad(b, sum_product_to_shape(grad, rest, b.shape()), op);
                     }
                   });
}

}  // namespace

// self: where(self == other, grad / 2, grad).masked_fill_(self > other, 0)
// other: where(self == other, grad / 2, grad).masked_fill_(self < other, 0)
template <class T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b) {
  return extremum("minimum", a, b, T(-1));
}

// self: where(self == other, grad / 2, grad).masked_fill_(self < other, 0)
// other: where(self == other, grad / 2, grad).masked_fill_(self > other, 0)
template <class T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b) {
  return extremum("maximum", a, b, T(1));
}

template <class T>
Tensor<T> zeros_like(const Tensor<T>& a, bool requires_grad) {
  check_defined("zeros_like", a);
  return zeros<T>(a.shape(), requires_grad);
}

template <class T>
Tensor<T> ones_like(const Tensor<T>& a, bool requires_grad) {
  check_defined("ones_like", a);
  return ones<T>(a.shape(), requires_grad);
}

// self: grad.to(self.dtype)
template <class U, class T>
Tensor<U> to(const Tensor<T>& x) {
  check_defined("to", x);
  if constexpr (std::is_same_v<U, T>) {
    return x;
  } else {
    return record_cast<U, T>("to", xt::xarray<U>(xt::cast<U>(x.value())), x,
                             [x](const xt::xarray<U>& grad, const Node<U>&) {
                               accumulate_grad(x, xt::xarray<T>(xt::cast<T>(grad)), "to");
                             });
  }
}

namespace {

// A comparison of a and b (broadcast), as a constant mask.
template <class T, class F>
xt::xarray<bool> compare(const std::string& op, const Tensor<T>& a, const Tensor<T>& b, F f) {
  check_binary(op, a, b);
  const Shape s = broadcast_shapes(op, a.shape(), b.shape());
  const xt::xarray<T> x = kernels::broadcast_to(a.value(), a.shape(), s),
                      y = kernels::broadcast_to(b.value(), b.shape(), s);
  xt::xarray<bool> m = xt::xarray<bool>::from_shape(s);
  for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = f(x.data()[i], y.data()[i]);
  return m;
}

template <class T, class F>
xt::xarray<bool> compare(const std::string& op, const Tensor<T>& a, T s, F f) {
  check_defined(op, a);
  xt::xarray<bool> m = xt::xarray<bool>::from_shape(a.value().shape());
  for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = f(a.value().data()[i], s);
  return m;
}

}  // namespace

#define TAPEGRAD_COMPARISON(name, expr)                                         \
  template <class T>                                                            \
  xt::xarray<bool> name(const Tensor<T>& a, const Tensor<T>& b) {               \
    return compare(#name, a, b, [](T x, T y) { return expr; });                 \
  }                                                                             \
  template <class T>                                                            \
  xt::xarray<bool> name(const Tensor<T>& a, scalar_t<T> s) {                    \
    return compare(#name, a, static_cast<T>(s), [](T x, T y) { return expr; }); \
  }
TAPEGRAD_COMPARISON(gt, x > y)
TAPEGRAD_COMPARISON(lt, x < y)
TAPEGRAD_COMPARISON(ge, x >= y)
TAPEGRAD_COMPARISON(le, x <= y)
TAPEGRAD_COMPARISON(eq, x == y)
TAPEGRAD_COMPARISON(ne, x != y)
#undef TAPEGRAD_COMPARISON

// input: where(condition, grad, 0)      other: where(condition, 0, grad)
// (each summed back to its own shape)
template <class T>
Tensor<T> where_impl(const xt::xarray<bool>& condition, const Tensor<T>& input,
                     const Tensor<T>& other) {
  check_defined("where", input);
  check_defined("where", other);
  const Shape s = with_names(
      [&] {
        const Shape io = broadcast_shapes("where", input.shape(), other.shape());
        return broadcast_shapes("where", to_shape(condition.shape()), io);
      },
      input, other);
  const xt::xarray<bool> c = kernels::broadcast_to(condition, to_shape(condition.shape()), s);
  xt::xarray<T> v = xt::where(c, kernels::broadcast_to(input.value(), input.shape(), s),
                              kernels::broadcast_to(other.value(), other.shape(), s));
  return record<T>(
      "where", std::move(v), {input, other},
      [input, other, c](const xt::xarray<T>& grad, const Node<T>&) {
        if (input.requires_grad())
          accumulate_grad(
              input, sum_to_shape(xt::xarray<T>(xt::where(c, grad, T(0))), input.shape()), "where");
        if (other.requires_grad())
          accumulate_grad(
              other, sum_to_shape(xt::xarray<T>(xt::where(c, T(0), grad)), other.shape()), "where");
      });
}

#define TAPEGRAD_INSTANTIATE(T)                                          \
  template Tensor<T> add(const Tensor<T>&, const Tensor<T>&);            \
  template Tensor<T> sub(const Tensor<T>&, const Tensor<T>&);            \
  template Tensor<T> mul(const Tensor<T>&, const Tensor<T>&);            \
  template Tensor<T> div(const Tensor<T>&, const Tensor<T>&);            \
  template Tensor<T> add(const Tensor<T>&, scalar_t<T>);                 \
  template Tensor<T> mul(const Tensor<T>&, scalar_t<T>);                 \
  template Tensor<T> rdiv(scalar_t<T>, const Tensor<T>&);                \
  template Tensor<T> neg(const Tensor<T>&);                              \
  template Tensor<T> pow(const Tensor<T>&, scalar_t<T>);                 \
  template Tensor<T> square(const Tensor<T>&);                           \
  template Tensor<T> sqrt(const Tensor<T>&);                             \
  template Tensor<T> exp(const Tensor<T>&);                              \
  template Tensor<T> log(const Tensor<T>&);                              \
  template Tensor<T> abs(const Tensor<T>&);                              \
  template Tensor<T> relu(const Tensor<T>&);                             \
  template Tensor<T> tanh(const Tensor<T>&);                             \
  template Tensor<T> sigmoid(const Tensor<T>&);                          \
  template Tensor<T> sin(const Tensor<T>&);                              \
  template Tensor<T> cos(const Tensor<T>&);                              \
  template Tensor<T> clamp(const Tensor<T>&, std::optional<scalar_t<T>>, \
                           std::optional<scalar_t<T>>);                  \
  template Tensor<T> minimum(const Tensor<T>&, const Tensor<T>&);        \
  template Tensor<T> maximum(const Tensor<T>&, const Tensor<T>&);        \
  template Tensor<T> zeros_like(const Tensor<T>&, bool);                 \
  template Tensor<T> ones_like(const Tensor<T>&, bool);                  \
  template Tensor<float> to<float, T>(const Tensor<T>&);                 \
  template Tensor<double> to<double, T>(const Tensor<T>&);               \
  template xt::xarray<bool> gt(const Tensor<T>&, const Tensor<T>&);      \
  template xt::xarray<bool> lt(const Tensor<T>&, const Tensor<T>&);      \
  template xt::xarray<bool> ge(const Tensor<T>&, const Tensor<T>&);      \
  template xt::xarray<bool> le(const Tensor<T>&, const Tensor<T>&);      \
  template xt::xarray<bool> eq(const Tensor<T>&, const Tensor<T>&);      \
  template xt::xarray<bool> ne(const Tensor<T>&, const Tensor<T>&);      \
  template xt::xarray<bool> gt(const Tensor<T>&, scalar_t<T>);           \
  template xt::xarray<bool> lt(const Tensor<T>&, scalar_t<T>);           \
  template xt::xarray<bool> ge(const Tensor<T>&, scalar_t<T>);           \
  template xt::xarray<bool> le(const Tensor<T>&, scalar_t<T>);           \
  template xt::xarray<bool> eq(const Tensor<T>&, scalar_t<T>);           \
  template xt::xarray<bool> ne(const Tensor<T>&, scalar_t<T>);           \
  template Tensor<T> where_impl(const xt::xarray<bool>&, const Tensor<T>&, const Tensor<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
