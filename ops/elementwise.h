// Elementwise ops with NumPy broadcasting.
//
// Forward: out = f(a, b) on the broadcast shape of a and b.
// Backward: each input receives grad * (d out / d input), summed back to the input's own shape over
// the axes broadcasting stretched (sum_to_shape). The rule of each op is written beside it in
// PyTorch's derivatives.yaml form.
#pragma once

#include <optional>
#include <type_traits>
#include <utility>

#include <xtensor/xarray.hpp>
#include <xtensor/xexpression.hpp>

#include "autograd/tensor.h"

namespace tapegrad {

// A scalar operand takes the tensor's element type: x * 0.5 works for Tensor<float> too.
template <class T>
struct scalar_of {
  using type = T;
};
template <class T>
using scalar_t = typename scalar_of<T>::type;

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b);

template <class T>
Tensor<T> add(const Tensor<T>& a, scalar_t<T> s);
template <class T>
Tensor<T> mul(const Tensor<T>& a, scalar_t<T> s);
template <class T>
Tensor<T> rdiv(scalar_t<T> s, const Tensor<T>& a);  // s / a

template <class T>
Tensor<T> neg(const Tensor<T>& a);
template <class T>
Tensor<T> pow(const Tensor<T>& a, scalar_t<T> p);  // a^p, p a constant
template <class T>
Tensor<T> square(const Tensor<T>& a);
template <class T>
Tensor<T> sqrt(const Tensor<T>& a);
template <class T>
Tensor<T> exp(const Tensor<T>& a);
template <class T>
Tensor<T> log(const Tensor<T>& a);
template <class T>
Tensor<T> abs(const Tensor<T>& a);
template <class T>
Tensor<T> relu(const Tensor<T>& a);
template <class T>
Tensor<T> tanh(const Tensor<T>& a);
template <class T>
Tensor<T> sigmoid(const Tensor<T>& a);

template <class T>
Tensor<T> sin(const Tensor<T>& a);
template <class T>
Tensor<T> cos(const Tensor<T>& a);

// torch.clamp(input, min, max): min(max(a, min), max), either bound optional (std::nullopt).
// When min > max every element becomes max, as in torch. The gradient passes where
// min <= a <= max, bounds included (torch's clamp_backward), and is 0 elsewhere.
template <class T>
Tensor<T> clamp(const Tensor<T>& a, std::optional<scalar_t<T>> min,
                std::optional<scalar_t<T>> max = std::nullopt);

// torch.minimum / torch.maximum: elementwise, with broadcasting. Where a == b each input receives
// half the gradient, as in torch.
template <class T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b);

// torch.zeros_like / torch.ones_like: a new leaf of a's shape and element type.
template <class T>
Tensor<T> zeros_like(const Tensor<T>& a, bool requires_grad = false);
template <class T>
Tensor<T> ones_like(const Tensor<T>& a, bool requires_grad = false);

// The dtype cast, x.to(torch.float32) / x.to(torch.float64): to<float>(x), to<double>(x). The
// gradient flows back converted to x's type; to<T>(x) of x's own type returns x itself, as torch
// returns self.
template <class U, class T>
Tensor<U> to(const Tensor<T>& x);

