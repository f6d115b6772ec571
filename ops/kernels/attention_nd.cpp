#include "ops/kernels/attention_nd.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "ops/kernels/attention.h"  // kUnderflow
#include "ops/kernels/exp.h"
#include "ops/kernels/parallel.h"

namespace tapegrad::kernels {

namespace {

constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();

// The keys coordinate-major, key[l * m + s] = k_sl (every loop below runs over s, the long
// contiguous axis), sorted by class (the cross-entropy; the pooling has one class) and within a
// class by the window coordinate `axis`: sorted position s holds the caller's key original[s],
// and position[j] is where the caller's key j went. Class c occupies [class_begin[c],
// class_begin[c + 1]).
template <class T>
struct Keys {
  std::size_t m = 0, d = 0, axis = 0;
  std::vector<T> key, w;
  std::vector<std::size_t> original, position, class_begin;
  const T* coordinate() const { return key.data() + axis * m; }  // (m,) sorted within a class
};

// The window coordinate: the one whose width times spread is largest, so that its term alone
// rules out the most keys.
template <class T>
std::size_t window_axis(const NdAttention<T>& a) {
  std::size_t best = 0;
  T best_reach = -1;
  for (std::size_t l = 0; l < a.d; ++l) {
    T lo = kInf<T>, hi = -kInf<T>;
    for (std::size_t j = 0; j < a.m; ++j)
      lo = std::min(lo, a.keys[j * a.d + l]), hi = std::max(hi, a.keys[j * a.d + l]);
    const T reach = std::abs(a.w[l]) * (hi - lo);
    if (reach > best_reach) best = l, best_reach = reach;
  }
  return best;
}

// labels: null for the pooling (one class), else the key labels (>= 0) to group by.
template <class T>
Keys<T> make_keys(const NdAttention<T>& a, const std::int64_t* labels) {
  Keys<T> keys;
  keys.m = a.m, keys.d = a.d, keys.axis = window_axis(a);
  keys.w.assign(a.w, a.w + a.d);
  auto label = [labels](std::size_t j) { return labels ? labels[j] : std::int64_t(0); };
  auto coordinate = [&](std::size_t j) { return a.keys[j * a.d + keys.axis]; };
  keys.original.resize(a.m);
  std::iota(keys.original.begin(), keys.original.end(), std::size_t(0));
  // By class, then by coordinate with NaN last (a strict weak order even with NaN keys).
  std::stable_sort(keys.original.begin(), keys.original.end(), [&](std::size_t x, std::size_t y) {
    if (label(x) != label(y)) return label(x) < label(y);
    const T cx = coordinate(x), cy = coordinate(y);
    if (std::isnan(cx) || std::isnan(cy)) return !std::isnan(cx) && std::isnan(cy);
    return cx < cy;
  });
  const auto classes = static_cast<std::size_t>(label(keys.original.back())) + 1;
  keys.class_begin.assign(classes + 1, 0);
  for (std::size_t j = 0; j < a.m; ++j) ++keys.class_begin[static_cast<std::size_t>(label(j)) + 1];
  std::partial_sum(keys.class_begin.begin(), keys.class_begin.end(), keys.class_begin.begin());
  keys.position.resize(a.m);
  keys.key.resize(a.m * a.d);
  for (std::size_t s = 0; s < a.m; ++s) {
    keys.position[keys.original[s]] = s;
    for (std::size_t l = 0; l < a.d; ++l)
      keys.key[l * a.m + s] = a.keys[keys.original[s] * a.d + l];
  }
  return keys;
}

// One thread's row buffers, each (m,) and valid on the row's ranges only: the excess (relative to
// the nearest key; +inf at the skipped key), the class excess (cross-entropy), the weights p and
// pc, and the logit slopes g. ranges[c] = [lo, hi): the keys of class c the row visits (its
// window; the whole class when the window cannot be used).
template <class T>
struct Row {
  std::vector<T> q, dist, excess, excess_class, p, pc, g;
  std::vector<std::pair<std::size_t, std::size_t>> ranges, own_range;
  std::vector<std::pair<T, std::size_t>> class_nearest;  // per class: least distance, where
  std::size_t nearest = kNone, nearest_class = kNone, skip = kNone;
  T distance = 0, distance_class = 0;  // the least squared distances (+inf: not found)
  T z = 0;  // sum_s exp(-excess_s / 2) >= 1: the nearest key contributes exactly 1
  Row(std::size_t m, std::size_t d)
      : q(d), dist(m), excess(m), excess_class(m), p(m), pc(m), g(m) {}
};

// min_s x[s] in kLanes running minima combined at the end (a lane update that gcc and clang both
// vectorise without -ffast-math; see min_abs in attention.cpp). NaN never wins; +inf if all are
// NaN or +inf.
template <class T>
T min_of(const T* x, std::size_t len) {
  constexpr std::size_t kLanes = 64 / sizeof(T);
  T lane[kLanes];
  std::fill(lane, lane + kLanes, kInf<T>);
  std::size_t s = 0;
  for (; s + kLanes <= len; s += kLanes)
    for (std::size_t l = 0; l < kLanes; ++l) lane[l] = x[s + l] < lane[l] ? x[s + l] : lane[l];
  for (; s < len; ++s) lane[0] = x[s] < lane[0] ? x[s] : lane[0];
  T smallest = lane[0];
  for (std::size_t l = 1; l < kLanes; ++l) smallest = lane[l] < smallest ? lane[l] : smallest;
  return smallest;
}

template <class T>
std::size_t first_equal(const T* x, std::size_t len, T value) {
  for (std::size_t s = 0; s < len; ++s)
    if (x[s] == value) return s;
  return kNone;
}

// excess_s = sum_l ((k_from,l - k_sl) w_l) w_l (d_sl + d_from,l), d_sl = q_l - k_sl, for s in
// [lo, hi); exactly 0 at `from`.
template <class T>
void excess_from(const Keys<T>& keys, const T* q, std::size_t from, std::size_t lo, std::size_t hi,
                 T* excess) {
  const std::size_t m = keys.m;
  for (std::size_t l = 0; l < keys.d; ++l) {
    const T* k = keys.key.data() + l * m;
    const T ql = q[l], wl = keys.w[l], k_from = k[from], d_from = ql - k_from;
    auto term = [=](T k_s) { return (((k_from - k_s) * wl) * wl) * ((ql - k_s) + d_from); };
    if (l == 0) {  // the first coordinate writes, the others add (no separate zeroing pass)
#pragma omp simd
      for (std::size_t s = lo; s < hi; ++s) excess[s] = term(k[s]);
    } else {
#pragma omp simd
      for (std::size_t s = lo; s < hi; ++s) excess[s] += term(k[s]);
    }
  }
  if (from >= lo && from < hi) excess[from] = 0;
}

// dist_s = sum_l ((q_l - k_sl) w_l)^2 for s in [lo, hi) but skip (+inf there); returns the
// least and where it is (first on ties; kNone for an empty range).
template <class T>
std::pair<T, std::size_t> distances(const Keys<T>& keys, const T* q, std::size_t lo, std::size_t hi,
                                    std::size_t skip, T* dist) {
  if (lo >= hi) return {kInf<T>, kNone};
  for (std::size_t l = 0; l < keys.d; ++l) {
    const T ql = q[l], wl = keys.w[l];
    const T* k = keys.key.data() + l * keys.m;
    auto term = [=](T k_s) { return ((ql - k_s) * wl) * ((ql - k_s) * wl); };
    if (l == 0) {
#pragma omp simd
      for (std::size_t s = lo; s < hi; ++s) dist[s] = term(k[s]);
    } else {
#pragma omp simd
      for (std::size_t s = lo; s < hi; ++s) dist[s] += term(k[s]);
    }
  }
  if (skip >= lo && skip < hi) dist[skip] = kInf<T>;
  const T least = min_of(dist + lo, hi - lo);
  return {least, least < kInf<T> ? lo + first_equal(dist + lo, hi - lo, least) : kNone};
}

// The smallest squared distance over the keys [lo, hi) of one class (sorted by the window
// coordinate) but skip, and where it is (kNone: no finite one). Visits blocks of keys outward from
// q's place in the coordinate, doubling, and stops extending a side once the coordinate's term
// alone, ((q_a - k_sa) w_a)^2 <= dist_s, exceeds the best so far at that side's edge: the keys
// beyond cannot be nearer. (Rounding keeps that bound: a sum of non-negative terms is never below
// one of them.) Spread-out keys: a row visits a few blocks; at worst (every key at the same
// coordinate) the whole class, at vector speed either way.
template <class T>
std::pair<T, std::size_t> nearest_in(const Keys<T>& keys, const T* q, std::size_t lo,
                                     std::size_t hi, std::size_t skip, T* dist) {
  const T* c = keys.coordinate();
  const T qa = q[keys.axis], wa = std::abs(keys.w[keys.axis]);
  std::size_t a = static_cast<std::size_t>(std::lower_bound(c + lo, c + hi, qa) - c), b = a;
  std::pair<T, std::size_t> best{kInf<T>, kNone};
  auto keep = [&best](std::pair<T, std::size_t> found) {
    if (found.first < best.first || (found.first == best.first && found.second < best.second))
      best = found;
  };
  bool down = a > lo, up = b < hi;
  for (std::size_t width = 16; down || up; width *= 2) {
    if (down) {
      const std::size_t next = a - std::min(width, a - lo);
      keep(distances(keys, q, next, a, skip, dist));
      a = next;
    }
    if (up) {
      const std::size_t next = b + std::min(width, hi - b);
      keep(distances(keys, q, b, next, skip, dist));
      b = next;
    }
    const T gap_down = a > lo ? (qa - c[a - 1]) * wa : kInf<T>;
    const T gap_up = b < hi ? (c[b] - qa) * wa : kInf<T>;
    down = a > lo && !(gap_down * gap_down > best.first);
    up = b < hi && !(gap_up * gap_up > best.first);
  }
  return best;
}

// The keys of [lo, hi) (sorted by the window coordinate) whose coordinate term alone exceeds
// reference + 2 kUnderflow: their excess over a key at squared distance `reference` is beyond
// 2 kUnderflow, their logit below -kUnderflow, their weight exactly 0 (exp flushes it). Returns the
// rest, [first, last). The relative slack covers the rounding of the distances, the +2 margin the
// rounding of small ones; a NaN or infinite radius keeps the whole class.
template <class T>
std::pair<std::size_t, std::size_t> window(const Keys<T>& keys, const T* q, std::size_t lo,
                                           std::size_t hi, T reference) {
  const T slack = T(4 * (keys.d + 2)) * std::numeric_limits<T>::epsilon();
  const T radius = std::sqrt(reference * (1 + slack) + 2 * kUnderflow<T> + 2);
  if (!(radius < kInf<T>)) return {lo, hi};
  const T* c = keys.coordinate();
  const T qa = q[keys.axis], wa = std::abs(keys.w[keys.axis]);
  const T* mid = std::lower_bound(c + lo, c + hi, qa);
  const T* first = std::partition_point(c + lo, mid, [=](T k) { return (qa - k) * wa > radius; });
  const T* last = std::partition_point(mid, c + hi, [=](T k) { return (k - qa) * wa <= radius; });
  return {static_cast<std::size_t>(first - c), static_cast<std::size_t>(last - c)};
}

// The excess relative to `from` over the row's ranges (+inf at the skipped key). `from` is the
// argmin of the rounded squared distances, at `distance`; the stable excess may still find a key
// nearer by rounding, by at most ~2 (d + 2) eps distance. Below distance ~ 1 / (16 (d + 2) eps)
// that is under 1/8: a logit of at most 1/16, harmless (the softmax is shift-invariant; no
// overflow). Past it (far queries, the overflow fallback: distance = +inf) the search moves
// `from` to the key of least excess until none is negative (at most a few steps). Returns the
// nearest key.
template <class T>
std::size_t settle_excess(const Keys<T>& keys, Row<T>& row,
                          const std::vector<std::pair<std::size_t, std::size_t>>& ranges,
                          std::size_t from, T distance, T* excess) {
  const bool check = !(distance * T(16 * (keys.d + 2)) * std::numeric_limits<T>::epsilon() < T(1));
  for (int step = 0; step < 8; ++step) {
    T lowest = 0;
    std::size_t at = kNone;
    for (const auto& range : ranges) {
      const std::size_t lo = range.first, hi = range.second;
      excess_from(keys, row.q.data(), from, lo, hi, excess);
      if (row.skip >= lo && row.skip < hi) excess[row.skip] = kInf<T>;
      const T range_min = check ? min_of(excess + lo, hi - lo) : T(0);
      if (range_min < lowest)
        lowest = range_min, at = lo + first_equal(excess + lo, hi - lo, range_min);
    }
    if (at == kNone) break;
    from = at;
  }
  return from;
}

// p_s = exp(-excess_s / 2) for s in [lo, hi) (0 where the excess is +inf); returns their sum.
template <class T>
T unnormalised_weights(const T* excess, std::size_t lo, std::size_t hi, T* p) {
#pragma omp simd
  for (std::size_t s = lo; s < hi; ++s) p[s] = T(-0.5) * excess[s];
  return exp_shifted_sum(p + lo, T(0), p + lo, hi - lo);
}

template <class T>
void scale(T* x, std::size_t lo, std::size_t hi, T factor) {
#pragma omp simd
  for (std::size_t s = lo; s < hi; ++s) x[s] *= factor;
}

// The row's ranges and nearest keys: the nearest key overall and (label >= 0) the nearest of
// class `label`, by the outward search in every class; then each class's window around the
// overall nearest distance (the row's own class: around its class's nearest distance, which the
// class softmax needs). When a distance overflows (|(q - k) w| past 1.8e19 in float32) or a class
// search finds nothing, the row visits every key and takes the nearest from the excess, which
// overflows far later. Returns the starting keys (overall, class) for settle_excess.
template <class T>
std::pair<std::size_t, std::size_t> row_ranges(const Keys<T>& keys, Row<T>& row,
                                               std::int64_t label) {
  const std::size_t classes = keys.class_begin.size() - 1;
  const auto own = static_cast<std::size_t>(label);
  auto& nearest = row.class_nearest;
  nearest.resize(classes);
  std::pair<T, std::size_t> overall{kInf<T>, kNone};
  for (std::size_t c = 0; c < classes; ++c) {
    nearest[c] = nearest_in(keys, row.q.data(), keys.class_begin[c], keys.class_begin[c + 1],
                            row.skip, row.dist.data());
    if (nearest[c].first < overall.first) overall = nearest[c];
  }
  const bool found = overall.first < kInf<T> && (label < 0 || nearest[own].first < kInf<T>);
  row.ranges.clear();
  for (std::size_t c = 0; c < classes; ++c) {
    const std::size_t lo = keys.class_begin[c], hi = keys.class_begin[c + 1];
    const T reference = label >= 0 && c == own ? nearest[c].first : overall.first;
    row.ranges.push_back(found ? window(keys, row.q.data(), lo, hi, reference)
                               : std::pair<std::size_t, std::size_t>{lo, hi});
  }
  row.distance = found ? overall.first : kInf<T>;
  row.distance_class = found && label >= 0 ? nearest[own].first : kInf<T>;
  if (found) return {overall.second, label >= 0 ? nearest[own].second : kNone};
  const std::size_t any = row.skip == 0 ? 1 : 0;  // the excess search starts anywhere
  return {any, kNone};
}

// Row i: its query, skipped key, ranges, nearest key, excess and softmax weights p (normalised);
// with label >= 0 (the cross-entropy) also the class's nearest key (or kNone: no key of the class
// but the skipped one) in row.nearest_class.
template <class T>
void row_weights(const NdAttention<T>& a, const Keys<T>& keys, std::size_t i, std::int64_t label,
                 Row<T>& row) {
  for (std::size_t l = 0; l < keys.d; ++l) row.q[l] = a.queries[i * a.d + l];
  row.skip = a.leave_one_out ? keys.position[i] : kNone;
  const std::pair<std::size_t, std::size_t> start = row_ranges(keys, row, label);
  const std::size_t from = start.first, from_class = start.second;
  row.nearest = settle_excess(keys, row, row.ranges, from, row.distance, row.excess.data());
  row.nearest_class = from_class;
  if (label >= 0 && from_class == kNone) {  // the fallback: the class's least excess
    const std::size_t lo = row.ranges[static_cast<std::size_t>(label)].first;
    const std::size_t hi = row.ranges[static_cast<std::size_t>(label)].second;
    const T closest = min_of(row.excess.data() + lo, hi - lo);
    if (closest < kInf<T>)
      row.nearest_class = lo + first_equal(row.excess.data() + lo, hi - lo, closest);
  }
  row.z = 0;
  for (const auto& range : row.ranges)
    row.z += unnormalised_weights(row.excess.data(), range.first, range.second, row.p.data());
  for (const auto& range : row.ranges) scale(row.p.data(), range.first, range.second, T(1) / row.z);
}

// Per-thread sums of the key-side gradients, (d, m) and (C, m) coordinate-major in the sorted
// order, and of dL/dw.
template <class T>
struct Partials {
  std::vector<T> keys, values, w;
};

// Given the row's logit slopes g on its ranges (summing to 0): dL/dq_i into grad_query (d,) (when
// not null), and the row's parts of dL/dk and dL/dw into the thread's partials (when wanted).
template <class T>
void pair_grads(const Keys<T>& keys, const Row<T>& row, T* grad_query, Partials<T>& part,
                bool want_keys, bool want_w) {
  const T* g = row.g.data();
  for (std::size_t l = 0; l < keys.d; ++l) {
    const T* k = keys.key.data() + l * keys.m;
    T* gk = want_keys ? part.keys.data() + l * keys.m : nullptr;
    const T ql = row.q[l], wl = keys.w[l], w2 = wl * wl, k_near = k[row.nearest];
    const T d_near = ql - k_near;
    T slope_q = 0, slope_w = 0;  // sum_s g_s (k*_l - k_sl),  sum_s g_s excess_sl
    for (const auto& range : row.ranges) {
      const std::size_t lo = range.first, hi = range.second;
      if (grad_query) {
#pragma omp simd reduction(+ : slope_q)
        for (std::size_t s = lo; s < hi; ++s) slope_q += g[s] * (k_near - k[s]);
      }
      if (gk) {
#pragma omp simd
        for (std::size_t s = lo; s < hi; ++s) gk[s] += w2 * (g[s] * (ql - k[s]));
      }
      if (want_w) {
        // a key of weight 0 adds 0, even if its term overflowed
#pragma omp simd reduction(+ : slope_w)
        for (std::size_t s = lo; s < hi; ++s) {
          const T term = g[s] * ((k_near - k[s]) * ((ql - k[s]) + d_near));
          slope_w += g[s] != 0 ? term : T(0);
        }
      }
    }
    if (grad_query) grad_query[l] += -(wl * (wl * slope_q));
    if (want_w) part.w[l] += -wl * slope_w;
  }
}

inline bool worth_parallel(std::size_t n, std::size_t m) {
  return n * m >= kParallelGrain;
}

inline int thread_count(std::size_t n, std::size_t m) {
  return worth_parallel(n, m) ? omp_get_max_threads() : 1;
}

template <class T>
std::vector<Partials<T>> make_partials(int threads, std::size_t m, std::size_t d, std::size_t C,
                                       bool keys, bool values) {
  Partials<T> p;
  p.keys.assign(keys ? d * m : 0, T(0));
  p.values.assign(values ? C * m : 0, T(0));
  p.w.assign(d, T(0));
  return std::vector<Partials<T>>(static_cast<std::size_t>(threads), p);
}

// Adds the threads' partials, in thread order (the same result for any timing), into grad_keys
// (m, d) row-major, grad_values (m, C) and grad_w (d,), in the caller's key order.
template <class T>
void add_partials(const std::vector<Partials<T>>& parts, const Keys<T>& keys, std::size_t C,
                  T* grad_keys, T* grad_values, T* grad_w) {
  const std::size_t m = keys.m, d = keys.d;
  for (std::size_t l = 0; l < d; ++l) {
    if (grad_keys)
      for (std::size_t s = 0; s < m; ++s) {
        T sum = 0;
        for (const auto& p : parts) sum += p.keys[l * m + s];
        grad_keys[keys.original[s] * d + l] += sum;
      }
    if (grad_w) {
      T sum = 0;
      for (const auto& p : parts) sum += p.w[l];
      grad_w[l] += sum;
    }
  }
  if (grad_values)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t s = 0; s < m; ++s) {
        T sum = 0;
        for (const auto& p : parts) sum += p.values[c * m + s];
        grad_values[keys.original[s] * C + c] += sum;
      }
}

// The values coordinate-major in the keys' order, value[c * m + s] = v_{original[s], c}.
template <class T>
std::vector<T> values_by_column(const Keys<T>& keys, const T* values, std::size_t C) {
  const std::size_t m = keys.m;
  std::vector<T> out(m * C);
  for (std::size_t s = 0; s < m; ++s)
    for (std::size_t c = 0; c < C; ++c) out[c * m + s] = values[keys.original[s] * C + c];
  return out;
}

}  // namespace

