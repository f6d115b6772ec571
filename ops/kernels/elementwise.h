// Elementwise kernels: the loops behind ops/elementwise.cpp. out = f(a) and out = f(a, b) with
// NumPy broadcasting, written as contiguous pointer loops that gcc and clang vectorise whenever f
// can be (f is inlined: the kernels' exp, a product, ...; glibc's log and tanh stay scalar calls,
// which is why there is no `omp simd` here: clang warns when it cannot honour one), split across
// OpenMP threads above kParallelGrain elements.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <xtensor/xarray.hpp>

#include "ops/kernels/parallel.h"
#include "ops/kernels/shape.h"

namespace tapegrad {
namespace kernels {

// out[i] = f(a[i]).
template <class T, class F>
xt::xarray<T> map(const xt::xarray<T>& a, F f) {
  xt::xarray<T> out = xt::xarray<T>::from_shape(a.shape());
  const T* x = a.data();
  T* o = out.data();
  const long n = static_cast<long>(a.size());
#pragma omp parallel for if (a.size() >= kParallelGrain)
  for (long i = 0; i < n; ++i) o[i] = f(x[i]);
  return out;
}

// A broadcast of a (shape sa) and b (sb) to s in its fewest axes: the operands right-aligned to
// s's rank, s's extents of 1 dropped, and neighbouring axes merged where each operand is repeated
// along both or along neither (row-major data is contiguous across them). The loops then run
// along the longest rows: (n, m, 1) from (n, 1, 1) and (1, m, 1) is rows of m.
struct Collapsed {
  Shape s, sa, sb;  // equal ranks >= 1; sa[k], sb[k] are s[k] or 1
};
inline Collapsed collapse(const Shape& sa, const Shape& sb, const Shape& s) {
  Collapsed c;
  for (std::size_t k = 0; k < s.size(); ++k) {
    if (s[k] == 1) continue;
    const std::size_t from_end = s.size() - k;  // the axis, counted from the last
    const bool in_a = from_end <= sa.size() && sa[sa.size() - from_end] != 1,
               in_b = from_end <= sb.size() && sb[sb.size() - from_end] != 1;
    if (!c.s.empty() && (c.sa.back() != 1) == in_a && (c.sb.back() != 1) == in_b) {
      c.s.back() *= s[k];
      if (in_a) c.sa.back() *= s[k];
      if (in_b) c.sb.back() *= s[k];
      continue;
    }
    c.s.push_back(s[k]), c.sa.push_back(in_a ? s[k] : 1), c.sb.push_back(in_b ? s[k] : 1);
  }
  if (c.s.empty()) c.s = c.sa = c.sb = Shape{1};
  return c;
}

// The strides of an operand of shape `small` (the rank of s) in a broadcast to s, in elements, 0
// along the axes it is repeated on.
inline std::vector<std::size_t> broadcast_strides(const Shape& small, const Shape& s) {
  std::vector<std::size_t> strides(s.size(), 0);
  for (std::size_t k = s.size(), step = 1; k-- > 0;) {
    strides[k] = small[k] == 1 ? 0 : step;
    step *= small[k];
  }
  return strides;
}

// The offset, by `strides`, of row r of a result of shape s seen as rows of s.back() elements.
inline std::size_t row_offset(std::size_t r, const Shape& s,
                              const std::vector<std::size_t>& strides) {
  std::size_t offset = 0;
  for (std::size_t k = s.size() - 1; k-- > 0;) {  // axes s.size() - 2 .. 0
    offset += (r % s[k]) * strides[k];
    r /= s[k];
  }
  return offset;
}

// out = f(a, b) for any broadcast of a (shape sa) and b (sb) to s: the collapsed result's rows,
// each operand read at its row's offset and along the row with step 1 or 0.
template <class T, class F>
xt::xarray<T> broadcast_zip(const xt::xarray<T>& a, const Shape& sa, const xt::xarray<T>& b,
                            const Shape& sb, const Shape& s, F f) {
  xt::xarray<T> out = xt::xarray<T>::from_shape(s);
  const Collapsed c = collapse(sa, sb, s);
  const std::size_t len = c.s.back(), nrows = len ? out.size() / len : 0;
  const std::vector<std::size_t> ta = broadcast_strides(c.sa, c.s),
                                 tb = broadcast_strides(c.sb, c.s);
  const bool step_a = ta.back() != 0, step_b = tb.back() != 0;
#pragma omp parallel for if (out.size() >= kParallelGrain)
  for (long r = 0; r < static_cast<long>(nrows); ++r) {
    const T *x = a.data() + row_offset(std::size_t(r), c.s, ta),
            *y = b.data() + row_offset(std::size_t(r), c.s, tb);
    T* o = out.data() + std::size_t(r) * len;
    if (step_a && step_b) {
      for (std::size_t j = 0; j < len; ++j) o[j] = f(x[j], y[j]);
    } else if (step_a) {
      const T yv = *y;
      for (std::size_t j = 0; j < len; ++j) o[j] = f(x[j], yv);
    } else if (step_b) {
      const T xv = *x;
      for (std::size_t j = 0; j < len; ++j) o[j] = f(xv, y[j]);
    } else {
      std::fill(o, o + len, f(*x, *y));
    }
  }
  return out;
}

// a (any shape holding numel(sa) elements, seen as sa) broadcast to s, materialised.
template <class T>
xt::xarray<T> broadcast_to(const xt::xarray<T>& a, const Shape& sa, const Shape& s) {
  xt::xarray<T> out = xt::xarray<T>::from_shape(s);
  const Collapsed c = collapse(sa, sa, s);
  const std::size_t len = c.s.back(), nrows = len ? out.size() / len : 0;
  const std::vector<std::size_t> ta = broadcast_strides(c.sa, c.s);
  const bool step = ta.back() != 0;
#pragma omp parallel for if (out.size() >= kParallelGrain)
  for (long r = 0; r < static_cast<long>(nrows); ++r) {
    const T* x = a.data() + row_offset(std::size_t(r), c.s, ta);
    T* o = out.data() + std::size_t(r) * len;
    if (step)
      std::copy(x, x + len, o);
    else
      std::fill(o, o + len, *x);
  }
  return out;
}

// out = f(a, b) with NumPy broadcasting. Equal shapes and a one-element operand (w in the chapter's
// (q - k) * w) are flat loops; any other broadcast (a row against a matrix, a column against a
// row, queries against keys) is broadcast_zip's row loop: no operand is materialised at the
// result's shape.
template <class T, class F>
xt::xarray<T> zip(const xt::xarray<T>& a, const xt::xarray<T>& b, F f) {
  const Shape sa = to_shape(a.shape()), sb = to_shape(b.shape());
  const Shape s = broadcast_shapes("zip", sa, sb);
  if (sa == sb) {
    xt::xarray<T> out = xt::xarray<T>::from_shape(a.shape());
    const T *x = a.data(), *y = b.data();
    T* o = out.data();
    const long n = static_cast<long>(a.size());
#pragma omp parallel for if (a.size() >= kParallelGrain)
    for (long i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    return out;
  }
  if (b.size() == 1 && numel(s) == a.size()) {
    const T y = *b.data();
    xt::xarray<T> out = map(a, [&](T x) { return f(x, y); });
    out.reshape(s);
    return out;
  }
  if (a.size() == 1 && numel(s) == b.size()) {
    const T x = *a.data();
    xt::xarray<T> out = map(b, [&](T y) { return f(x, y); });
    out.reshape(s);
    return out;
  }
  return broadcast_zip(a, sa, b, sb, s, f);
}

// out[i] = f(a[i], b[i], c[i]) for equal-length arrays (the backward's grad * dydx(x, y)).
template <class T, class F>
void zip3_into(const T* a, const T* b, const T* c, T* out, std::size_t size, F f) {
  const long n = static_cast<long>(size);
#pragma omp parallel for if (size >= kParallelGrain)
  for (long i = 0; i < n; ++i) out[i] = f(a[i], b[i], c[i]);
}

}  // namespace kernels
}  // namespace tapegrad
