#include "ops/kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/kernels/exp.h"
#include "ops/kernels/parallel.h"
#include "ops/kernels/softmax.h"

namespace tapegrad::kernels {

template <class T>
SortedKeys<T> sort_keys(const T* keys, const T* values, std::size_t m) {
  SortedKeys<T> s;
  s.original.resize(m);
  std::iota(s.original.begin(), s.original.end(), std::size_t(0));
  // Stable, so that equal keys keep the caller's order (and sums their order).
  std::stable_sort(s.original.begin(), s.original.end(),
                   [keys](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
  s.key.resize(m), s.value.resize(m), s.sorted_at.resize(m);
  for (std::size_t pos = 0; pos < m; ++pos) {
    s.key[pos] = keys[s.original[pos]];
    s.value[pos] = values[s.original[pos]];
    s.sorted_at[s.original[pos]] = pos;
  }
  return s;
}

namespace {

// min_j |q - k_j| over the keys but `skip`. The keys are sorted and fl(q - k) is monotone in k, so
// the nearest one is beside q's insertion point: one of the two below it or the two above it.
template <class T>
T nearest_distance(const std::vector<T>& key, T q, std::size_t skip) {
  const std::size_t m = key.size();
  const auto pos =
      static_cast<std::size_t>(std::lower_bound(key.begin(), key.end(), q) - key.begin());
  T nearest = std::numeric_limits<T>::infinity();
  for (std::size_t s = pos >= 2 ? pos - 2 : 0; s < std::min(m, pos + 2); ++s)
    if (s != skip) nearest = std::min(nearest, std::abs(q - key[s]));
  return nearest;
}

// The keys whose weight can be non-zero: |q - k| <= radius, radius^2 = nearest^2 + 2 kUnderflow /
// w^2 (hypot: no overflow; w = 0 or NaN: every key). Same rounding as the logits: fl(q - k).
template <class T>
KeyWindow key_window(const std::vector<T>& key, T q, T w, std::size_t skip, T nearest) {
  T radius = std::hypot(nearest, std::sqrt(2 * kUnderflow<T>) / std::abs(w));
  if (std::isnan(radius)) radius = std::numeric_limits<T>::infinity();
  const auto mid = std::lower_bound(key.begin(), key.end(), q);
  const auto lo = std::partition_point(key.begin(), mid, [=](T k) { return q - k > radius; });
  const auto hi = std::partition_point(mid, key.end(), [=](T k) { return k - q <= radius; });
  KeyWindow win;
  win.lo = static_cast<std::size_t>(lo - key.begin());
  win.hi = static_cast<std::size_t>(hi - key.begin());
  win.skip = (skip >= win.lo && skip < win.hi) ? skip : kNoSkip;
  return win;
}

// One query row: the window, and for its keys t = s - lo the excess[t] and the softmax weights
// p[t] = softmax_t(logit_t), through the library's one stable softmax (kernels/softmax.h; the
// skipped key's logit is -inf, so its weight is exactly 0). The row's maximum logit is known, 0 at
// the nearest key, so the softmax skips its search for it.
template <class T>
KeyWindow row_weights(const SortedKeys<T>& keys, T q, T w, std::size_t skip, T* excess, T* p) {
  const T nearest = nearest_distance(keys.key, q, skip);
  const KeyWindow win = key_window(keys.key, q, w, skip, nearest);
  const T* k = keys.key.data() + win.lo;
  const std::size_t len = win.hi - win.lo;
#pragma omp simd
  for (std::size_t t = 0; t < len; ++t) {
    const T dist = std::abs(q - k[t]);
    excess[t] = (dist - nearest) * (dist + nearest);
    p[t] = gaussian_logit(dist, nearest, w);
  }
  if (win.skip != kNoSkip) p[win.skip - win.lo] = -std::numeric_limits<T>::infinity();
  softmax_row_from_max(p, T(0), p, len);
  return win;
}

// The work to split across threads: rows times keys (an upper bound on the pairs visited).
inline bool worth_parallel(std::size_t n, std::size_t m) {
  return n * m >= kParallelGrain;
}

// f = sum_t p_t v_t over the row's window.
template <class T>
T row_pool(const SortedKeys<T>& keys, const KeyWindow& win, const T* p) {
  const T* v = keys.value.data() + win.lo;
  T f = 0;
#pragma omp simd reduction(+ : f)
  for (std::size_t t = 0; t < win.hi - win.lo; ++t) f += p[t] * v[t];
  return f;
}

// slope_w = sum_t p_t (v_t - f) excess_t and slope_q = sum_t p_t (v_t - f) (q - k_t): a second
// pass once f is known (no cancellation between large sums).
template <class T>
void row_slopes(const SortedKeys<T>& keys, T q, const KeyWindow& win, const T* excess, const T* p,
                T f_row, T& slope_w, T& slope_q) {
  const T* v = keys.value.data() + win.lo;
  const T* k = keys.key.data() + win.lo;
  const std::size_t len = win.hi - win.lo;
  T sw = 0, sq = 0;
#pragma omp simd reduction(+ : sw, sq)
  for (std::size_t t = 0; t < len; ++t) {
    const T weighted = p[t] * (v[t] - f_row);
    sw += weighted * excess[t];
    sq += weighted * (q - k[t]);
  }
  slope_w = sw, slope_q = sq;
}

}  // namespace

template <class T>
PoolRows<T> gaussian_pool_rows(const T* queries, std::size_t n, const SortedKeys<T>& keys, T w,
                               bool leave_one_out, bool want_slope_w, bool want_slope_q) {
  const std::size_t m = keys.key.size();
  PoolRows<T> rows;
  rows.f.resize(n);
  const bool want_slopes = want_slope_w || want_slope_q;
  if (want_slopes) rows.slope_w.resize(n), rows.slope_q.resize(n), rows.has_slopes = true;
#pragma omp parallel if (worth_parallel(n, m))
  {
    std::vector<T> excess(m), p(m);  // this thread's row buffers
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const std::size_t skip = leave_one_out ? keys.sorted_at[i] : kNoSkip;
      const KeyWindow win = row_weights(keys, queries[i], w, skip, excess.data(), p.data());
      rows.f[i] = row_pool(keys, win, p.data());
      if (want_slopes)
        row_slopes(keys, queries[i], win, excess.data(), p.data(), rows.f[i], rows.slope_w[i],
                   rows.slope_q[i]);
    }
  }
  return rows;
}

template <class T>
void gaussian_pool_key_grads(const T* queries, std::size_t n, const SortedKeys<T>& keys, T w,
                             bool leave_one_out, const T* grad, const PoolRows<T>& rows,
                             T* grad_keys, T* grad_values) {
  const std::size_t m = keys.key.size();
  const bool parallel = worth_parallel(n, m);
  const int threads = parallel ? omp_get_max_threads() : 1;
  // Each thread adds its rows into its own (m,) partial sums; they are added in thread order
  // afterwards, so the result does not depend on timing.
  std::vector<std::vector<T>> dkeys(threads, std::vector<T>(m)), dvalues = dkeys;
#pragma omp parallel num_threads(threads) if (parallel)
  {
    std::vector<T> excess(m), p(m);
    T* dk = dkeys[omp_get_thread_num()].data();
    T* dv = dvalues[omp_get_thread_num()].data();
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const std::size_t skip = leave_one_out ? keys.sorted_at[i] : kNoSkip;
      const KeyWindow win = row_weights(keys, queries[i], w, skip, excess.data(), p.data());
      for (std::size_t s = win.lo; s < win.hi; ++s) {
        const T gp = grad[i] * p[s - win.lo];  // grad_i p_ij
        dk[s] += gp * (keys.value[s] - rows.f[i]) * (w * w) * (queries[i] - keys.key[s]);
        dv[s] += gp;
      }
    }
  }
  for (std::size_t s = 0; s < m; ++s) {
    T sk = 0, sv = 0;
    for (int t = 0; t < threads; ++t) sk += dkeys[t][s], sv += dvalues[t][s];
    grad_keys[keys.original[s]] += sk;
    grad_values[keys.original[s]] += sv;
  }
}

template <class T>
void gaussian_attention_matrix(const T* queries, std::size_t n, const SortedKeys<T>& keys, T w,
                               bool leave_one_out, T* p) {
  const std::size_t m = keys.key.size();
  std::fill(p, p + n * m, T(0));
#pragma omp parallel if (worth_parallel(n, m))
  {
    std::vector<T> excess(m), weights(m);
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const std::size_t skip = leave_one_out ? keys.sorted_at[i] : kNoSkip;
      const KeyWindow win = row_weights(keys, queries[i], w, skip, excess.data(), weights.data());
      for (std::size_t s = win.lo; s < win.hi; ++s)
        p[i * m + keys.original[s]] = weights[s - win.lo];
    }
  }
}

namespace {

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
  template SortedKeys<T> sort_keys(const T*, const T*, std::size_t);                             \
  template PoolRows<T> gaussian_pool_rows(const T*, std::size_t, const SortedKeys<T>&, T, bool,  \
                                          bool, bool);                                           \
  template void gaussian_pool_key_grads(const T*, std::size_t, const SortedKeys<T>&, T, bool,    \
                                        const T*, const PoolRows<T>&, T*, T*);                   \
  template void gaussian_attention_matrix(const T*, std::size_t, const SortedKeys<T>&, T, bool,  \
                                          T*);                                                   \
  template void gaussian_logits(const T*, std::size_t, std::size_t, T, T*, T*);                  \
  template T gaussian_logits_backward(const T*, const T*, const T*, std::size_t, std::size_t, T, \
                                      T*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::kernels