template <class T>
void nd_pool_forward(const NdAttention<T>& a, const T* values, std::size_t C, T* f) {
  const Keys<T> keys = make_keys(a, nullptr);
  const std::vector<T> value = values_by_column(keys, values, C);
#pragma omp parallel if (worth_parallel(a.n, a.m))
  {
    Row<T> row(a.m, a.d);
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(a.n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      row_weights(a, keys, i, -1, row);
      const T* p = row.p.data();
      for (std::size_t c = 0; c < C; ++c) {
        const T* v = value.data() + c * a.m;
        T sum = 0;
        for (const auto& range : row.ranges) {
          const std::size_t lo = range.first, hi = range.second;
#pragma omp simd reduction(+ : sum)
          for (std::size_t s = lo; s < hi; ++s) sum += p[s] * v[s];
        }
        f[i * C + c] = sum;
      }
    }
  }
}

template <class T>
void nd_pool_backward(const NdAttention<T>& a, const T* values, std::size_t C, const T* f,
                      const T* grad, T* grad_queries, T* grad_keys, T* grad_values, T* grad_w) {
  const Keys<T> keys = make_keys(a, nullptr);
  const std::vector<T> value = values_by_column(keys, values, C);
  const int threads = thread_count(a.n, a.m);
  auto parts = make_partials<T>(threads, a.m, a.d, C, grad_keys, grad_values);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    Row<T> row(a.m, a.d);
    Partials<T>& part = parts[static_cast<std::size_t>(omp_get_thread_num())];
    T* g = row.g.data();
    const T* p = row.p.data();
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(a.n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      row_weights(a, keys, i, -1, row);
      // the pooling has one class, one range
      const std::size_t lo = row.ranges[0].first, hi = row.ranges[0].second;
      // g_s = p_s (G.v_s - G.f_i): the two-pass form (f_i known), no cancelling sums.
      T grad_dot_f = 0;
      for (std::size_t c = 0; c < C; ++c) grad_dot_f += grad[i * C + c] * f[i * C + c];
      std::fill(g + lo, g + hi, -grad_dot_f);
      for (std::size_t c = 0; c < C; ++c) {
        const T gc = grad[i * C + c];
        const T* v = value.data() + c * a.m;
#pragma omp simd
        for (std::size_t s = lo; s < hi; ++s) g[s] += gc * v[s];
        if (grad_values) {
          T* gv = part.values.data() + c * a.m;
#pragma omp simd
          for (std::size_t s = lo; s < hi; ++s) gv[s] += gc * p[s];
        }
      }
#pragma omp simd
      for (std::size_t s = lo; s < hi; ++s) g[s] *= p[s];
      pair_grads(keys, row, grad_queries ? grad_queries + i * a.d : nullptr, part,
                 grad_keys != nullptr, grad_w != nullptr);
    }
  }
  add_partials(parts, keys, C, grad_keys, grad_values, grad_w);
}

