// Type deduction and xtensor interop: what C++ can deduce, it does.
//
//   auto x = tensor({1.0, 2.0, 3.0});          // Tensor<double>: T comes from the values
//   auto m = tensor({{1.0f, 2.0f}, {3.0f, 4.0f}});  // Tensor<float>, shape (2, 2)
//   auto z = zeros({2, 3});                    // Tensor<double>: no value to deduce from, so the
//   auto o = ones({4});                        //   element type defaults to double, as torch's
//   auto f = zeros<float>({2, 3});             //   default dtype is float64 here; float is
//   explicit auto y = x * xs;                           // xs an xt::xarray (or any xtensor
//   expression):
//                                              //   used as a constant tensor, as torch does with a
//                                              //   tensor that does not require grad
//
// Without the operators below, x * xs would match xtensor's own operator* (it takes any type as a
// scalar), build an xtensor expression holding a Tensor, and fail much later with a long type.
// These overloads are more specialised than xtensor's, so overload resolution picks them.
#pragma once

#include <initializer_list>
#include <type_traits>
#include <utility>

#include <xtensor/xexpression.hpp>

#include "autograd/tensor.h"
#include "ops/elementwise.h"

namespace tapegrad {

// --- factories that deduce or default the element type ------------------------------------------
template <class T>
Tensor<T> tensor(std::initializer_list<T> values, bool requires_grad = false) {
  xt::xarray<T> a = xt::xarray<T>::from_shape({values.size()});
  std::copy(values.begin(), values.end(), a.begin());
  return Tensor<T>(std::move(a), requires_grad);
}
// Rows of equal length; a ragged list throws std::invalid_argument.
template <class T>
Tensor<T> tensor(std::initializer_list<std::initializer_list<T>> rows, bool requires_grad = false) {
  const std::size_t cols = rows.size() ? rows.begin()->size() : 0;
  xt::xarray<T> a = xt::xarray<T>::from_shape({rows.size(), cols});
  auto out = a.begin();
  for (const auto& row : rows) {
    if (row.size() != cols)
      throw std::invalid_argument("tensor: rows of different lengths (" + std::to_string(cols) +
                                  " and " + std::to_string(row.size()) + ")");
    out = std::copy(row.begin(), row.end(), out);
  }
  return Tensor<T>(std::move(a), requires_grad);
}
inline Tensor<double> zeros(const Shape& shape, bool requires_grad = false) {
  return zeros<double>(shape, requires_grad);
}
inline Tensor<double> ones(const Shape& shape, bool requires_grad = false) {
  return ones<double>(shape, requires_grad);
}

// --- a Tensor with an xtensor expression: the expression is a constant
// ----------------------------
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
