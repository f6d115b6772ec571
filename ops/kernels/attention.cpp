#include "ops/kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tapegrad::kernels {

// INTERIM (replaced by ops/kernels/{parallel,softmax}.h when the kernels layer lands).
constexpr std::size_t kParallelGrain = 1 << 15;
template <class T>
void softmax_row(const T* logits, T* out, std::size_t len) {
  T mx = -std::numeric_limits<T>::infinity();
  for (std::size_t t = 0; t < len; ++t) mx = std::max(mx, logits[t]);
  T z = 0;
  for (std::size_t t = 0; t < len; ++t) z += out[t] = std::exp(logits[t] - mx);
  const T inv = T(1) / z;
  for (std::size_t t = 0; t < len; ++t) out[t] *= inv;
}

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

// One query row. Writes excess[t] and the weights p[t] for the window's keys t = s - lo, and
// returns the window. Logits are excess * (-w^2 / 2), the skipped key's is -inf (weight 0).
template <class T>
KeyWindow row_weights(const SortedKeys<T>& keys, T q, T w, std::size_t skip, T* excess, T* p) {
  const T nearest = nearest_distance(keys.key, q, skip);
  const KeyWindow win = key_window(keys.key, q, w, skip, nearest);
  const T* k = keys.key.data() + win.lo;
  const std::size_t len = win.hi - win.lo;
  const T scale = (w * w) * T(-0.5);
  for (std::size_t t = 0; t < len; ++t) {
    const T dist = std::abs(q - k[t]);
    excess[t] = (dist - nearest) * (dist + nearest);
    p[t] = excess[t] * scale;
  }
  if (win.skip != kNoSkip) p[win.skip - win.lo] = -std::numeric_limits<T>::infinity();
  softmax_row(p, p, len);
  return win;
}

// The work to split across threads: rows times keys (an upper bound on the pairs visited).
inline bool worth_parallel(std::size_t n, std::size_t m) {
  return n * m >= kParallelGrain;
}

template <class T>
void row_sums(const SortedKeys<T>& keys, T q, const KeyWindow& win, const T* excess, const T* p,
              bool want_slopes, T& f, T& slope_w, T& slope_q) {
  const T* v = keys.value.data() + win.lo;
  const T* k = keys.key.data() + win.lo;
  const std::size_t len = win.hi - win.lo;
  T pooled = 0;
  for (std::size_t t = 0; t < len; ++t) pooled += p[t] * v[t];
  f = pooled;
  if (!want_slopes) return;
  T sw = 0, sq = 0;
  for (std::size_t t = 0; t < len; ++t) {
    const T weighted = p[t] * (v[t] - pooled);
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
  if (want_slopes) rows.slope_w.resize(n), rows.slope_q.resize(n);
#pragma omp parallel if (worth_parallel(n, m))
  {
    std::vector<T> excess(m), p(m);  // this thread's row buffers
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const std::size_t skip = leave_one_out ? keys.sorted_at[i] : kNoSkip;
      const KeyWindow win = row_weights(keys, queries[i], w, skip, excess.data(), p.data());
      T slope_w = 0, slope_q = 0;
      row_sums(keys, queries[i], win, excess.data(), p.data(), want_slopes, rows.f[i], slope_w,
               slope_q);
      if (want_slopes) rows.slope_w[i] = slope_w, rows.slope_q[i] = slope_q;
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

#define TAPEGRAD_INSTANTIATE(T)                                                                 \
  template SortedKeys<T> sort_keys(const T*, const T*, std::size_t);                            \
  template PoolRows<T> gaussian_pool_rows(const T*, std::size_t, const SortedKeys<T>&, T, bool, \
                                          bool, bool);                                          \
  template void gaussian_pool_key_grads(const T*, std::size_t, const SortedKeys<T>&, T, bool,   \
                                        const T*, const PoolRows<T>&, T*, T*);                  \
  template void gaussian_attention_matrix(const T*, std::size_t, const SortedKeys<T>&, T, bool, T*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::kernels
