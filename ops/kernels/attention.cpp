#include "ops/kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/kernels/exp.h"
#include "ops/kernels/parallel.h"

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

// One query row: its query, the distance to its nearest key, and its window of keys.
template <class T>
struct Row {
  T q = 0, nearest = 0;
  KeyWindow win;
};

template <class T>
Row<T> row_at(const SortedKeys<T>& keys, T q, T w, std::size_t skip) {
  Row<T> row;
  row.q = q;
  row.nearest = nearest_distance(keys.key, q, skip);
  row.win = key_window(keys.key, q, w, skip, row.nearest);
  return row;
}

// Calls part(begin, end) for the row's keys as ranges of window offsets t = s - lo: [0, len), or
// [0, at) and [at + 1, len) around the skipped key at = skip - lo, whose weight is exactly 0 (its
// logit is -inf). Splitting the range keeps the loops free of a per-key test.
template <class T, class Part>
void for_each_part(const Row<T>& row, Part part) {
  const std::size_t len = row.win.hi - row.win.lo;
  if (row.win.skip == kNoSkip) {
    part(std::size_t(0), len);
  } else {
    const std::size_t at = row.win.skip - row.win.lo;
    part(std::size_t(0), at);
    part(at + 1, len);
  }
}

// The unnormalised weights of a row and their sums:
//   e_t = exp(logit_t),   z = sum_t e_t,   zv = sum_t e_t v_t,
// so that p_t = e_t / z and f = zv / z. This is the row's stable softmax written out by hand: its
// maximum logit is known to be 0 (the nearest key), so e_t = exp(logit_t - 0) is in [0, 1] and
// z >= 1, the same as kernels::softmax_row_from_max would compute. It is not called, because that
// takes the logits from a buffer and then makes a second pass to divide by z; here the logits are
// made, exponentiated and summed in one pass over the keys, and the division is left to the few
// per-row numbers that need it (f, the slopes, the gradients). Each pass over a window of ~50k
// keys streams the window's buffers through the cache, so the number of passes is what the
// fused op's speed is made of.
template <class T>
struct RowSums {
  T z = 0, zv = 0;
};

// e[t] = exp(logit_t) for the window's keys t in [begin, end) (t = s - lo, s the sorted position);
// adds those terms to `sums`.
template <class T>
void exp_weights(const SortedKeys<T>& keys, const Row<T>& row, T w, std::size_t begin,
                 std::size_t end, T* e, RowSums<T>& sums) {
  const T* k = keys.key.data() + row.win.lo;
  const T* v = keys.value.data() + row.win.lo;
  T z = 0, zv = 0;
#pragma omp simd reduction(+ : z, zv)
  for (std::size_t t = begin; t < end; ++t) {
    const T weight = fast_exp(gaussian_logit(std::abs(row.q - k[t]), row.nearest, w));
    e[t] = weight;
    z += weight;
    zv += weight * v[t];
  }
  sums.z += z, sums.zv += zv;
}

// The whole row: e[t] for its window t = s - lo (0 at the skipped key) and the sums.
template <class T>
RowSums<T> row_exp_weights(const SortedKeys<T>& keys, const Row<T>& row, T w, T* e) {
  RowSums<T> sums;
  for_each_part(row, [&](std::size_t begin, std::size_t end) {
    exp_weights(keys, row, w, begin, end, e, sums);
  });
  if (row.win.skip != kNoSkip) e[row.win.skip - row.win.lo] = 0;
  return sums;
}

// The work to split across threads: rows times keys (an upper bound on the pairs visited).
inline bool worth_parallel(std::size_t n, std::size_t m) {
  return n * m >= kParallelGrain;
}

