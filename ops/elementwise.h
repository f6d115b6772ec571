// Elementwise ops with NumPy broadcasting.
//
// Forward: out = f(a, b) on the broadcast shape of a and b.
// Backward: each input receives grad * (d out / d input), summed back to the input's own shape over
// the axes broadcasting stretched (sum_to_shape). The rule of each op is written beside it in
// PyTorch's derivatives.yaml form.
#pragma once

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

}  // namespace tapegrad
