// Softmax kernels (see softmax.h for the math and the special rows). Two layouts:
// - rows (softmax along the last axis, inner == 1): each row is contiguous, every loop is a
//   contiguous vector loop over the row;
// - columns (inner > 1): `inner` independent softmaxes side by side, element (k, i) at
//   k * inner + i; the loops run over i (contiguous) for each k, with per-column max and sum.
#include "ops/kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/kernels/exp.h"
#include "ops/kernels/parallel.h"

namespace tapegrad {
namespace kernels {

namespace {

// max_k x[k]; NaNs are skipped here and reach the result through exp(NaN - m) instead.
// Kept in kLanes running maxima, x[k] going to lane k % kLanes, then the lanes are combined: the
// lane update is an elementwise loop that gcc and clang vectorise. (A max reduction written as
// one accumulator, even under `omp simd reduction(max : m)`, is not vectorised by clang unless it
// may assume no NaN, i.e. -ffast-math.)
template <class T>
T row_max(const T* x, std::size_t len) {
  constexpr std::size_t kLanes = 64 / sizeof(T);  // one 512-bit vector, or two or four narrower
  T lane[kLanes];
  std::fill(lane, lane + kLanes, -std::numeric_limits<T>::infinity());
  std::size_t k = 0;
  for (; k + kLanes <= len; k += kLanes)
    for (std::size_t j = 0; j < kLanes; ++j) lane[j] = x[k + j] > lane[j] ? x[k + j] : lane[j];
  for (; k < len; ++k) lane[0] = x[k] > lane[0] ? x[k] : lane[0];
  T m = lane[0];
  for (std::size_t j = 1; j < kLanes; ++j) m = lane[j] > m ? lane[j] : m;
  return m;
}

template <class T>
T row_sum(const T* x, std::size_t len) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (std::size_t k = 0; k < len; ++k) s += x[k];
  return s;
}

// Asks for the `len` elements at `next` (the thread's next row) to be brought
// into the cache, one request per 64-byte line, while the current row is being computed: a row
// kernel reads its row from memory in its first pass and then computes on it from the cache, so
// without this the memory sits idle during the compute and the compute waits during the read.
// The requests are spread over the row in blocks (asking for a whole row at once stalls the core;
// docs/performance.md has the measurements). A prefetch never faults and changes no value.
template <class T>
constexpr std::size_t kPrefetchBlock = 1024 / sizeof(T);  // 16 cache lines

template <class T>
void prefetch_row(const T* next, std::size_t len) {
  for (std::size_t k = 0; k < len; k += 64 / sizeof(T)) __builtin_prefetch(next + k, 0, 2);
}

// Whether a row follows the one at offset b of the (outer, len) rows.
inline bool has_next_row(std::size_t b, const AxisSplit& s) {
  return b + s.len < s.outer * s.len;
}

// Columns [i0, i1) of one (len, inner) block: m[i] = max_k x[k, i], i0 <= i < i1.
template <class T>
void column_max(const T* x, std::size_t len, std::size_t inner, std::size_t i0, std::size_t i1,
                T* m) {
  std::fill(m + i0, m + i1, -std::numeric_limits<T>::infinity());
  for (std::size_t k = 0; k < len; ++k) {
    const T* row = x + k * inner;
    for (std::size_t i = i0; i < i1; ++i) m[i] = row[i] > m[i] ? row[i] : m[i];
  }
}

// Column blocks of at most this many columns are the unit of work for the column layout.
constexpr std::size_t kColumnBlock = 256;

// Calls f(base, i0, i1) for every (outer block, column range) of the (outer, len, inner) view:
// base = o * len * inner is the block's first element, [i0, i1) its columns. Parallel above the
// grain; each call touches its own columns only.
template <class F>
void for_each_column_block(const AxisSplit& s, F f) {
  const std::size_t chunks = (s.inner + kColumnBlock - 1) / kColumnBlock;
  const long tasks = static_cast<long>(s.outer * chunks);
#pragma omp parallel if (s.outer * s.len * s.inner >= kParallelGrain)
  {
    const FlushDenormals flush;  // see parallel.h
#pragma omp for
    for (long t = 0; t < tasks; ++t) {
      const std::size_t o = static_cast<std::size_t>(t) / chunks,
                        c = static_cast<std::size_t>(t) % chunks;
      f(o * s.len * s.inner, c * kColumnBlock, std::min(s.inner, (c + 1) * kColumnBlock));
    }
  }
}

// Calls row(x + r * len, ...) for every row r < rows, in parallel above the grain.
template <class F>
void for_each_row(const AxisSplit& s, F row) {
  const long rows = static_cast<long>(s.outer);
#pragma omp parallel if (s.outer * s.len >= kParallelGrain)
  {
    const FlushDenormals flush;  // see parallel.h
#pragma omp for
    for (long r = 0; r < rows; ++r) row(static_cast<std::size_t>(r) * s.len);
  }
}

template <class T>
void softmax_columns(const T* x, T* y, std::size_t len, std::size_t inner, std::size_t i0,
                     std::size_t i1) {
  std::vector<T> m(inner), z(inner, T(0));
  column_max(x, len, inner, i0, i1, m.data());
  for (std::size_t k = 0; k < len; ++k) {
    const T* xr = x + k * inner;
    T* yr = y + k * inner;
    for (std::size_t i = i0; i < i1; ++i) {
      yr[i] = fast_exp(xr[i] - m[i]);
      z[i] += yr[i];
    }
  }
  for (std::size_t i = i0; i < i1; ++i) z[i] = T(1) / z[i];
  for (std::size_t k = 0; k < len; ++k)
    for (std::size_t i = i0; i < i1; ++i) y[k * inner + i] *= z[i];
}

template <class T>
void softmax_columns_backward(const T* y, const T* g, T* d, std::size_t len, std::size_t inner,
                              std::size_t i0, std::size_t i1) {
  std::vector<T> dot(inner, T(0));  // sum_k g[k, i] y[k, i]
  for (std::size_t k = 0; k < len; ++k)
    for (std::size_t i = i0; i < i1; ++i) dot[i] += g[k * inner + i] * y[k * inner + i];
  for (std::size_t k = 0; k < len; ++k)
    for (std::size_t i = i0; i < i1; ++i)
      d[k * inner + i] = y[k * inner + i] * (g[k * inner + i] - dot[i]);
}

template <class T>
void log_softmax_columns(const T* x, T* y, std::size_t len, std::size_t inner, std::size_t i0,
                         std::size_t i1) {
  std::vector<T> m(inner), z(inner, T(0));
  column_max(x, len, inner, i0, i1, m.data());
  for (std::size_t k = 0; k < len; ++k)
    for (std::size_t i = i0; i < i1; ++i) {
      const T shifted = x[k * inner + i] - m[i];
      y[k * inner + i] = shifted;
      z[i] += fast_exp(shifted);
    }
  for (std::size_t i = i0; i < i1; ++i) z[i] = std::log(z[i]);
  for (std::size_t k = 0; k < len; ++k)
    for (std::size_t i = i0; i < i1; ++i) y[k * inner + i] -= z[i];
}

template <class T>
void log_softmax_columns_backward(const T* y, const T* g, T* d, std::size_t len, std::size_t inner,
                                  std::size_t i0, std::size_t i1) {
  std::vector<T> gsum(inner, T(0));
  for (std::size_t k = 0; k < len; ++k)
    for (std::size_t i = i0; i < i1; ++i) gsum[i] += g[k * inner + i];
  for (std::size_t k = 0; k < len; ++k)
    for (std::size_t i = i0; i < i1; ++i)
      d[k * inner + i] = g[k * inner + i] - fast_exp(y[k * inner + i]) * gsum[i];
}

// softmax_row, asking for the next row (the len elements after this one, when has_next) once this
// one is in the cache.
template <class T>
void softmax_row_then(const T* logits, T* out, std::size_t len, bool has_next) {
  const T m = row_max(logits, len);  // the row's one read from memory
  // out = exp(x - m), m = max(x): every argument <= 0 (NaN rows stay NaN), in blocks of kBlock,
  // each preceded by the requests for the same block of the next row: a few requests at a time
  // keep the memory busy, 250 at once (a 16 KB row) stall the core until they are served.
  T z = 0;
  for (std::size_t k0 = 0; k0 < len; k0 += kPrefetchBlock<T>) {
    const std::size_t block = std::min(kPrefetchBlock<T>, len - k0);
    if (has_next) prefetch_row(logits + len + k0, block);
    z += exp_shifted_sum_from_max(logits + k0, m, out + k0, block);
  }
  const T inv_z = T(1) / z;
#pragma omp simd
  for (std::size_t k = 0; k < len; ++k) out[k] *= inv_z;
}

// The backward of one row, grad_in[k] = y[k] (grad[k] - sum_j grad[j] y[j]), y the softmax
// output, asking for the next rows of y and grad (when has_next) as softmax_row_then does.
template <class T>
void softmax_row_backward_then(const T* y, const T* grad, T* grad_in, std::size_t len,
                               bool has_next) {
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (std::size_t k = 0; k < len; ++k) dot += grad[k] * y[k];
  for (std::size_t k0 = 0; k0 < len; k0 += kPrefetchBlock<T>) {  // blocks as in softmax_row_then
    const std::size_t k1 = std::min(len, k0 + kPrefetchBlock<T>);
    if (has_next) prefetch_row(y + len + k0, k1 - k0), prefetch_row(grad + len + k0, k1 - k0);
#pragma omp simd
    for (std::size_t k = k0; k < k1; ++k) grad_in[k] = y[k] * (grad[k] - dot);
  }
}

}  // namespace

template <class T>
void softmax_row(const T* logits, T* out, std::size_t len) {
  softmax_row_then(logits, out, len, false);
}

// (x - m) - log z, not x - (m + log z): m + log z rounds at the magnitude of m, so for
// x = [-1000, -1001] in float the latter loses every digit of log z below 6e-5.
template <class T>
void log_softmax_row(const T* logits, T* out, std::size_t len) {
  const T m = row_max(logits, len);
  T z = 0;
#pragma omp simd reduction(+ : z)
  for (std::size_t k = 0; k < len; ++k) {
    out[k] = logits[k] - m;
    z += fast_exp(out[k]);
  }
  const T log_z = std::log(z);
#pragma omp simd
  for (std::size_t k = 0; k < len; ++k) out[k] -= log_z;
}

template <class T>
void log_softmax_row_backward(const T* y, const T* grad, T* grad_in, std::size_t len) {
  const T gsum = row_sum(grad, len);
#pragma omp simd
  for (std::size_t k = 0; k < len; ++k) grad_in[k] = grad[k] - fast_exp(y[k]) * gsum;
}

template <class T>
void softmax(const T* x, T* y, const AxisSplit& s) {
  if (s.inner == 1)
    return for_each_row(
        s, [=](std::size_t b) { softmax_row_then(x + b, y + b, s.len, has_next_row(b, s)); });
  for_each_column_block(s, [=](std::size_t b, std::size_t i0, std::size_t i1) {
    softmax_columns(x + b, y + b, s.len, s.inner, i0, i1);
  });
}

template <class T>
void softmax_backward(const T* y, const T* grad, T* grad_in, const AxisSplit& s) {
  if (s.inner == 1)
    return for_each_row(s, [=](std::size_t b) {
      softmax_row_backward_then(y + b, grad + b, grad_in + b, s.len, has_next_row(b, s));
    });
  for_each_column_block(s, [=](std::size_t b, std::size_t i0, std::size_t i1) {
    softmax_columns_backward(y + b, grad + b, grad_in + b, s.len, s.inner, i0, i1);
  });
}

template <class T>
void log_softmax(const T* x, T* y, const AxisSplit& s) {
  if (s.inner == 1)
    return for_each_row(s, [=](std::size_t b) { log_softmax_row(x + b, y + b, s.len); });
  for_each_column_block(s, [=](std::size_t b, std::size_t i0, std::size_t i1) {
    log_softmax_columns(x + b, y + b, s.len, s.inner, i0, i1);
  });
}

template <class T>
void log_softmax_backward(const T* y, const T* grad, T* grad_in, const AxisSplit& s) {
  if (s.inner == 1)
    return for_each_row(
        s, [=](std::size_t b) { log_softmax_row_backward(y + b, grad + b, grad_in + b, s.len); });
  for_each_column_block(s, [=](std::size_t b, std::size_t i0, std::size_t i1) {
    log_softmax_columns_backward(y + b, grad + b, grad_in + b, s.len, s.inner, i0, i1);
  });
}

#define TAPEGRAD_INSTANTIATE(T)                                                \
  template void softmax_row(const T*, T*, std::size_t);                        \
  template void log_softmax_row(const T*, T*, std::size_t);                    \
  template void log_softmax_row_backward(const T*, const T*, T*, std::size_t); \
  template void softmax(const T*, T*, const AxisSplit&);                       \
  template void softmax_backward(const T*, const T*, T*, const AxisSplit&);    \
  template void log_softmax(const T*, T*, const AxisSplit&);                   \
  template void log_softmax_backward(const T*, const T*, T*, const AxisSplit&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace kernels
}  // namespace tapegrad