// --- comparisons: constant masks ------------------------------------------------------------
// torch.gt, lt, ge, le, eq, ne (and the operators > < >= <= == !=): elementwise with broadcasting,
// an xt::xarray<bool> of the broadcast shape. A mask is a constant (no gradient flows through a
// comparison, as in torch); `where` and `masked_fill` take it: masked_fill(x, x < 0.0, 0.0).
template <class T>
xt::xarray<bool> gt(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
xt::xarray<bool> lt(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
xt::xarray<bool> ge(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
xt::xarray<bool> le(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
xt::xarray<bool> eq(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
xt::xarray<bool> ne(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
xt::xarray<bool> gt(const Tensor<T>& a, scalar_t<T> s);
template <class T>
xt::xarray<bool> lt(const Tensor<T>& a, scalar_t<T> s);
template <class T>
xt::xarray<bool> ge(const Tensor<T>& a, scalar_t<T> s);
template <class T>
xt::xarray<bool> le(const Tensor<T>& a, scalar_t<T> s);
template <class T>
xt::xarray<bool> eq(const Tensor<T>& a, scalar_t<T> s);
template <class T>
xt::xarray<bool> ne(const Tensor<T>& a, scalar_t<T> s);

// --- where ------------------------------------------------------------------------------------
// torch.where(condition, input, other): input where condition is true, other elsewhere; the three
// broadcast together. Rules: input: grad where condition (0 elsewhere); other: grad where not.
template <class T>
Tensor<T> where_impl(const xt::xarray<bool>& condition, const Tensor<T>& input,
                     const Tensor<T>& other);

// The condition is any boolean xtensor expression (a comparison's mask, !mask, mask && other).
// Taken as a template so that these overloads, not xt::where (which argument-dependent lookup
// brings in through the mask's namespace and which would take a Tensor as a scalar), are chosen.
template <class M, class T, std::enable_if_t<xt::is_xexpression<std::decay_t<M>>::value, int> = 0>
Tensor<T> where(M&& condition, Tensor<T> input, Tensor<T> other) {
  return where_impl(xt::xarray<bool>(std::forward<M>(condition)), input, other);
}
template <class M, class T, std::enable_if_t<xt::is_xexpression<std::decay_t<M>>::value, int> = 0>
Tensor<T> where(M&& condition, Tensor<T> input, scalar_t<T> other) {
  return where_impl(xt::xarray<bool>(std::forward<M>(condition)), input,
                    Tensor<T>(xt::xarray<T>(other)));
}
template <class M, class T, std::enable_if_t<xt::is_xexpression<std::decay_t<M>>::value, int> = 0>
Tensor<T> where(M&& condition, scalar_t<T> input, Tensor<T> other) {
  return where_impl(xt::xarray<bool>(std::forward<M>(condition)), Tensor<T>(xt::xarray<T>(input)),
                    other);
}

// Operators, with scalars on either side.
template <class T>
Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) {
  return add(a, b);
}
template <class T>
Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) {
  return sub(a, b);
}
template <class T>
Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) {
  return mul(a, b);
}
template <class T>
Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) {
  return div(a, b);
}
template <class T>
Tensor<T> operator-(const Tensor<T>& a) {
  return neg(a);
}

template <class T>
Tensor<T> operator+(const Tensor<T>& a, scalar_t<T> s) {
  return add(a, s);
}
template <class T>
Tensor<T> operator+(scalar_t<T> s, const Tensor<T>& a) {
  return add(a, s);
}
template <class T>
Tensor<T> operator-(const Tensor<T>& a, scalar_t<T> s) {
  return add(a, -s);
}
template <class T>
Tensor<T> operator-(scalar_t<T> s, const Tensor<T>& a) {
  return add(neg(a), s);
}
template <class T>
Tensor<T> operator*(const Tensor<T>& a, scalar_t<T> s) {
  return mul(a, s);
}
template <class T>
Tensor<T> operator*(scalar_t<T> s, const Tensor<T>& a) {
  return mul(a, s);
}
template <class T>
Tensor<T> operator/(const Tensor<T>& a, scalar_t<T> s) {
  return mul(a, T(1) / s);
}
template <class T>
Tensor<T> operator/(scalar_t<T> s, const Tensor<T>& a) {
  return rdiv(s, a);
}

// --- a Tensor with an xtensor expression ---------------------------------------------------
// x * xs, with xs an xt::xarray (or any xtensor expression), uses xs as a constant tensor, as torch
// does with a tensor that does not require grad. Without these overloads x * xs would match
// xtensor's own operator* (it takes any type as a scalar), build an xtensor expression holding a
// Tensor and fail much later with a long type; these are more specialised, so they win.
template <class E>
using if_xexpression = std::enable_if_t<xt::is_xexpression<std::decay_t<E>>::value, int>;

// A leaf holding the expression's values (requires_grad false), converted to T.
template <class T, class E, if_xexpression<E> = 0>
Tensor<T> as_constant(E&& e) {
  return Tensor<T>(xt::xarray<T>(std::forward<E>(e)));
}

template <class T, class E, if_xexpression<E> = 0>
Tensor<T> operator+(Tensor<T> a, E&& b) {
  return add(a, as_constant<T>(std::forward<E>(b)));
}
template <class T, class E, if_xexpression<E> = 0>
Tensor<T> operator+(E&& a, Tensor<T> b) {
  return add(as_constant<T>(std::forward<E>(a)), b);
}
template <class T, class E, if_xexpression<E> = 0>
Tensor<T> operator-(Tensor<T> a, E&& b) {
  return sub(a, as_constant<T>(std::forward<E>(b)));
}
template <class T, class E, if_xexpression<E> = 0>
Tensor<T> operator-(E&& a, Tensor<T> b) {
  return sub(as_constant<T>(std::forward<E>(a)), b);
}
template <class T, class E, if_xexpression<E> = 0>
Tensor<T> operator*(Tensor<T> a, E&& b) {
  return mul(a, as_constant<T>(std::forward<E>(b)));
}
template <class T, class E, if_xexpression<E> = 0>
Tensor<T> operator*(E&& a, Tensor<T> b) {
  return mul(as_constant<T>(std::forward<E>(a)), b);
}
template <class T, class E, if_xexpression<E> = 0>
Tensor<T> operator/(Tensor<T> a, E&& b) {
  return div(a, as_constant<T>(std::forward<E>(b)));
}
template <class T, class E, if_xexpression<E> = 0>
Tensor<T> operator/(E&& a, Tensor<T> b) {
  return div(as_constant<T>(std::forward<E>(a)), b);
}

// Comparison operators: masks, like torch's bool tensors.
template <class T>
xt::xarray<bool> operator>(const Tensor<T>& a, const Tensor<T>& b) {
  return gt(a, b);
}
template <class T>
xt::xarray<bool> operator<(const Tensor<T>& a, const Tensor<T>& b) {
  return lt(a, b);
}
template <class T>
xt::xarray<bool> operator>=(const Tensor<T>& a, const Tensor<T>& b) {
  return ge(a, b);
}
template <class T>
xt::xarray<bool> operator<=(const Tensor<T>& a, const Tensor<T>& b) {
  return le(a, b);
}
template <class T>
xt::xarray<bool> operator==(const Tensor<T>& a, const Tensor<T>& b) {
  return eq(a, b);
}
template <class T>
xt::xarray<bool> operator!=(const Tensor<T>& a, const Tensor<T>& b) {
  return ne(a, b);
}
template <class T>
xt::xarray<bool> operator>(const Tensor<T>& a, scalar_t<T> s) {
  return gt(a, s);
}
template <class T>
xt::xarray<bool> operator<(const Tensor<T>& a, scalar_t<T> s) {
  return lt(a, s);
}
template <class T>
xt::xarray<bool> operator>=(const Tensor<T>& a, scalar_t<T> s) {
  return ge(a, s);
}
template <class T>
xt::xarray<bool> operator<=(const Tensor<T>& a, scalar_t<T> s) {
  return le(a, s);
}
template <class T>
xt::xarray<bool> operator==(const Tensor<T>& a, scalar_t<T> s) {
  return eq(a, s);
}
template <class T>
xt::xarray<bool> operator!=(const Tensor<T>& a, scalar_t<T> s) {
  return ne(a, s);
}
// s < a is a > s, and so on.
template <class T>
xt::xarray<bool> operator>(scalar_t<T> s, const Tensor<T>& a) {
  return lt(a, s);
}
template <class T>
xt::xarray<bool> operator<(scalar_t<T> s, const Tensor<T>& a) {
  return gt(a, s);
}
template <class T>
xt::xarray<bool> operator>=(scalar_t<T> s, const Tensor<T>& a) {
  return le(a, s);
}
template <class T>
xt::xarray<bool> operator<=(scalar_t<T> s, const Tensor<T>& a) {
  return ge(a, s);
}
template <class T>
xt::xarray<bool> operator==(scalar_t<T> s, const Tensor<T>& a) {
  return eq(a, s);
}
template <class T>
xt::xarray<bool> operator!=(scalar_t<T> s, const Tensor<T>& a) {
  return ne(a, s);
}

}  // namespace tapegrad
