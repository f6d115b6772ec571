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
// the nearest one is beside q's insertion point pos (the first key >= q): one of the two below it
// or the two above it.
template <class T>
T nearest_distance(const std::vector<T>& key, T q, std::size_t skip, std::size_t pos) {
  const std::size_t m = key.size();
  T nearest = std::numeric_limits<T>::infinity();
  for (std::size_t s = pos >= 2 ? pos - 2 : 0; s < std::min(m, pos + 2); ++s)
    if (s != skip) nearest = std::min(nearest, std::abs(q - key[s]));
  return nearest;
}

// The keys whose weight can be non-zero: |q - k| <= radius, radius^2 = nearest^2 + 2 kUnderflow /
// w^2 (hypot: no overflow; w = 0 or NaN: every key). Same rounding as the logits: fl(q - k).
template <class T>
KeyWindow key_window(const std::vector<T>& key, T q, T w, std::size_t skip, T nearest,
                     std::size_t pos) {
  T radius = std::hypot(nearest, std::sqrt(2 * kUnderflow<T>) / std::abs(w));
  if (std::isnan(radius)) radius = std::numeric_limits<T>::infinity();
  const auto mid = key.begin() + static_cast<std::ptrdiff_t>(pos);
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
  const auto pos = static_cast<std::size_t>(  // q's insertion point
      std::lower_bound(keys.key.begin(), keys.key.end(), q) - keys.key.begin());
  row.nearest = nearest_distance(keys.key, q, skip, pos);
  row.win = key_window(keys.key, q, w, skip, row.nearest, pos);
  return row;
}

// The unnormalised weights of a row and their sums:
//   e_t = exp(logit_t),   z = sum_t e_t,   zv = sum_t e_t v_t,
// so that p_t = e_t / z and f = zv / z. This is the row's stable softmax written out by hand: its
// maximum logit is known to be 0 (the nearest key), so e_t = exp(logit_t - 0) is in [0, 1] and
// z >= 1, as kernels::softmax_row_from_max would compute it. That kernel is not called because it
// makes two passes over a buffer of logits (exp and sum, then divide by z) after the pass that
// wrote the logits; here the logits are made and exponentiated in one pass, and the divide is left
// to the few per-row numbers that need it (f, the slopes, the gradients). The loops are bound by
// the exp's arithmetic, so that pass is most of the row's time.

// Exps are computed in whole vectors of kVector keys (one 512-bit register, or two or four
// narrower ones).
template <class T>
constexpr std::size_t kVector = 64 / sizeof(T);

// The slopes' sums below run in kChains independent vector accumulators: key s of a block of
// kChains * kVector keys goes to lane s % (kChains * kVector). An add waits for the previous add
// into its accumulator (4 cycles), while the CPU can start two a cycle: with one accumulator
// (what `omp simd reduction` makes) the sums were bound by that wait, not by the arithmetic.
// Written as an elementwise update of a lane array, which gcc and clang both keep in vector
// registers, as min_abs below does. Changes only the order of the sums.
constexpr std::size_t kChains = 4;
template <class T>
constexpr std::size_t kLanes = kChains* kVector<T>;

// The sum of a lane array.
template <class T>
T lane_total(const T* lane) {
  T total = 0;
  for (std::size_t l = 0; l < kLanes<T>; ++l) total += lane[l];
  return total;
}

template <class T>
struct RowSums {
  T z = 0, zv = 0;
};

// e[s] = exp(logit of sorted key s) for the keys s in the row's window [lo, hi), e indexed by
// sorted position (m,), with e[skip] = 0 (the skipped key's logit is -inf), and their sums
//   z = sum_s e[s],   zv = sum_s e[s] v_s,
// in one pass. The loop runs over a whole number of vectors where the keys allow it, so it has no
// scalar remainder: up to kVector - 1 exps one at a time cost about as much as that many vectors,
// most of the work of a short window (sharp attention). The extra keys it covers lie outside the
// window, beyond the radius where exp flushes to 0: their e is exactly 0 and adds 0 e v_s to the
// sums, as their p v_s does in the composed path. The skipped key is zeroed with an integer mask
// (a select would make gcc, which keeps FP exceptions, refuse to vectorise the loop: see exp.h).
// Stored: e[s] (kWeights), or e[s] excess_s (kWeightedExcess: all that slope_w needs, see
// row_slope_w; excess_s as in the logit).
enum class Store { kWeights, kWeightedExcess };

