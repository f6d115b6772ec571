// Elementwise ops with NumPy broadcasting.
//
// Forward: out = f(a, b) on the broadcast shape of a and b.
// Backward: each input receives grad * (d out / d input), summed back to the input's own shape over
// the axes broadcasting stretched (sum_to_shape). The rule of each op is written beside it in
// PyTorch's derivatives.yaml form.
#pragma once

#include <type_traits>
#include <utility>

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

}  // namespace tapegrad