// The second pass, once f is known (no cancellation between large sums, never B - f A):
//   slope_w = sum_t p_t (v_t - f) excess_t,   slope_q = sum_t p_t (v_t - f) (q - k_t),
// with p_t = e_t / z (the division is done once, on the sums) and excess_t recomputed from the key,
// exactly as the logit was: (dist - nearest) (dist + nearest), dist = |q - k_t|.
template <class T>
void row_slopes(const SortedKeys<T>& keys, const Row<T>& row, const T* e, T z, T f_row, T& slope_w,
                T& slope_q) {
  const T* v = keys.value.data() + row.win.lo;
  const T* k = keys.key.data() + row.win.lo;
  const T q = row.q, nearest = row.nearest;
  T sw = 0, sq = 0;
#pragma omp simd reduction(+ : sw, sq)
  for (std::size_t t = 0; t < row.win.hi - row.win.lo; ++t) {
    const T dist = std::abs(q - k[t]);
    const T weighted = e[t] * (v[t] - f_row);
    sw += weighted * ((dist - nearest) * (dist + nearest));
    sq += weighted * (q - k[t]);
  }
  slope_w = sw / z, slope_q = sq / z;
}

}  // namespace

template <class T>
PoolRows<T> gaussian_pool_rows(const T* queries, std::size_t n, const SortedKeys<T>& keys, T w,
                               bool leave_one_out, bool want_slope_w, bool want_slope_q) {
  const std::size_t m = keys.key.size();
  PoolRows<T> rows;
  rows.f.resize(n), rows.z.resize(n);
  const bool want_slopes = want_slope_w || want_slope_q;
  if (want_slopes) rows.slope_w.resize(n), rows.slope_q.resize(n), rows.has_slopes = true;
#pragma omp parallel if (worth_parallel(n, m))
  {
    std::vector<T> e(m);  // this thread's row buffer: the unnormalised weights of the window
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const Row<T> row = row_at(keys, queries[i], w, leave_one_out ? keys.sorted_at[i] : kNoSkip);
      const RowSums<T> sums = row_exp_weights(keys, row, w, e.data());
      rows.z[i] = sums.z;
      rows.f[i] = sums.zv / sums.z;
      if (want_slopes)
        row_slopes(keys, row, e.data(), sums.z, rows.f[i], rows.slope_w[i], rows.slope_q[i]);
    }
  }
  return rows;
}

namespace {

// One row's terms of the key and value gradients, added into dk and dv (sorted order), for the
// window's keys t in [begin, end) (sorted position s = lo + t):
//   dk[s] += g p_t (v_t - f) w^2 (q - k_t),   dv[s] += g p_t,   p_t = e_t / z
// with e_t = exp(logit_t) recomputed here, bit for bit the forward's (same expression, same
// nearest), and g / z (g = dL/df of the row) taken once per row. One pass, no buffer.
template <class T>
void add_key_grads(const SortedKeys<T>& keys, const Row<T>& row, T w, T g_over_z, T f_row,
                   std::size_t begin, std::size_t end, T* dk, T* dv) {
  const T* k = keys.key.data() + row.win.lo;
  const T* v = keys.value.data() + row.win.lo;
  T *dk_row = dk + row.win.lo, *dv_row = dv + row.win.lo;
  const T q = row.q, nearest = row.nearest;
#pragma omp simd
  for (std::size_t t = begin; t < end; ++t) {
    const T dist = std::abs(q - k[t]);
    const T gp = g_over_z * fast_exp(gaussian_logit(dist, nearest, w));  // g p_t
    dk_row[t] += gp * (v[t] - f_row) * (w * w) * (q - k[t]);
    dv_row[t] += gp;
  }
}

}  // namespace

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
    T* dk = dkeys[omp_get_thread_num()].data();
    T* dv = dvalues[omp_get_thread_num()].data();
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const Row<T> row = row_at(keys, queries[i], w, leave_one_out ? keys.sorted_at[i] : kNoSkip);
      const T g_over_z = grad[i] / rows.z[i];
      for_each_part(row, [&](std::size_t begin, std::size_t end) {
        add_key_grads(keys, row, w, g_over_z, rows.f[i], begin, end, dk, dv);
      });
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
    std::vector<T> e(m);
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const Row<T> row = row_at(keys, queries[i], w, leave_one_out ? keys.sorted_at[i] : kNoSkip);
      const T z = row_exp_weights(keys, row, w, e.data()).z;
      for (std::size_t s = row.win.lo; s < row.win.hi; ++s)
        p[i * m + keys.original[s]] = e[s - row.win.lo] / z;
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