// The loop of row_exps over `count` keys from k, v and e (already offset to the first of them),
// t == skip_at zeroed. Index is the loop's integer type: as wide as T's lanes where the count
// allows (32 bits for float), so that the skip test is one vector compare, not two of 64-bit
// indices and the register spills they cause.
template <class T, Store kStore, class Index>
RowSums<T> exps_and_sums(const T* k, const T* v, T* e, Index count, Index skip_at, T q, T nearest,
                         T w) {
  using Bits = typename detail::ExpTraits<T>::Bits;
  T z = 0, zv = 0;
#pragma omp simd reduction(+ : z, zv)
  for (Index t = 0; t < count; ++t) {
    const Bits keep = t == skip_at ? Bits(0) : ~Bits(0);
    const T dist = std::abs(q - k[t]);
    const T exp_t = fast_exp_nonpositive(gaussian_logit(dist, nearest, w));
    const T e_t = detail::from_bits<T>(detail::bits_of(exp_t) & keep);
    if constexpr (kStore == Store::kWeights)
      e[t] = e_t;
    else
      e[t] = e_t * ((dist - nearest) * (dist + nearest));
    z += e_t;
    zv += e_t * v[t];
  }
  return {z, zv};
}

template <class T, Store kStore = Store::kWeights>
RowSums<T> row_exps(const SortedKeys<T>& keys, const Row<T>& row, T w, T* e) {
  using Narrow = typename detail::ExpTraits<T>::Bits;  // uint32 for float, uint64 for double
  const std::size_t m = keys.key.size(), len = row.win.hi - row.win.lo;
  const std::size_t padded = std::min(m, (len + kVector<T> - 1) / kVector<T> * kVector<T>);
  const std::size_t begin = std::min(row.win.lo, m - padded);  // [begin, begin + padded) holds
  const T *k = keys.key.data() + begin, *v = keys.value.data() + begin;  // [lo, hi)
  const std::size_t skip = row.win.skip;
  // the skipped key's place in the range, or padded (no place) when it is outside
  const std::size_t skip_at = skip >= begin && skip < begin + padded ? skip - begin : padded;
  if (padded < std::numeric_limits<Narrow>::max())
    return exps_and_sums<T, kStore, Narrow>(k, v, e + begin, Narrow(padded), Narrow(skip_at), row.q,
                                            row.nearest, w);
  return exps_and_sums<T, kStore, std::size_t>(k, v, e + begin, padded, skip_at, row.q, row.nearest,
                                               w);
}

// The work to split across threads: rows times keys (an upper bound on the pairs visited).
inline bool worth_parallel(std::size_t n, std::size_t m) {
  return n * m >= kParallelGrain;
}

// The second pass, once f is known (no cancellation between large sums, never B - f A):
//   slope_w = sum_s p_s (v_s - f) excess_s,   slope_q = sum_s p_s (v_s - f) (q - k_s),
// with p_s = e_s / z (the divide is done once, on the sums) and excess_s recomputed from the key,
// exactly as in the logit: (dist - nearest) (dist + nearest), dist = |q - k_s|.
template <class T>
void row_slopes(const SortedKeys<T>& keys, const Row<T>& row, const T* e, T z, T f_row, T& slope_w,
                T& slope_q) {
  const T *v = keys.value.data(), *k = keys.key.data();
  const T q = row.q, nearest = row.nearest;
  // One key's two terms, e_s (v_s - f) excess_s and e_s (v_s - f) (q - k_s), added to sw and sq.
  auto add_terms = [=](std::size_t s, T& sw, T& sq) {
    const T dist = std::abs(q - k[s]);
    const T weighted = e[s] * (v[s] - f_row);
    sw += weighted * ((dist - nearest) * (dist + nearest));
    sq += weighted * (q - k[s]);
  };
  T sw_lane[kLanes<T>] = {}, sq_lane[kLanes<T>] = {};  // in kChains accumulators
  std::size_t s = row.win.lo;
  for (; s + kLanes<T> <= row.win.hi; s += kLanes<T>)
    for (std::size_t l = 0; l < kLanes<T>; ++l) add_terms(s + l, sw_lane[l], sq_lane[l]);
  T sw = 0, sq = 0;
#pragma omp simd reduction(+ : sw, sq)
  for (std::size_t t = s; t < row.win.hi; ++t) add_terms(t, sw, sq);
  slope_w = (sw + lane_total(sw_lane)) / z, slope_q = (sq + lane_total(sq_lane)) / z;
}

