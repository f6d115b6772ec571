#include "ops/kernels/shape.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>

#include "ops/kernels/reduction.h"

namespace tapegrad {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '(';
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ',';  // a Python tuple: (4,) is a shape, (4) would read as a number
  os << ')';
  return os.str();
}

Shape broadcast_shapes(const std::string& op, const Shape& a, const Shape& b) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n, 1);
  for (std::size_t i = 0; i < n; ++i) {
    // i counts from the right
    const std::size_t ea = i < a.size() ? a[a.size() - 1 - i] : 1;
    const std::size_t eb = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (ea != eb && ea != 1 && eb != 1)
      throw std::invalid_argument(op + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                  " cannot be broadcast together");
    out[n - 1 - i] = ea == 1 ? eb : ea;
  }
  return out;
}

template <class T>
xt::xarray<T> sum_to_shape(const xt::xarray<T>& g, const Shape& shape) {
  const Shape gs = to_shape(g.shape());
  if (gs == shape) return g;
  if (numel(shape) == 1) {  // everything sums to one element (e.g. the chapter's w): one loop
    xt::xarray<T> r = xt::zeros<T>(shape);
    *r.data() = static_cast<T>(kernels::sum_all(g.data(), g.size()));  // double accumulator
    return r;
  }
  const std::size_t lead = gs.size() - shape.size();  // axes broadcasting prepended
  std::vector<std::size_t> axes;
  for (std::size_t i = 0; i < lead; ++i) axes.push_back(i);
  for (std::size_t j = 0; j < shape.size(); ++j)
    if (shape[j] == 1 && gs[lead + j] != 1) axes.push_back(lead + j);
  xt::xarray<T> r = sum_over_axes(g, axes);
  r.reshape(shape);
  return r;
}

template <class T>
xt::xarray<T> sum_over_axes(const xt::xarray<T>& a, const std::vector<std::size_t>& all_axes) {
  const Shape in = to_shape(a.shape());
  std::vector<std::size_t> axes;  // an axis of extent 1 sums nothing (d = 1's coordinate axis)
  for (auto ax : all_axes)
    if (in[ax] != 1) axes.push_back(ax);
  if (axes.empty()) return a;
  Shape out = in;
  for (auto ax : axes) out[ax] = 1;
  xt::xarray<T> r = xt::zeros<T>(out);
  if (a.size() == 0) return r;
  std::vector<double> acc(r.size(), 0.0);  // double accumulators, as in the one-element case
  const T* x = a.data();
  // Two common layouts get plain loops: summing leading axes (a broadcast row's gradient,
  // (n, m) -> (1, m)) and summing trailing axes (row sums, (n, m) -> (n, 1)).
  std::size_t lead = 0, trail = 0;
  while (lead < axes.size() && axes[lead] == lead) ++lead;
  while (trail < axes.size() && axes[axes.size() - 1 - trail] == in.size() - 1 - trail) ++trail;
  if (lead == axes.size() || trail == axes.size()) {
    const std::size_t inner = lead == axes.size() ? r.size() : a.size() / r.size();
    const std::size_t outer = a.size() / inner;
    if (lead == axes.size())
      kernels::sum_leading(x, outer, inner, acc.data());
    else
      kernels::sum_trailing(x, outer, inner, acc.data());
    std::copy(acc.begin(), acc.end(), r.data());
    return r;
  }
  // Walk the input in row-major order with an odometer over its index; `o` is the matching output
  // offset, where reduced axes have stride 0 (all their elements land on the same output element).
  const std::size_t rank = in.size();
  std::vector<std::size_t> stride(rank, 0), idx(rank, 0);
  std::size_t st = 1;
  for (std::size_t d = rank; d-- > 0;) {
    stride[d] = st;
    st *= out[d];
  }
  for (auto ax : axes) stride[ax] = 0;
  std::size_t o = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    acc[o] += x[i];
    for (std::size_t d = rank; d-- > 0;) {
      o += stride[d];
      if (++idx[d] < in[d]) break;
      o -= stride[d] * in[d];
      idx[d] = 0;
    }
  }
  std::copy(acc.begin(), acc.end(), r.data());
  return r;
}

std::size_t normalize_axis(const std::string& op, long axis, const Shape& shape) {
  const long n = static_cast<long>(shape.size());
  const long a = axis < 0 ? axis + n : axis;
  if (a < 0 || a >= n)
    throw std::invalid_argument(op + ": axis " + std::to_string(axis) +
                                " is out of range for shape " + shape_str(shape));
  return static_cast<std::size_t>(a);
}

AxisSplit split_at_axis(const Shape& shape, std::size_t axis) {
  AxisSplit s;
  for (std::size_t i = 0; i < axis; ++i) s.outer *= shape[i];
  s.len = shape[axis];
  for (std::size_t i = axis + 1; i < shape.size(); ++i) s.inner *= shape[i];
  return s;
}

std::size_t numel(const Shape& s) {
  std::size_t n = 1;
  for (auto e : s) n *= e;
  return n;
}

template xt::xarray<float> sum_over_axes<float>(const xt::xarray<float>&,
                                                const std::vector<std::size_t>&);
template xt::xarray<double> sum_over_axes<double>(const xt::xarray<double>&,
                                                  const std::vector<std::size_t>&);
template xt::xarray<float> sum_to_shape<float>(const xt::xarray<float>&, const Shape&);
template xt::xarray<double> sum_to_shape<double>(const xt::xarray<double>&, const Shape&);

}  // namespace tapegrad
