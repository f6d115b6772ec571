#include "ops/indexing.h"

#include <xtensor/xoperation.hpp>

#include <algorithm>
#include <string>

#include "ops/common.h"
#include "ops/kernels/elementwise.h"
#include "ops/shape.h"

namespace tapegrad {

// self: zeros(broadcast shape).masked_scatter(mask, grad), summed back to self's shape
template <class T>
Tensor<T> masked_select(const Tensor<T>& a, const xt::xarray<bool>& mask) {
  check_defined("masked_select", a);
  const Shape mshape = to_shape(mask.shape());
  const Shape bshape = broadcast_shapes("masked_select", a.shape(), mshape);
  xt::xarray<T> ab = kernels::broadcast_to(a.value(), a.shape(), bshape);
  xt::xarray<bool> mb = kernels::broadcast_to(mask, to_shape(mask.shape()), bshape);
  std::vector<std::size_t> picked;  // flat positions in the broadcast shape
  for (std::size_t i = 0; i < mb.size(); ++i)
    if (mb.data()[i]) picked.push_back(i);
  xt::xarray<T> v = xt::zeros<T>({picked.size()});
  for (std::size_t j = 0; j < picked.size(); ++j) v.data()[j] = ab.data()[picked[j]];
  return record<T>(
      "masked_select", std::move(v), {a},
      [a, bshape, picked = std::move(picked)](const xt::xarray<T>& grad, const Node<T>&) {
        xt::xarray<T> g = xt::zeros<T>(bshape);
        for (std::size_t j = 0; j < picked.size(); ++j) g.data()[picked[j]] = grad.data()[j];
        accumulate_grad(a, sum_to_shape(g, a.shape()), "masked_select");
      });
}

// y = where(mask, value, a)
// self: grad.masked_fill(mask, 0), summed back to self's shape
template <class T>
Tensor<T> masked_fill(const Tensor<T>& a, const xt::xarray<bool>& mask, scalar_t<T> value) {
  check_defined("masked_fill", a);
  const Shape bshape = with_names(
      [&] { return broadcast_shapes("masked_fill", a.shape(), to_shape(mask.shape())); }, a);
  const xt::xarray<bool> mb = kernels::broadcast_to(mask, to_shape(mask.shape()), bshape);
  xt::xarray<T> v = xt::where(mb, T(value), kernels::broadcast_to(a.value(), a.shape(), bshape));
  return record<T>("masked_fill", std::move(v), {a},
                   [a, mb](const xt::xarray<T>& grad, const Node<T>&) {
                     const xt::xarray<T> g = xt::where(mb, T(0), grad);
                     accumulate_grad(a, sum_to_shape(g, a.shape()), "masked_fill");
                   });
}

namespace {

// out[o, k, i] = x[o, pos[k], i], x seen as (outer, len, inner) around the axis (split s).
template <class T>
xt::xarray<T> gather_positions(const xt::xarray<T>& x, const AxisSplit& s,
                               const std::vector<std::size_t>& pos, const Shape& out_shape) {
  xt::xarray<T> out = xt::xarray<T>::from_shape(out_shape);
  const T* src = x.data();
  T* dst = out.data();
  for (std::size_t o = 0; o < s.outer; ++o)
    for (std::size_t k = 0; k < pos.size(); ++k)
      std::copy_n(src + (o * s.len + pos[k]) * s.inner, s.inner,
                  dst + (o * pos.size() + k) * s.inner);
  return out;
}

// The reverse: zeros of `shape` (split s) with g[o, pos[k], i] += grad[o, k, i].
template <class T>
xt::xarray<T> scatter_positions(const xt::xarray<T>& grad, const AxisSplit& s,
                                const std::vector<std::size_t>& pos, const Shape& shape) {
  xt::xarray<T> g = xt::zeros<T>(shape);
  const T* src = grad.data();
  T* dst = g.data();
  for (std::size_t o = 0; o < s.outer; ++o)
    for (std::size_t k = 0; k < pos.size(); ++k) {
      const T* from = src + (o * pos.size() + k) * s.inner;
      T* into = dst + (o * s.len + pos[k]) * s.inner;
      for (std::size_t i = 0; i < s.inner; ++i) into[i] += from[i];
    }
  return g;
}

// The positions `pos` along axis `ax` of a, recorded under `op`.
// self: zeros(self.shape) with grad added at the positions read
template <class T>
Tensor<T> select_positions(const std::string& op, const Tensor<T>& a, std::size_t ax,
                           std::vector<std::size_t> pos) {
  const AxisSplit s = split_at_axis(a.shape(), ax);
  Shape out_shape = a.shape();
  out_shape[ax] = pos.size();
  xt::xarray<T> v = gather_positions(a.value(), s, pos, out_shape);
  return record<T>(op, std::move(v), {a},
                   [a, op, s, pos = std::move(pos)](const xt::xarray<T>& grad, const Node<T>&) {
                     accumulate_grad(a, scatter_positions(grad, s, pos, a.shape()), op);
                   });
}

std::vector<std::size_t> positions(std::size_t first, std::size_t count, std::size_t step) {
  std::vector<std::size_t> pos(count);
  for (std::size_t k = 0; k < count; ++k) pos[k] = first + k * step;
  return pos;
}

}  // namespace

template <class T>
Tensor<T> narrow(const Tensor<T>& a, long dim, long start, long length) {
  check_defined("narrow", a);
  const std::size_t ax = with_names([&] { return normalize_axis("narrow", dim, a.shape()); }, a);
  const long len = static_cast<long>(a.shape()[ax]);
  const long first = start < 0 ? start + len : start;
  if (first < 0 || first > len || length < 0 || length > len - first)
    throw std::invalid_argument("narrow: start " + std::to_string(start) + " and length " +
                                std::to_string(length) + " do not fit in dim " +
                                std::to_string(dim) + " of " + describe(a));
  return select_positions(
      "narrow", a, ax,
      positions(static_cast<std::size_t>(first), static_cast<std::size_t>(length), 1));
}

template <class T>
Tensor<T> slice(const Tensor<T>& a, long dim, long start, long end, long step) {
  check_defined("slice", a);
  const std::size_t ax = with_names([&] { return normalize_axis("slice", dim, a.shape()); }, a);
  if (step < 1)
    throw std::invalid_argument("slice: step must be at least 1, got " + std::to_string(step) +
                                " for " + describe(a));
  const long len = static_cast<long>(a.shape()[ax]);
  // Python's rule: negative bounds count from the end, then both are clamped to [0, len].
  auto bound = [len](long b) { return b < 0 ? std::max(b + len, 0L) : std::min(b, len); };
  const long first = bound(start), last = bound(end);
  const long count = last > first ? (last - first + step - 1) / step : 0;
  return select_positions(
      "slice", a, ax,
      positions(static_cast<std::size_t>(first), static_cast<std::size_t>(count),
                static_cast<std::size_t>(step)));
}

template <class T>
Tensor<T> index_select(const Tensor<T>& a, long dim, const IndexArray& index) {
  check_defined("index_select", a);
  const std::size_t ax =
      with_names([&] { return normalize_axis("index_select", dim, a.shape()); }, a);
  if (index.dimension() > 1)
    throw std::invalid_argument("index_select: index must be 1-D, got shape " +
                                shape_str(to_shape(index.shape())) + " for " + describe(a));
  const std::int64_t len = static_cast<std::int64_t>(a.shape()[ax]);
  std::vector<std::size_t> pos;
  pos.reserve(index.size());
  for (const std::int64_t i : index) {
    if (i < 0 || i >= len)
      throw std::invalid_argument("index_select: index " + std::to_string(i) +
                                  " is out of range for dim " + std::to_string(dim) + " of " +
                                  describe(a));
    pos.push_back(static_cast<std::size_t>(i));
  }
  return select_positions("index_select", a, ax, std::move(pos));
}

namespace {

// cat's argument check: a non-empty list of defined tensors of one rank, equal outside axis `ax`
// (returned).
template <class T>
std::size_t check_cat(const std::vector<Tensor<T>>& ts, long dim) {
  if (ts.empty()) throw std::invalid_argument("cat: expected a non-empty list of tensors");
  for (const auto& t : ts) check_defined("cat", t);
  const Shape first = ts[0].shape();
  const std::size_t ax = with_names([&] { return normalize_axis("cat", dim, first); }, ts[0]);
  for (std::size_t i = 1; i < ts.size(); ++i) {
    Shape si = ts[i].shape(), s0 = first;
    if (si.size() == s0.size()) si[ax] = s0[ax] = 0;
    if (si != s0)
      throw std::invalid_argument("cat: tensors[" + std::to_string(i) + "] " + describe(ts[i]) +
                                  " does not match tensors[0] " + describe(ts[0]) +
                                  " outside dim " + std::to_string(dim));
  }
  return ax;
}

}  // namespace

// tensors[i]: grad.narrow(dim, offset_i, size_i)
template <class T>
Tensor<T> cat(const std::vector<Tensor<T>>& tensors, long dim) {
  const std::size_t ax = check_cat(tensors, dim);
  Shape out_shape = tensors[0].shape();
  out_shape[ax] = 0;
  for (const auto& t : tensors) out_shape[ax] += t.shape()[ax];
  checked_numel("cat", out_shape, sizeof(T));
  const AxisSplit s = split_at_axis(out_shape, ax);
  xt::xarray<T> v = xt::xarray<T>::from_shape(out_shape);
  std::size_t offset = 0;  // where the current tensor starts along the axis
  for (const auto& t : tensors) {
    const std::size_t block = t.shape()[ax] * s.inner;
    for (std::size_t o = 0; o < s.outer; ++o)
      std::copy_n(t.value().data() + o * block, block, v.data() + (o * s.len + offset) * s.inner);
    offset += t.shape()[ax];
  }
  return record<T>(
      "cat", std::move(v), tensors, [tensors, ax, s](const xt::xarray<T>& grad, const Node<T>&) {
        std::size_t offset = 0;
        for (const auto& t : tensors) {
          const std::size_t len = t.shape()[ax];
          if (t.requires_grad())
            accumulate_grad(t, gather_positions(grad, s, positions(offset, len, 1), t.shape()),
                            "cat");
          offset += len;
        }
      });
}

template <class T>
Tensor<T> stack(const std::vector<Tensor<T>>& tensors, long dim) {
  if (tensors.empty()) throw std::invalid_argument("stack: expected a non-empty list of tensors");
  for (const auto& t : tensors) check_defined("stack", t);
  for (std::size_t i = 1; i < tensors.size(); ++i)
    if (tensors[i].shape() != tensors[0].shape())
      throw std::invalid_argument("stack: tensors[" + std::to_string(i) + "] " +
                                  describe(tensors[i]) + " does not have the shape of tensors[0] " +
                                  describe(tensors[0]));
  Shape stacked = tensors[0].shape();
  stacked.push_back(tensors.size());  // the rank of the result, for the axis check
  const long ax = static_cast<long>(
      with_names([&] { return normalize_axis("stack", dim, stacked); }, tensors[0]));
  std::vector<Tensor<T>> parts;
  parts.reserve(tensors.size());
  for (const auto& t : tensors) parts.push_back(unsqueeze(t, ax));
  return cat(parts, ax);
}

xt::xarray<bool> off_diagonal_mask(std::size_t n) {
  xt::xarray<bool> m = xt::ones<bool>({n, n});
  for (std::size_t i = 0; i < n; ++i) m(i, i) = false;
  return m;
}

#define TAPEGRAD_INSTANTIATE(T)                                               \
  template Tensor<T> narrow(const Tensor<T>&, long, long, long);              \
  template Tensor<T> slice(const Tensor<T>&, long, long, long, long);         \
  template Tensor<T> index_select(const Tensor<T>&, long, const IndexArray&); \
  template Tensor<T> cat(const std::vector<Tensor<T>>&, long);                \
  template Tensor<T> stack(const std::vector<Tensor<T>>&, long);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

template Tensor<float> masked_fill(const Tensor<float>&, const xt::xarray<bool>&, scalar_t<float>);
template Tensor<double> masked_fill(const Tensor<double>&, const xt::xarray<bool>&,
                                    scalar_t<double>);
template Tensor<float> masked_select(const Tensor<float>&, const xt::xarray<bool>&);
template Tensor<double> masked_select(const Tensor<double>&, const xt::xarray<bool>&);

}  // namespace tapegrad