// slope_w alone (the training case: queries without grad), from ex[s] = e_s excess_s stored by
// row_exps<T, Store::kWeightedExcess>: sum_s ex_s (v_s - f) / z. Two streams (ex, v) instead of
// three (e, k, v), and no excess to recompute.
template <class T>
T row_slope_w(const SortedKeys<T>& keys, const Row<T>& row, const T* ex, T z, T f_row) {
  const T* v = keys.value.data();
  T sw_lane[kLanes<T>] = {};  // in kChains accumulators
  std::size_t s = row.win.lo;
  for (; s + kLanes<T> <= row.win.hi; s += kLanes<T>)
    for (std::size_t l = 0; l < kLanes<T>; ++l) sw_lane[l] += ex[s + l] * (v[s + l] - f_row);
  T sw = 0;
#pragma omp simd reduction(+ : sw)
  for (std::size_t t = s; t < row.win.hi; ++t) sw += ex[t] * (v[t] - f_row);
  return (sw + lane_total(sw_lane)) / z;
}

// One query row of gaussian_pool_rows: f_i, and the slopes asked for, using the row buffer e.
template <class T>
void pool_row(const SortedKeys<T>& keys, const Row<T>& row, T w, bool want_slope_w,
              bool want_slope_q, T* e, PoolRows<T>& rows, std::size_t i) {
  if (want_slope_q) {  // both slopes: from e, k and v
    const RowSums<T> sums = row_exps(keys, row, w, e);
    rows.f[i] = sums.zv / sums.z;
    row_slopes(keys, row, e, sums.z, rows.f[i], rows.slope_w[i], rows.slope_q[i]);
  } else if (want_slope_w) {
    const RowSums<T> sums = row_exps<T, Store::kWeightedExcess>(keys, row, w, e);
    rows.f[i] = sums.zv / sums.z;
    rows.slope_w[i] = row_slope_w(keys, row, e, sums.z, rows.f[i]);
  } else {
    const RowSums<T> sums = row_exps(keys, row, w, e);
    rows.f[i] = sums.zv / sums.z;
  }
}

}  // namespace

template <class T>
PoolRows<T> gaussian_pool_rows(const T* queries, std::size_t n, const SortedKeys<T>& keys, T w,
                               bool leave_one_out, bool want_slope_w, bool want_slope_q) {
  const std::size_t m = keys.key.size();
  PoolRows<T> rows;
  rows.f.resize(n);
  // slope_q needs row_slopes, which gives slope_w too.
  rows.has_slope_w = want_slope_w || want_slope_q, rows.has_slope_q = want_slope_q;
  if (rows.has_slope_w) rows.slope_w.resize(n);
  if (rows.has_slope_q) rows.slope_q.resize(n);
#pragma omp parallel if (worth_parallel(n, m))
  {
    const FlushDenormals flush;  // see parallel.h
    std::vector<T> e(m);  // this thread's row buffer, by sorted position: e_s, or e_s excess_s
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const Row<T> row = row_at(keys, queries[i], w, leave_one_out ? keys.sorted_at[i] : kNoSkip);
      pool_row(keys, row, w, want_slope_w, want_slope_q, e.data(), rows, i);
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
    const FlushDenormals flush;  // see parallel.h
    std::vector<T> e(m);
    T* dk = dkeys[omp_get_thread_num()].data();
    T* dv = dvalues[omp_get_thread_num()].data();
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const Row<T> row = row_at(keys, queries[i], w, leave_one_out ? keys.sorted_at[i] : kNoSkip);
      const T z = row_exps(keys, row, w, e.data()).z;  // bit for bit the forward's e and z
      const T g_over_z = grad[i] / z;
      const T q = row.q, f_row = rows.f[i];
#pragma omp simd
      for (std::size_t s = row.win.lo; s < row.win.hi; ++s) {
        const T gp = g_over_z * e[s];  // grad_i p_is
        dk[s] += gp * (keys.value[s] - f_row) * (w * w) * (q - keys.key[s]);
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
    const FlushDenormals flush;  // see parallel.h
    std::vector<T> e(m);
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      const Row<T> row = row_at(keys, queries[i], w, leave_one_out ? keys.sorted_at[i] : kNoSkip);
      const T z = row_exps(keys, row, w, e.data()).z;
      for (std::size_t s = row.win.lo; s < row.win.hi; ++s) p[i * m + keys.original[s]] = e[s] / z;
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
