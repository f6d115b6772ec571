#include "ops/reduction.h"

#include <algorithm>

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xreducer.hpp>

#include "ops/common.h"
#include "ops/elementwise.h"

namespace tapegrad {

namespace {

// Sorted, de-duplicated, non-negative axes; throws on out-of-range or repeated axes.
std::vector<std::size_t> normalize_axes(const std::string& op, const std::vector<long>& axes,
                                        const Shape& shape) {
  std::vector<std::size_t> out;
  for (long a : axes) out.push_back(normalize_axis(op, a, shape));
  if (axes.empty())  // torch: an empty axis list reduces over every axis
    for (std::size_t i = 0; i < shape.size(); ++i) out.push_back(i);
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw std::invalid_argument(op + ": an axis is repeated in the reduction over shape " +
                                shape_str(shape));
  return out;
}

// Shape of the result with every reduced axis kept as 1.
Shape keepdims_shape(const Shape& shape, const std::vector<std::size_t>& axes) {
  Shape k = shape;
  for (auto a : axes) k[a] = 1;
  return k;
}

Shape reduced_shape(const Shape& shape, const std::vector<std::size_t>& axes) {
  Shape r;
  for (std::size_t i = 0; i < shape.size(); ++i)
    if (!std::binary_search(axes.begin(), axes.end(), i)) r.push_back(shape[i]);
  return r;
}

}  // namespace

// self: grad.expand(self.shape)
template <class T>
Tensor<T> sum(const Tensor<T>& a) {
  check_defined("sum", a);
  xt::xarray<T> v = sum_to_shape(a.value(), Shape{});  // one loop, double accumulator
  return record<T>("sum", std::move(v), {a}, [a](const Node<T>& out) {
    accumulate_grad(a, xt::xarray<T>(xt::broadcast(out.grad, a.value().shape())), "sum");
  });
}

// self: grad (with the reduced axes restored as 1) .expand(self.shape)
template <class T>
Tensor<T> sum(const Tensor<T>& a, const std::vector<long>& axes, bool keepdims) {
  check_defined("sum", a);
  const Shape in_shape = a.shape();
  const auto ax = with_names([&] { return normalize_axes("sum", axes, in_shape); }, a);
  xt::xarray<T> v = sum_over_axes(a.value(), ax);  // keepdims shape; a 0-d tensor stays as it is
  const Shape kshape = keepdims_shape(in_shape, ax);
  v.reshape(keepdims ? kshape : reduced_shape(in_shape, ax));
  return record<T>("sum", std::move(v), {a}, [a, kshape](const Node<T>& out) {
    xt::xarray<T> g = out.grad;
    g.reshape(kshape);
    accumulate_grad(a, xt::xarray<T>(xt::broadcast(g, a.value().shape())), "sum");
  });
}

// mean = sum / count, built from ops: self: grad.expand(self.shape) / count
template <class T>
Tensor<T> mean(const Tensor<T>& a) {
  check_defined("mean", a);
  if (a.size() == 0)
    throw std::invalid_argument("mean: empty tensor of shape " + shape_str(a.shape()));
  return mul(sum(a), T(1) / static_cast<T>(a.size()));
}

template <class T>
Tensor<T> mean(const Tensor<T>& a, const std::vector<long>& axes, bool keepdims) {
  check_defined("mean", a);
  std::size_t count = 1;
  for (auto ax : with_names([&] { return normalize_axes("mean", axes, a.shape()); }, a))
    count *= a.shape()[ax];
  if (count == 0)
    throw std::invalid_argument("mean: reducing an empty axis of shape " + shape_str(a.shape()));
  return mul(sum(a, axes, keepdims), T(1) / static_cast<T>(count));
}

// self: grad scattered to the argmax of each slice, zero elsewhere
template <class T>
Tensor<T> max(const Tensor<T>& a, long axis, bool keepdims) {
  check_defined("max", a);
  const Shape in_shape = a.shape();
  const std::size_t ax = with_names([&] { return normalize_axis("max", axis, in_shape); }, a);
  const AxisSplit s = split_at_axis(in_shape, ax);
  if (s.len == 0)
    throw std::invalid_argument("max: axis " + std::to_string(axis) + " of shape " +
                                shape_str(in_shape) + " is empty");
  Shape kshape = in_shape;
  kshape[ax] = 1;
  xt::xarray<T> v = xt::zeros<T>(kshape);
  std::vector<std::size_t> argmax(s.outer * s.inner);  // position along the axis, per slice
  const T* x = a.value().data();
  for (std::size_t o = 0; o < s.outer; ++o)
    for (std::size_t i = 0; i < s.inner; ++i) {
      std::size_t best = 0;
      T m = x[o * s.len * s.inner + i];
      for (std::size_t k = 1; k < s.len; ++k) {
        const T xk = x[(o * s.len + k) * s.inner + i];
        if (xk > m || (std::isnan(xk) && !std::isnan(m))) m = xk, best = k;  // NaN wins, as torch
      }
      v.data()[o * s.inner + i] = m;
      argmax[o * s.inner + i] = best;
    }
  if (!keepdims) {
    Shape r = in_shape;
    r.erase(r.begin() + static_cast<long>(ax));
    v.reshape(r);
  }
  return record<T>("max", std::move(v), {a},
                   [a, s, argmax = std::move(argmax)](const Node<T>& out) {
                     xt::xarray<T> g = xt::zeros<T>(a.value().shape());
                     for (std::size_t o = 0; o < s.outer; ++o)
                       for (std::size_t i = 0; i < s.inner; ++i)
                         g.data()[(o * s.len + argmax[o * s.inner + i]) * s.inner + i] =
                             out.grad.data()[o * s.inner + i];
                     accumulate_grad(a, std::move(g), "max");
                   });
}

#define TAPEGRAD_INSTANTIATE(T)                                              \
  template Tensor<T> sum(const Tensor<T>&);                                  \
  template Tensor<T> sum(const Tensor<T>&, const std::vector<long>&, bool);  \
  template Tensor<T> mean(const Tensor<T>&);                                 \
  template Tensor<T> mean(const Tensor<T>&, const std::vector<long>&, bool); \
  template Tensor<T> max(const Tensor<T>&, long, bool);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
