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

// out[r, j] = f(a[r, j], row[j]): `a` seen as rows of row.size() elements.
template <class T, class F>
xt::xarray<T> rows(const xt::xarray<T>& a, const xt::xarray<T>& row, F f) {
  xt::xarray<T> out = xt::xarray<T>::from_shape(a.shape());
  const std::size_t len = row.size(), nrows = a.size() / len;
  const T *x = a.data(), *y = row.data();
  T* o = out.data();
#pragma omp parallel for if (a.size() >= kParallelGrain)
  for (long r = 0; r < static_cast<long>(nrows); ++r) {
    const T* xr = x + r * len;  // per-row pointers keep the inner loop contiguous to the compiler
    T* orow = o + r * len;
    for (std::size_t j = 0; j < len; ++j) orow[j] = f(xr[j], y[j]);
  }
  return out;
}

// out[r, j] = f(col[r], row[j]): a column against a row, the outer-product broadcast of
// x_query[:, None] - x_train[None, :] (nadaraya_watson()'s differences), without materialising
// either operand at the result's shape.
template <class T, class F>
xt::xarray<T> outer(const xt::xarray<T>& col, const xt::xarray<T>& row, const Shape& s, F f) {
  xt::xarray<T> out = xt::xarray<T>::from_shape(s);
  const std::size_t len = row.size(), nrows = col.size();
  const T *c = col.data(), *y = row.data();
  T* o = out.data();
#pragma omp parallel for if (nrows * len >= kParallelGrain)
  for (long r = 0; r < static_cast<long>(nrows); ++r) {
    const T x = c[r];
    T* orow = o + r * len;
    for (std::size_t j = 0; j < len; ++j) orow[j] = f(x, y[j]);
  }
  return out;
}

// The shape tests of zip's fast paths: `small` is `s` with its last extent 1 (a column), or a row
// of s.back() elements broadcast along every leading axis.
inline bool is_column_of(const Shape& small, const Shape& s) {
  return !s.empty() && small.size() == s.size() && small.back() == 1 &&
         std::equal(small.begin(), small.end() - 1, s.begin());
}
inline bool is_row_of(const Shape& small, const Shape& s) {
  std::size_t k = 0;
  while (k < small.size() && small[k] == 1) ++k;
  return !s.empty() && small.size() - k == 1 && small.back() == s.back();
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
// (q - k) * w) are plain loops, rows and columns against matrices their own loops, and any other
// broadcast broadcast_zip's row loop: no operand is materialised at the result's shape.
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
  // One operand a row repeated along leading axes, e.g. (n, m) - (m,) as in the chapter's
  // X_repeat - x_train: loop over rows without materialising the repeated operand.
  const auto trailing = [](const Shape& big, const Shape& small) {
    std::size_t k = 0;
    while (k < small.size() && small[k] == 1) ++k;  // leading 1s of the small shape do not matter
    return small.size() - k <= big.size() && small.size() <= big.size() &&
           std::equal(small.begin() + static_cast<long>(k), small.end(),
                      big.end() - static_cast<long>(small.size() - k));
  };
  if (sa == s && b.size() > 0 && trailing(sa, sb))
    return rows(a, b, [&](T x, T y) { return f(x, y); });
  if (sb == s && a.size() > 0 && trailing(sb, sa))
    return rows(b, a, [&](T y, T x) { return f(x, y); });
  if (is_column_of(sa, s) && is_row_of(sb, s) && b.size() > 0) return outer(a, b, s, f);
  if (is_column_of(sb, s) && is_row_of(sa, s) && a.size() > 0)
    return outer(b, a, s, [&](T y, T x) { return f(x, y); });
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