namespace {

// For row i of the cross-entropy (after row_weights with its label): the class weights pc
// (normalised, on the class's range; 0 on the other ranges) and
//   L_i = log z - log zc + excess(jc*) / 2,
// zc = sum over the class of exp(-excess_class / 2), relative to the class's nearest key jc*.
template <class T>
double row_class_weights(const Keys<T>& keys, std::int64_t label, Row<T>& row) {
  for (const auto& range : row.ranges)
    std::fill(row.pc.begin() + range.first, row.pc.begin() + range.second, T(0));
  if (row.nearest_class == kNone) return std::numeric_limits<double>::infinity();  // p_i[y_i] = 0
  row.own_range.assign(1, row.ranges[static_cast<std::size_t>(label)]);
  const std::size_t nearest_class = settle_excess(keys, row, row.own_range, row.nearest_class,
                                                  row.distance_class, row.excess_class.data());
  const std::size_t lo = row.own_range[0].first, hi = row.own_range[0].second;
  const T zc = unnormalised_weights(row.excess_class.data(), lo, hi, row.pc.data());
  scale(row.pc.data(), lo, hi, T(1) / zc);
  return std::log(static_cast<double>(row.z)) - std::log(static_cast<double>(zc)) +
         0.5 * static_cast<double>(row.excess[nearest_class]);
}

}  // namespace

