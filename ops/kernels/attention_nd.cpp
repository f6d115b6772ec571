#include "ops/kernels/attention_nd.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/kernels/exp.h"
#include "ops/kernels/parallel.h"

namespace tapegrad::kernels {

namespace {

constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The keys coordinate-major in double, key[l * m + j] = k_jl (every loop below runs over j, the
// long contiguous axis), and the widths in double.
struct Keys {
  std::size_t m = 0, d = 0;
  std::vector<double> key, w;
};

template <class T>
Keys coordinate_major(const NdAttention<T>& a) {
  Keys keys;
  keys.m = a.m, keys.d = a.d;
  keys.key.resize(a.m * a.d);
  for (std::size_t j = 0; j < a.m; ++j)
    for (std::size_t l = 0; l < a.d; ++l) keys.key[l * a.m + j] = a.keys[j * a.d + l];
  keys.w.assign(a.w, a.w + a.d);
  return keys;
}

// One thread's row buffers, each (m,): the excess relative to the nearest key (and to the
// nearest key of the row's class for the cross-entropy), weights p and pc, logit slopes g.
template <class T>
struct Row {
  std::vector<double> q, excess, excess_class, g;
  std::vector<T> p, pc;
  std::size_t nearest = kNone;
  double z = 0;  // sum_j exp(-excess_j / 2), >= 1
  Row(std::size_t m, std::size_t d) : q(d), excess(m), excess_class(m), g(m), p(m), pc(m) {}
};

// The first j minimising x_j among the keys with label `label` (any key when labels is null),
// j != skip; kNone when there is none. A NaN x_j is the minimum only when all are NaN.
std::size_t argmin(const double* x, std::size_t m, std::size_t skip, const std::int64_t* labels,
                   std::int64_t label) {
  std::size_t best = kNone;
  double best_x = kInf;
  for (std::size_t j = 0; j < m; ++j) {
    if (j == skip || (labels && labels[j] != label)) continue;
    if (best == kNone || x[j] < best_x || std::isnan(best_x)) best = j, best_x = x[j];
  }
  return best;
}

// excess_j = sum_l ((k_from,l - k_jl) w_l) w_l (d_jl + d_from,l), d_jl = q_l - k_jl; 0 at `from`.
void excess_from(const Keys& keys, const double* q, std::size_t from, double* excess) {
  const std::size_t m = keys.m;
  std::fill(excess, excess + m, 0.0);
  for (std::size_t l = 0; l < keys.d; ++l) {
    const double* k = keys.key.data() + l * m;
    const double ql = q[l], wl = keys.w[l], k_from = k[from], d_from = ql - k_from;
#pragma omp simd
    for (std::size_t j = 0; j < m; ++j)
      excess[j] += (((k_from - k[j]) * wl) * wl) * ((ql - k[j]) + d_from);
  }
  excess[from] = 0;
}

// p_j = exp(-excess_j / 2) over the keys with keep(j) (0 elsewhere); returns sum_j p_j.
template <class T, class Keep>
double unnormalised_weights(const double* excess, std::size_t m, Keep keep, T* p) {
#pragma omp simd
  for (std::size_t j = 0; j < m; ++j)
    p[j] = keep(j) ? static_cast<T>(-0.5 * excess[j]) : -std::numeric_limits<T>::infinity();
  return static_cast<double>(exp_shifted_sum(p, T(0), p, m));
}

// The nearest key (not skip) and the excess relative to it. Found without ever forming s_j: the
// excess relative to any key j0 orders the keys as s does (excess_j = s_j - s_j0), so its argmin
// is the nearest key; the excess is then formed again relative to that one. Rounding can leave a
// key with a slightly negative excess (two keys at nearly equal distance from a far query): that
// one is the nearer, and the search moves on to it (at most a few steps; never in practice more
// than one). The excess terms are differences times sums, so they overflow only past
// |k - k'| |q - k| w^2 ~ 1e308, far later than s_j would.
template <class T>
void nearest_and_excess(const Keys& keys, std::size_t skip, Row<T>& row) {
  std::size_t from = skip == 0 ? 1 : 0;
  for (int step = 0; step < 8; ++step) {
    excess_from(keys, row.q.data(), from, row.excess.data());
    const std::size_t nearest = argmin(row.excess.data(), keys.m, skip, nullptr, 0);
    if (nearest == from || !(row.excess[nearest] < 0)) break;
    from = nearest;
  }
  row.nearest = from;
}

// Row i's nearest key, its excess and its softmax weights p (normalised), in row.
template <class T>
void row_weights(const NdAttention<T>& a, const Keys& keys, std::size_t i, Row<T>& row) {
  const std::size_t m = keys.m, skip = a.leave_one_out ? i : kNone;
  for (std::size_t l = 0; l < keys.d; ++l) row.q[l] = a.queries[i * a.d + l];
  nearest_and_excess(keys, skip, row);
  row.z = unnormalised_weights(
      row.excess.data(), m, [skip](std::size_t j) { return j != skip; }, row.p.data());
  const T inv = static_cast<T>(1 / row.z);
#pragma omp simd
  for (std::size_t j = 0; j < m; ++j) row.p[j] *= inv;
}

// Per-thread sums of the key-side gradients, (d, m) and (C, m) coordinate-major, and of dL/dw.
struct Partials {
  std::vector<double> keys, values, w;
};

// Given the row's logit slopes g (summing to 0): dL/dq_i into grad_query (d,) (when not null),
// and the row's parts of dL/dk and dL/dw into the thread's partials.
template <class T>
void pair_grads(const Keys& keys, const Row<T>& row, T* grad_query, Partials& part, bool want_keys,
                bool want_w) {
  const std::size_t m = keys.m;
  const double* g = row.g.data();
  for (std::size_t l = 0; l < keys.d; ++l) {
    const double* k = keys.key.data() + l * m;
    const double ql = row.q[l], wl = keys.w[l], k_near = k[row.nearest], d_near = ql - k_near;
    if (grad_query) {
      double slope = 0;  // sum_j g_j (k*_l - k_jl)
#pragma omp simd reduction(+ : slope)
      for (std::size_t j = 0; j < m; ++j) slope += g[j] * (k_near - k[j]);
      grad_query[l] += static_cast<T>(-(wl * (wl * slope)));
    }
    if (want_keys) {
      double* gk = part.keys.data() + l * m;
#pragma omp simd
      for (std::size_t j = 0; j < m; ++j) gk[j] += wl * (wl * (g[j] * (ql - k[j])));
    }
    if (want_w) {
      double slope = 0;  // sum_j g_j excess_jl
#pragma omp simd reduction(+ : slope)
      for (std::size_t j = 0; j < m; ++j)
        slope += g[j] * ((k_near - k[j]) * ((ql - k[j]) + d_near));
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

// Adds the threads' partials, in thread order, into grad_keys (m, d) row-major, grad_values
// (m, C) and grad_w (d,).
template <class T>
void add_partials(const std::vector<Partials>& parts, std::size_t m, std::size_t d, std::size_t C,
                  T* grad_keys, T* grad_values, T* grad_w) {
  for (std::size_t l = 0; l < d; ++l) {
    if (grad_keys)
      for (std::size_t j = 0; j < m; ++j) {
        double sum = 0;
        for (const Partials& p : parts) sum += p.keys[l * m + j];
        grad_keys[j * d + l] += static_cast<T>(sum);
      }
    if (grad_w) {
      double sum = 0;
      for (const Partials& p : parts) sum += p.w[l];
      grad_w[l] += static_cast<T>(sum);
    }
  }
  if (grad_values)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t j = 0; j < m; ++j) {
        double sum = 0;
        for (const Partials& p : parts) sum += p.values[c * m + j];
        grad_values[j * C + c] += static_cast<T>(sum);
      }
}

Partials make_partials(std::size_t m, std::size_t d, std::size_t C, bool keys, bool values) {
  Partials p;
  p.keys.assign(keys ? d * m : 0, 0.0);
  p.values.assign(values ? C * m : 0, 0.0);
  p.w.assign(d, 0.0);
  return p;
}

// The values coordinate-major, value[c * m + j] = v_jc.
template <class T>
std::vector<T> values_by_column(const T* values, std::size_t m, std::size_t C) {
  std::vector<T> out(m * C);
  for (std::size_t j = 0; j < m; ++j)
    for (std::size_t c = 0; c < C; ++c) out[c * m + j] = values[j * C + c];
  return out;
}

}  // namespace

template <class T>
void nd_pool_forward(const NdAttention<T>& a, const T* values, std::size_t C, T* f) {
  const Keys keys = coordinate_major(a);
  const std::vector<T> value = values_by_column(values, a.m, C);
#pragma omp parallel if (worth_parallel(a.n, a.m))
  {
    Row<T> row(a.m, a.d);
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(a.n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      row_weights(a, keys, i, row);
      for (std::size_t c = 0; c < C; ++c) {
        const T* v = value.data() + c * a.m;
        const T* p = row.p.data();
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (std::size_t j = 0; j < a.m; ++j) sum += p[j] * v[j];
        f[i * C + c] = sum;
      }
    }
  }
}

template <class T>
void nd_pool_backward(const NdAttention<T>& a, const T* values, std::size_t C, const T* f,
                      const T* grad, T* grad_queries, T* grad_keys, T* grad_values, T* grad_w) {
  const Keys keys = coordinate_major(a);
  const std::vector<T> value = values_by_column(values, a.m, C);
  const int threads = thread_count(a.n, a.m);
  std::vector<Partials> parts(
      threads, make_partials(a.m, a.d, C, grad_keys != nullptr, grad_values != nullptr));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    Row<T> row(a.m, a.d);
    Partials& part = parts[omp_get_thread_num()];
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(a.n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      row_weights(a, keys, i, row);
      // g_j = p_j (G.v_j - G.f_i): the two-pass form (f_i known), no cancelling sums.
      double grad_dot_f = 0;
      for (std::size_t c = 0; c < C; ++c)
        grad_dot_f += static_cast<double>(grad[i * C + c]) * f[i * C + c];
      std::fill(row.g.begin(), row.g.end(), -grad_dot_f);
      for (std::size_t c = 0; c < C; ++c) {
        const double gc = grad[i * C + c];
        const T* v = value.data() + c * a.m;
#pragma omp simd
        for (std::size_t j = 0; j < a.m; ++j) row.g[j] += gc * v[j];
        if (grad_values) {
          double* gv = part.values.data() + c * a.m;
#pragma omp simd
          for (std::size_t j = 0; j < a.m; ++j) gv[j] += gc * row.p[j];
        }
      }
#pragma omp simd
      for (std::size_t j = 0; j < a.m; ++j) row.g[j] *= row.p[j];
      pair_grads(keys, row, grad_queries ? grad_queries + i * a.d : nullptr, part,
                 grad_keys != nullptr, grad_w != nullptr);
    }
  }
  add_partials(parts, a.m, a.d, C, grad_keys, grad_values, grad_w);
}

namespace {

// For row i of the cross-entropy (after row_weights): the nearest key of the row's class, the
// class weights pc (normalised; 0 off the class) and L_i = log Z - log Zc + excess(jc*) / 2.
template <class T>
double row_class_weights(const NdAttention<T>& a, const Keys& keys, const std::int64_t* labels,
                         std::int64_t label, std::size_t i, Row<T>& row) {
  const std::size_t m = keys.m, skip = a.leave_one_out ? i : kNone;
  const std::size_t nearest_class = argmin(row.excess.data(), m, skip, labels, label);
  if (nearest_class == kNone) {  // no key of its class: p_i[y_i] = 0
    std::fill(row.pc.begin(), row.pc.end(), T(0));
    return kInf;
  }
  excess_from(keys, row.q.data(), nearest_class, row.excess_class.data());
  const double zc = unnormalised_weights(
      row.excess_class.data(), m, [=](std::size_t j) { return j != skip && labels[j] == label; },
      row.pc.data());
  const T inv = static_cast<T>(1 / zc);
#pragma omp simd
  for (std::size_t j = 0; j < m; ++j) row.pc[j] *= inv;
  return std::log(row.z) - std::log(zc) + 0.5 * row.excess[nearest_class];
}

}  // namespace

template <class T>
T nd_cross_entropy_forward(const NdAttention<T>& a, const std::int64_t* key_labels,
                           const std::int64_t* query_labels) {
  const Keys keys = coordinate_major(a);
  std::vector<double> loss(a.n);
#pragma omp parallel if (worth_parallel(a.n, a.m))
  {
    Row<T> row(a.m, a.d);
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(a.n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      row_weights(a, keys, i, row);
      loss[i] = row_class_weights(a, keys, key_labels, query_labels[i], i, row);
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
  const Keys keys = coordinate_major(a);
  const int threads = thread_count(a.n, a.m);
  std::vector<Partials> parts(threads, make_partials(a.m, a.d, 0, grad_keys != nullptr, false));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    Row<T> row(a.m, a.d);
    Partials& part = parts[omp_get_thread_num()];
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(a.n); ++il) {
      const auto i = static_cast<std::size_t>(il);
      row_weights(a, keys, i, row);
      row_class_weights(a, keys, key_labels, query_labels[i], i, row);
      // dL_i/dlogit_j = p_j - pc_j (L_i = -log sum_class exp + log sum_all exp)
      const double g = grad;
#pragma omp simd
      for (std::size_t j = 0; j < a.m; ++j)
        row.g[j] = g * (static_cast<double>(row.p[j]) - static_cast<double>(row.pc[j]));
      pair_grads(keys, row, grad_queries ? grad_queries + i * a.d : nullptr, part,
                 grad_keys != nullptr, grad_w != nullptr);
    }
  }
  add_partials(parts, a.m, a.d, 0, grad_keys, static_cast<T*>(nullptr), grad_w);
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
