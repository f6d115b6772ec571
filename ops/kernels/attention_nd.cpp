#include "ops/kernels/attention_nd.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "ops/kernels/exp.h"
#include "ops/kernels/parallel.h"

namespace tapegrad::kernels {

namespace {

constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();

// The keys coordinate-major, key[l * m + s] = k_sl (every loop below runs over s, the long
// contiguous axis), in an order that puts each class's keys side by side for the cross-entropy
// (the caller's order for the pooling): sorted position s holds the caller's key original[s],
// and position[j] is where the caller's key j went. Class c occupies [class_begin[c],
// class_begin[c + 1]).
template <class T>
struct Keys {
  std::size_t m = 0, d = 0;
  std::vector<T> key, w;
  std::vector<std::size_t> original, position, class_begin;
};

// labels: null for the pooling (caller's order), else the key labels (>= 0) to group by.
template <class T>
Keys<T> make_keys(const NdAttention<T>& a, const std::int64_t* labels) {
  Keys<T> keys;
  keys.m = a.m, keys.d = a.d;
  keys.w.assign(a.w, a.w + a.d);
  keys.original.resize(a.m);
  std::iota(keys.original.begin(), keys.original.end(), std::size_t(0));
  if (labels) {
    std::stable_sort(keys.original.begin(), keys.original.end(),
                     [labels](std::size_t x, std::size_t y) { return labels[x] < labels[y]; });
    const auto classes = static_cast<std::size_t>(labels[keys.original.back()]) + 1;
    keys.class_begin.assign(classes + 1, 0);
    for (std::size_t j = 0; j < a.m; ++j)
      ++keys.class_begin[static_cast<std::size_t>(labels[j]) + 1];
    std::partial_sum(keys.class_begin.begin(), keys.class_begin.end(), keys.class_begin.begin());
  }
  keys.position.resize(a.m);
  keys.key.resize(a.m * a.d);
  for (std::size_t s = 0; s < a.m; ++s) {
    keys.position[keys.original[s]] = s;
    for (std::size_t l = 0; l < a.d; ++l)
      keys.key[l * a.m + s] = a.keys[keys.original[s] * a.d + l];
  }
  return keys;
}

// One thread's row buffers, each (m,): squared distances, the excess (relative to the nearest
// key; +inf at the skipped key), the class excess (cross-entropy), the weights p and pc, and the
// logit slopes g.
template <class T>
struct Row {
  std::vector<T> q, dist, excess, excess_class, p, pc, g;
  std::size_t nearest = kNone, skip = kNone;
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

// dist_s = sum_l ((q_l - k_sl) w_l)^2.
template <class T>
void squared_distances(const Keys<T>& keys, const T* q, T* dist) {
  const std::size_t m = keys.m;
  std::fill(dist, dist + m, T(0));
  for (std::size_t l = 0; l < keys.d; ++l) {
    const T ql = q[l], wl = keys.w[l];
    const T* k = keys.key.data() + l * m;
#pragma omp simd
    for (std::size_t s = 0; s < m; ++s) {
      const T t = (ql - k[s]) * wl;
      dist[s] += t * t;
    }
  }
}

// excess_s = sum_l ((k_from,l - k_sl) w_l) w_l (d_sl + d_from,l), d_sl = q_l - k_sl, for s in
// [lo, hi); exactly 0 at `from`.
template <class T>
void excess_from(const Keys<T>& keys, const T* q, std::size_t from, std::size_t lo, std::size_t hi,
                 T* excess) {
  const std::size_t m = keys.m;
  std::fill(excess + lo, excess + hi, T(0));
  for (std::size_t l = 0; l < keys.d; ++l) {
    const T* k = keys.key.data() + l * m;
    const T ql = q[l], wl = keys.w[l], k_from = k[from], d_from = ql - k_from;
#pragma omp simd
    for (std::size_t s = lo; s < hi; ++s)
      excess[s] += (((k_from - k[s]) * wl) * wl) * ((ql - k[s]) + d_from);
  }
  if (from >= lo && from < hi) excess[from] = 0;
}

// The nearest key and the excess relative to it (+inf at the skipped key). The nearest is the
// argmin of the squared distances; where those overflow (|(q - k) w| past 1.8e19 in float32) it is
// found from the excess relative to any key instead, which orders the keys as the distances do
// and overflows far later. Rounding can leave a key with a slightly negative excess (two keys at
// nearly the same distance): that one is the nearer, and the search moves on to it.
template <class T>
void nearest_and_excess(const Keys<T>& keys, Row<T>& row) {
  const std::size_t m = keys.m;
  squared_distances(keys, row.q.data(), row.dist.data());
  if (row.skip != kNone) row.dist[row.skip] = kInf<T>;
  const T closest = min_of(row.dist.data(), m);
  std::size_t from = closest < kInf<T> ? first_equal(row.dist.data(), m, closest) : kNone;
  if (from == kNone) from = row.skip == 0 ? 1 : 0;
  for (int step = 0; step < 8; ++step) {
    excess_from(keys, row.q.data(), from, 0, m, row.excess.data());
    if (row.skip != kNone) row.excess[row.skip] = kInf<T>;
    const T lowest = min_of(row.excess.data(), m);
    if (!(lowest < 0)) break;
    from = first_equal(row.excess.data(), m, lowest);
  }
  row.nearest = from;
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

// Row i: its query, skipped key, nearest key, excess and softmax weights p (normalised).
template <class T>
void row_weights(const NdAttention<T>& a, const Keys<T>& keys, std::size_t i, Row<T>& row) {
  for (std::size_t l = 0; l < keys.d; ++l) row.q[l] = a.queries[i * a.d + l];
  row.skip = a.leave_one_out ? keys.position[i] : kNone;
  nearest_and_excess(keys, row);
  row.z = unnormalised_weights(row.excess.data(), 0, keys.m, row.p.data());
  scale(row.p.data(), 0, keys.m, T(1) / row.z);
}

// Per-thread sums of the key-side gradients, (d, m) and (C, m) coordinate-major in the sorted
// order, and of dL/dw.
template <class T>
struct Partials {
  std::vector<T> keys, values, w;
};

// Given the row's logit slopes g (summing to 0): dL/dq_i into grad_query (d,) (when not null),
// and the row's parts of dL/dk and dL/dw into the thread's partials (when wanted).
template <class T>
void pair_grads(const Keys<T>& keys, const Row<T>& row, T* grad_query, Partials<T>& part,
                bool want_keys, bool want_w) {
  const std::size_t m = keys.m;
  const T* g = row.g.data();
  for (std::size_t l = 0; l < keys.d; ++l) {
    const T* k = keys.key.data() + l * m;
    const T ql = row.q[l], wl = keys.w[l], k_near = k[row.nearest], d_near = ql - k_near;
    if (grad_query) {
      T slope = 0;  // sum_s g_s (k*_l - k_sl)
#pragma omp simd reduction(+ : slope)
      for (std::size_t s = 0; s < m; ++s) slope += g[s] * (k_near - k[s]);
      grad_query[l] += -(wl * (wl * slope));
    }
    if (want_keys) {
      T* gk = part.keys.data() + l * m;
      const T w2 = wl * wl;
#pragma omp simd
      for (std::size_t s = 0; s < m; ++s) gk[s] += w2 * (g[s] * (ql - k[s]));
    }
    if (want_w) {
      T slope = 0;  // sum_s g_s excess_sl; a key of weight 0 adds 0 even if its term overflowed
#pragma omp simd reduction(+ : slope)
      for (std::size_t s = 0; s < m; ++s) {
        const T term = g[s] * ((k_near - k[s]) * ((ql - k[s]) + d_near));
        slope += g[s] != 0 ? term : T(0);
      }
      part.w[l] += -wl * slope;
    }
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
      row_weights(a, keys, i, row);
      const T* p = row.p.data();
      for (std::size_t c = 0; c < C; ++c) {
        const T* v = value.data() + c * a.m;
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (std::size_t s = 0; s < a.m; ++s) sum += p[s] * v[s];
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
      row_weights(a, keys, i, row);
      // g_s = p_s (G.v_s - G.f_i): the two-pass form (f_i known), no cancelling sums.
      T grad_dot_f = 0;
      for (std::size_t c = 0; c < C; ++c) grad_dot_f += grad[i * C + c] * f[i * C + c];
      std::fill(row.g.begin(), row.g.end(), -grad_dot_f);
      for (std::size_t c = 0; c < C; ++c) {
        const T gc = grad[i * C + c];
        const T* v = value.data() + c * a.m;
#pragma omp simd
        for (std::size_t s = 0; s < a.m; ++s) g[s] += gc * v[s];
        if (grad_values) {
          T* gv = part.values.data() + c * a.m;
#pragma omp simd
          for (std::size_t s = 0; s < a.m; ++s) gv[s] += gc * p[s];
        }
      }
#pragma omp simd
      for (std::size_t s = 0; s < a.m; ++s) g[s] *= p[s];
      pair_grads(keys, row, grad_queries ? grad_queries + i * a.d : nullptr, part,
                 grad_keys != nullptr, grad_w != nullptr);
    }
  }
  add_partials(parts, keys, C, grad_keys, grad_values, grad_w);
}

namespace {

// For row i of the cross-entropy (after row_weights): the nearest key of the row's class, the
// class weights pc (normalised, on the class's range; 0 elsewhere) and returns
// L_i = log z - log zc + excess(jc*) / 2.
template <class T>
double row_class_weights(const Keys<T>& keys, std::int64_t label, Row<T>& row) {
  const std::size_t lo = keys.class_begin[static_cast<std::size_t>(label)];
  const std::size_t hi = keys.class_begin[static_cast<std::size_t>(label) + 1];
  std::fill(row.pc.begin(), row.pc.end(), T(0));
  const T closest = min_of(row.excess.data() + lo, hi - lo);  // the skipped key is +inf
  if (!(closest < kInf<T>)) return std::numeric_limits<double>::infinity();  // p_i[y_i] = 0
  const std::size_t nearest_class = lo + first_equal(row.excess.data() + lo, hi - lo, closest);
  excess_from(keys, row.q.data(), nearest_class, lo, hi, row.excess_class.data());
  if (row.skip >= lo && row.skip < hi) row.excess_class[row.skip] = kInf<T>;
  const T zc = unnormalised_weights(row.excess_class.data(), lo, hi, row.pc.data());
  scale(row.pc.data(), lo, hi, T(1) / zc);
  return std::log(static_cast<double>(row.z)) - std::log(static_cast<double>(zc)) +
         0.5 * static_cast<double>(closest);
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
      row_weights(a, keys, i, row);
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
      row_weights(a, keys, i, row);
      row_class_weights(keys, query_labels[i], row);
      // dL_i/dlogit_s = p_s - pc_s (L_i = log sum_all exp - log sum_class exp)
#pragma omp simd
      for (std::size_t s = 0; s < a.m; ++s) g[s] = grad * (p[s] - pc[s]);
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
