#include "ops/repeat.h"

#include <algorithm>

#include <xtensor/xreducer.hpp>
#include <xtensor/xstrided_view.hpp>

#include "ops/common.h"
#include "ops/kernels/elementwise.h"
#include "ops/kernels/repeat.h"
#include "ops/shape.h"

namespace tapegrad {

namespace {

// out = broadcast(reshape(a, view), expanded), reshaped to out_shape; the backward sums grad (seen
// as `expanded`) over `copy_axes`. Both repeat ops are this with different shapes.
template <class T>
Tensor<T> copy_by_broadcast(const std::string& op, const Tensor<T>& a, const Shape& view,
                            const Shape& expanded, const std::vector<std::size_t>& copy_axes,
                            const Shape& out_shape) {
  xt::xarray<T> v = kernels::broadcast_to(a.value(), view, expanded);
  v.reshape(out_shape);
  return record<T>(op, std::move(v), {a},
                   [a, op, expanded, copy_axes](const xt::xarray<T>& grad, const Node<T>&) {
                     xt::xarray<T> g = grad;
                     g.reshape(expanded);
                     xt::xarray<T> r = sum_over_axes(g, copy_axes);
                     r.reshape(a.value().shape());
                     accumulate_grad(a, std::move(r), op);
                   });
}

}  // namespace

// self: grad.reshape(r0, s0, r1, s1, ...).sum(axes r0, r1, ...)
template <class T>
Tensor<T> repeat(const Tensor<T>& a, const std::vector<std::size_t>& reps) {
  check_defined("repeat", a);
  const Shape s0 = a.shape();
  if (reps.size() < s0.size()) {
    Shape r(reps.begin(), reps.end());
    throw std::invalid_argument("repeat: " + std::to_string(reps.size()) +
                                " repeat counts for a tensor of shape " + shape_str(s0) +
                                "; give at least one per axis (got " + shape_str(r) + ")");
  }
  Shape s(reps.size() - s0.size(), 1);  // a's shape padded with leading 1s
  s.insert(s.end(), s0.begin(), s0.end());
  Shape view, expanded, out_shape;
  std::vector<std::size_t> copy_axes;
  for (std::size_t i = 0; i < reps.size(); ++i) {
    view.push_back(1);
    view.push_back(s[i]);
    expanded.push_back(reps[i]);
    expanded.push_back(s[i]);
    copy_axes.push_back(2 * i);
    out_shape.push_back(checked_extent("repeat", reps[i], s[i]));
  }
  checked_numel("repeat", out_shape, sizeof(T));
  return copy_by_broadcast("repeat", a, view, expanded, copy_axes, out_shape);
}

// self: grad.reshape(..., s_axis, repeats, ...).sum(axis + 1)
// Computed by loops over the (outer, len, inner) view of the axis (kernels/repeat.h) rather than
// broadcast + reshape: it is the first op of the chapter's model and runs on every (query, key)
// pair.
template <class T>
Tensor<T> repeat_interleave(const Tensor<T>& a, std::size_t repeats, std::optional<long> axis) {
  check_defined("repeat_interleave", a);
  if (!axis) return repeat_interleave(flatten(a), repeats, 0L);
  const Shape s = a.shape();
  if (s.empty()) {  // torch treats a 0-d tensor as (1,): axis 0 or -1 only
    normalize_axis("repeat_interleave", *axis, Shape{1});
    return repeat_interleave(reshape(a, {1}), repeats, 0L);
  }
  const std::size_t ax =
      with_names([&] { return normalize_axis("repeat_interleave", *axis, s); }, a);
  const AxisSplit sp = split_at_axis(s, ax);
  const std::size_t r = repeats;
  Shape out_shape = s;
  out_shape[ax] = checked_extent("repeat_interleave", out_shape[ax], r);
  checked_numel("repeat_interleave", out_shape, sizeof(T));
  xt::xarray<T> v = xt::xarray<T>::from_shape(out_shape);
  kernels::repeat_interleave(a.value().data(), v.data(), sp, r);
  return record<T>("repeat_interleave", std::move(v), {a},
                   [a, sp, r](const xt::xarray<T>& grad, const Node<T>&) {
                     xt::xarray<T> g = xt::xarray<T>::from_shape(a.value().shape());
                     kernels::repeat_interleave_backward(grad.data(), g.data(), sp, r);
                     accumulate_grad(a, std::move(g), "repeat_interleave");
                   });
}

#define TAPEGRAD_INSTANTIATE(T)                                                 \
  template Tensor<T> repeat(const Tensor<T>&, const std::vector<std::size_t>&); \
  template Tensor<T> repeat_interleave(const Tensor<T>&, std::size_t, std::optional<long>);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
