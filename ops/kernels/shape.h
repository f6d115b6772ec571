// Shapes and their arithmetic: what a shape is, broadcasting, its reverse, and axis bookkeeping.
// Plain std and xtensor: the tensor (autograd/tensor.h), the ops and the kernels all use it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

namespace tapegrad {

// Shapes as torch.Size: a list of extents, row-major. A 0-d tensor (a scalar) has the shape {}.
using Shape = std::vector<std::size_t>;

std::string shape_str(const Shape& s);  // "(2, 3)", "(4,)", "()" for a scalar

template <class S>
Shape to_shape(const S& s) {
  return Shape(s.begin(), s.end());
}

// NumPy broadcasting: align shapes on the right; each pair of extents must be equal or one of
// them 1. Throws std::invalid_argument "<op>: shapes A and B cannot be broadcast together".
Shape broadcast_shapes(const std::string& op, const Shape& a, const Shape& b);

// The reverse of broadcasting, used by every backward whose forward broadcast an input:
// sum `g` (shape = broadcast result) over the axes that broadcasting created or stretched, so the
// result has `shape`. E.g. g (4, 2, 3) -> shape (2, 1): sum over axis 0 and axis 2 (kept as 1).
template <class T>
xt::xarray<T> sum_to_shape(const xt::xarray<T>& g, const Shape& shape);

// Sum over `axes` (sorted, distinct), keeping each as extent 1: (2, 3, 4) over {1} -> (2, 1, 4).
// Our own loop rather than xt::sum: xtensor 0.24.3's reducer crashes when the input has an
// extent-0 axis that is not reduced (found by tests/reliability/test_property.cpp).
template <class T>
xt::xarray<T> sum_over_axes(const xt::xarray<T>& a, const std::vector<std::size_t>& axes);

// Torch-style axis: -1 is the last axis. Throws "<op>: axis A is out of range for shape S".
std::size_t normalize_axis(const std::string& op, long axis, const Shape& shape);

// A row-major array seen as (outer, len, inner) around one axis: element (o, k, i) of the view is
// data[(o * len + k) * inner + i]. Softmax, max, cumulative ops loop over this view.
struct AxisSplit {
  std::size_t outer = 1, len = 1, inner = 1;
};
AxisSplit split_at_axis(const Shape& shape, std::size_t axis);

std::size_t numel(const Shape& s);

}  // namespace tapegrad
