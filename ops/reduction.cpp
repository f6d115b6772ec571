#include "ops/reduction.h"

#include <algorithm>

#include <xtensor/xadapt.hpp>
#include <xtensor/xreducer.hpp>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/kernels/elementwise.h"

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
  return record<T>("sum", std::move(v), {a}, [a](const xt::xarray<T>& grad, const Node<T>&) {
    accumulate_grad(a, kernels::broadcast_to(grad, Shape{}, a.shape()), "sum");
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
  return record<T>("sum", std::move(v), {a},
                   [a, kshape](const xt::xarray<T>& grad, const Node<T>&) {
                     accumulate_grad(a, kernels::broadcast_to(grad, kshape, a.shape()), "sum");
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

namespace {

// The extreme element of every slice along one axis: the first maximal one for sign +1, the first
// minimal one for sign -1; a NaN beats any number, as in torch. `values` has the keepdims shape,
// `index[o * inner + i]` is the position along the axis of slice (o, i).
template <class T>
struct Extremes {
  xt::xarray<T> values;
  std::vector<std::size_t> index;
  AxisSplit split;
  Shape keep_shape, reduced_shape;
};

template <class T>
Extremes<T> extremes(const std::string& op, const Tensor<T>& a, long axis, T sign) {
  check_defined(op, a);
  const Shape in_shape = a.shape();
  const std::size_t ax = with_names([&] { return normalize_axis(op, axis, in_shape); }, a);
  Extremes<T> e;
  const AxisSplit s = e.split = split_at_axis(in_shape, ax);
  if (s.len == 0)
    throw std::invalid_argument(op + ": axis " + std::to_string(axis) + " of " + describe(a) +
                                " is empty");
  e.keep_shape = e.reduced_shape = in_shape;
  e.keep_shape[ax] = 1;
  e.reduced_shape.erase(e.reduced_shape.begin() + static_cast<long>(ax));
  e.values = xt::zeros<T>(e.keep_shape);
  e.index.resize(s.outer * s.inner);
  const T* x = a.value().data();
  for (std::size_t o = 0; o < s.outer; ++o)
    for (std::size_t i = 0; i < s.inner; ++i) {
      std::size_t best = 0;
      T m = x[o * s.len * s.inner + i];
      for (std::size_t k = 1; k < s.len; ++k) {
        const T xk = x[(o * s.len + k) * s.inner + i];
        if (sign * xk > sign * m || (std::isnan(xk) && !std::isnan(m))) m = xk, best = k;
      }
      e.values.data()[o * s.inner + i] = m;
      e.index[o * s.inner + i] = best;
    }
  return e;
}

// max / min along an axis: self: grad scattered to the index of each slice's extreme, 0 elsewhere
template <class T>
Tensor<T> extreme_values(const std::string& op, const Tensor<T>& a, long axis, bool keepdims,
                         T sign) {
  Extremes<T> e = extremes(op, a, axis, sign);
  if (!keepdims) e.values.reshape(e.reduced_shape);
  return record<T>(
      op, std::move(e.values), {a},
      [a, op, s = e.split, index = std::move(e.index)](const xt::xarray<T>& grad, const Node<T>&) {
        xt::xarray<T> g = xt::zeros<T>(a.value().shape());
        for (std::size_t o = 0; o < s.outer; ++o)
          for (std::size_t i = 0; i < s.inner; ++i)
            g.data()[(o * s.len + index[o * s.inner + i]) * s.inner + i] =
                grad.data()[o * s.inner + i];
        accumulate_grad(a, std::move(g), op);
      });
}

template <class T>
IndexArray extreme_indices(const std::string& op, const Tensor<T>& a, long axis, bool keepdims,
                           T sign) {
  const Extremes<T> e = extremes(op, a, axis, sign);
  IndexArray r = IndexArray::from_shape(keepdims ? e.keep_shape : e.reduced_shape);
  std::copy(e.index.begin(), e.index.end(), r.begin());
  return r;
}

// The flat index of the extreme of the whole tensor: the axis-0 extreme of its flattened values.
template <class T>
IndexArray flat_extreme_index(const std::string& op, const Tensor<T>& a, T sign) {
  check_defined(op, a);
  if (a.size() == 0) throw std::invalid_argument(op + ": " + describe(a) + " has no elements");
  const Tensor<T> flat(xt::xarray<T>(xt::adapt(a.value().data(), a.size(), xt::no_ownership(),
                                               std::vector<std::size_t>{a.size()})));
  return extreme_indices(op, flat, 0, false, sign);
}

}  // namespace

template <class T>
Tensor<T> max(const Tensor<T>& a, long axis, bool keepdims) {
  return extreme_values("max", a, axis, keepdims, T(1));
}

template <class T>
Tensor<T> min(const Tensor<T>& a, long axis, bool keepdims) {
  return extreme_values("min", a, axis, keepdims, T(-1));
}

// argmax / argmin: integers, not differentiable
template <class T>
IndexArray argmax(const Tensor<T>& a, long axis, bool keepdims) {
  return extreme_indices("argmax", a, axis, keepdims, T(1));
}

template <class T>
IndexArray argmin(const Tensor<T>& a, long axis, bool keepdims) {
  return extreme_indices("argmin", a, axis, keepdims, T(-1));
}

template <class T>
IndexArray argmax(const Tensor<T>& a) {
  return flat_extreme_index("argmax", a, T(1));
}

template <class T>
IndexArray argmin(const Tensor<T>& a) {
  return flat_extreme_index("argmin", a, T(-1));
}

#define TAPEGRAD_INSTANTIATE(T)                                              \
  template Tensor<T> sum(const Tensor<T>&);                                  \
  template Tensor<T> sum(const Tensor<T>&, const std::vector<long>&, bool);  \
  template Tensor<T> mean(const Tensor<T>&);                                 \
  template Tensor<T> mean(const Tensor<T>&, const std::vector<long>&, bool); \
  template Tensor<T> max(const Tensor<T>&, long, bool);                      \
  template Tensor<T> min(const Tensor<T>&, long, bool);                      \
  template IndexArray argmax(const Tensor<T>&, long, bool);                  \
  template IndexArray argmin(const Tensor<T>&, long, bool);                  \
  template IndexArray argmax(const Tensor<T>&);                              \
  template IndexArray argmin(const Tensor<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
