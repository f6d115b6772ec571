#include "ops/kernels/nearest.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/kernels/parallel.h"

namespace tapegrad {
namespace kernels {
namespace {

using LD = long double;

// Half the excess of key k's squared scaled distance from q over key x's (< 0: k is nearer).
template <class T>
LD excess(const T* q, const T* k, const T* x, const T* w, std::size_t w_size, std::size_t d) {
  LD s = 0;
  for (std::size_t c = 0; c < d; ++c) {
    const LD wc = w[w_size == 1 ? 0 : c];
    s += (LD(x[c]) - k[c]) * wc * ((LD(q[c]) - k[c]) / 2 + (LD(q[c]) - x[c]) / 2) * wc;
  }
  return s;
}

// dist[j] = sum_c ((q_c - k_jc) w_c)^2 in T for the m keys; returns the smallest, or NaN when
// some distance is not finite.
template <class T>
T distances(const T* q, const T* keys, std::size_t m, const T* w, std::size_t w_size, std::size_t d,
            T* dist) {
  for (std::size_t c = 0; c < d; ++c) {
    const T qc = q[c], wc = w[w_size == 1 ? 0 : c];
    if (c == 0) {
#pragma omp simd
      for (std::size_t j = 0; j < m; ++j) {
        const T a = (qc - keys[j * d]) * wc;
        dist[j] = a * a;
      }
      continue;
    }
#pragma omp simd
    for (std::size_t j = 0; j < m; ++j) {
      const T a = (qc - keys[j * d + c]) * wc;
      dist[j] += a * a;
    }
  }
  T smallest = std::numeric_limits<T>::infinity();
  int finite = 1;  // (no omp simd: clang does not vectorise a min without -ffast-math)
  for (std::size_t j = 0; j < m; ++j) {
    finite &= dist[j] <= std::numeric_limits<T>::max();  // false for inf and NaN
    smallest = std::min(smallest, dist[j]);
  }
  return finite ? smallest : std::numeric_limits<T>::quiet_NaN();
}

// Query q's nearest key: the scan over the keys whose T distance is within rounding of the
// smallest (each of the d + 3 roundings of a distance is at most eps relative; a square that
// underflows or is flushed to 0 is off by less than the smallest normal number), in index order.
template <class T>
std::size_t nearest_of_row(const T* q, const T* keys, std::size_t m, const T* w, std::size_t w_size,
                           std::size_t d, T* dist) {
  const T smallest = distances(q, keys, m, w, w_size, d, dist);
  if (!(smallest <= std::numeric_limits<T>::max() / 4))  // NaN, inf or near overflow: all keys
    return nearest_key_scan(q, keys, m, w, w_size, d);
  const T eps = std::numeric_limits<T>::epsilon(), tiny = std::numeric_limits<T>::min();
  const T bound = smallest * (1 + 8 * T(d + 3) * eps) + 4 * T(d) * tiny;
  std::size_t best = m;
  for (std::size_t j = 0; j < m; ++j)
    if (dist[j] <= bound &&
        (best == m || excess(q, keys + j * d, keys + best * d, w, w_size, d) < 0))
      best = j;
  return best;
}

}  // namespace

template <class T>
std::size_t nearest_key_scan(const T* q, const T* keys, std::size_t m, const T* w,
                             std::size_t w_size, std::size_t d) {
  std::size_t best = 0;
  for (std::size_t j = 1; j < m; ++j)
    if (excess(q, keys + j * d, keys + best * d, w, w_size, d) < 0) best = j;
  return best;
}

template <class T>
std::vector<std::size_t> nearest_keys(const T* queries, std::size_t n, const T* keys, std::size_t m,
                                      bool keys_per_row, const T* w, std::size_t w_size,
                                      std::size_t d) {
  std::vector<std::size_t> nearest(n, 0);
  if (m == 0) return nearest;
  const int threads = n * m * d >= kParallelGrain ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const FlushDenormals flush;
    std::vector<T> dist(m);
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const std::size_t i = static_cast<std::size_t>(il);
      const T* block = keys + (keys_per_row ? i * m * d : 0);
      nearest[i] = nearest_of_row(queries + i * d, block, m, w, w_size, d, dist.data());
    }
  }
  return nearest;
}

#define TAPEGRAD_INSTANTIATE_NEAREST(T)                                                         \
  template std::vector<std::size_t> nearest_keys(const T*, std::size_t, const T*, std::size_t,  \
                                                 bool, const T*, std::size_t, std::size_t);     \
  template std::size_t nearest_key_scan(const T*, const T*, std::size_t, const T*, std::size_t, \
                                        std::size_t);
TAPEGRAD_INSTANTIATE_NEAREST(float)
TAPEGRAD_INSTANTIATE_NEAREST(double)
#undef TAPEGRAD_INSTANTIATE_NEAREST

}  // namespace kernels
}  // namespace tapegrad