template <class T>
T nd_cross_entropy_forward(const NdAttention<T>& a, const std::int64_t* key_labels,
                           const std::int64_t* query_labels) {
  const Keys<T> keys = make_keys(a, key_labels);
  std::vector<double> loss(a.n);
#pragma omp parallel if (worth_parallel(a.n, a.m))
  {
    Row<T> row(a.m, a.d);
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(a.n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      row_weights(a, keys, i, query_labels[i], row);
      loss[i] = row_class_weights(keys, query_labels[i], row);
    }
  }
  double total = 0;  // summed in row order: the same for every thread count
  for (double li : loss) total += li;
  return static_cast<T>(total);
}

template <class T>
void nd_cross_entropy_backward(const NdAttention<T>& a, const std::int64_t* key_labels,
                               const std::int64_t* query_labels, T grad, T* grad_queries,
                               T* grad_keys, T* grad_w) {
  const Keys<T> keys = make_keys(a, key_labels);
  const int threads = thread_count(a.n, a.m);
  auto parts = make_partials<T>(threads, a.m, a.d, 0, grad_keys, false);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    Row<T> row(a.m, a.d);
    Partials<T>& part = parts[static_cast<std::size_t>(omp_get_thread_num())];
    T* g = row.g.data();
    const T *p = row.p.data(), *pc = row.pc.data();
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(a.n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      row_weights(a, keys, i, query_labels[i], row);
      row_class_weights(keys, query_labels[i], row);
      // dL_i/dlogit_s = p_s - pc_s (L_i = log sum_all exp - log sum_class exp)
      for (const auto& range : row.ranges) {
        const std::size_t lo = range.first, hi = range.second;
#pragma omp simd
        for (std::size_t s = lo; s < hi; ++s) g[s] = grad * (p[s] - pc[s]);
      }
      pair_grads(keys, row, grad_queries ? grad_queries + i * a.d : nullptr, part,
                 grad_keys != nullptr, grad_w != nullptr);
    }
  }
  add_partials(parts, keys, 0, grad_keys, static_cast<T*>(nullptr), grad_w);
}

#define TAPEGRAD_INSTANTIATE(T)                                                                    \
  template void nd_pool_forward(const NdAttention<T>&, const T*, std::size_t, T*);                 \
  template void nd_pool_backward(const NdAttention<T>&, const T*, std::size_t, const T*, const T*, \
                                 T*, T*, T*, T*);                                                  \
  template T nd_cross_entropy_forward(const NdAttention<T>&, const std::int64_t*,                  \
                                      const std::int64_t*);                                        \
  template void nd_cross_entropy_backward(const NdAttention<T>&, const std::int64_t*,              \
                                          const std::int64_t*, T, T*, T*, T*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::kernels
