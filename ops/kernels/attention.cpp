#include "ops/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/kernels/parallel.h"

namespace tapegrad::kernels {

namespace {

inline bool worth_parallel(std::size_t n, std::size_t m) {
  return n * m >= kParallelGrain;
}

// min_j |x[j]|, in kLanes running minima (x[j] to lane j % kLanes) combined at the end: an
// elementwise lane update that gcc and clang both vectorise, where a min reduction over one
// accumulator is not vectorised by clang without -ffast-math (see row_max in softmax.cpp).
template <class T>
T min_abs(const T* x, std::size_t len) {
  constexpr std::size_t kLanes = 64 / sizeof(T);
  T lane[kLanes];
  std::fill(lane, lane + kLanes, std::numeric_limits<T>::infinity());
  std::size_t j = 0;
  for (; j + kLanes <= len; j += kLanes)
    for (std::size_t l = 0; l < kLanes; ++l) {
      const T a = std::abs(x[j + l]);
      lane[l] = a < lane[l] ? a : lane[l];
    }
  for (; j < len; ++j) lane[0] = std::abs(x[j]) < lane[0] ? std::abs(x[j]) : lane[0];
  T smallest = lane[0];
  for (std::size_t l = 1; l < kLanes; ++l) smallest = lane[l] < smallest ? lane[l] : smallest;
  return smallest;
}

}  // namespace

template <class T>
void gaussian_logits(const T* d, std::size_t n, std::size_t m, T w, T* logits, T* nearest) {
#pragma omp parallel for schedule(static) if (worth_parallel(n, m))
  for (long il = 0; il < static_cast<long>(n); ++il) {
    const T* row = d + static_cast<std::size_t>(il) * m;
    T* out = logits + static_cast<std::size_t>(il) * m;
    const T closest = min_abs(row, m);
    nearest[il] = closest;
#pragma omp simd
    for (std::size_t j = 0; j < m; ++j) out[j] = gaussian_logit(std::abs(row[j]), closest, w);
  }
}

template <class T>
T gaussian_logits_backward(const T* d, const T* nearest, const T* grad, std::size_t n,
                           std::size_t m, T w, T* grad_d) {
  const T w2 = w * w;
  T grad_w = 0;
#pragma omp parallel for schedule(static) reduction(+ : grad_w) if (worth_parallel(n, m))
  for (long il = 0; il < static_cast<long>(n); ++il) {
    const std::size_t off = static_cast<std::size_t>(il) * m;
    const T *row = d + off, *g = grad + off;
    T* out = grad_d + off;
    const T closest = nearest[il];
    T row_grad = 0, row_w = 0;
#pragma omp simd reduction(+ : row_grad, row_w)
    for (std::size_t j = 0; j < m; ++j) {
      const T dist = std::abs(row[j]);
      out[j] = -w2 * row[j] * g[j];
      row_grad += g[j];
      row_w += g[j] * ((dist - closest) * (dist + closest));
    }
    std::size_t argmin = 0;
    while (argmin + 1 < m && std::abs(row[argmin]) != closest) ++argmin;
    out[argmin] += w2 * row[argmin] * row_grad;
    grad_w += -w * row_w;
  }
  return grad_w;
}

#define TAPEGRAD_INSTANTIATE(T)                                                                  \
  template void gaussian_logits(const T*, std::size_t, std::size_t, T, T*, T*);                  \
  template T gaussian_logits_backward(const T*, const T*, const T*, std::size_t, std::size_t, T, \
                                      T*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::kernels
