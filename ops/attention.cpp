// Compiled with -ffast-math (see CMakeLists.txt) so that the exp in the inner loops vectorises
// through glibc's libmvec; every quantity here is finite by construction (exp arguments <= 0).
#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/common.h"

namespace tapegrad {

namespace {

constexpr std::size_t kParallelMinPairs = 1 << 15;

// Per-row sums of the forward pass (see the header): everything backward needs for w and q.
template <class T>
struct RowStats {
  std::vector<T> mu;             // min_j d_ij^2 (the softmax shift is -w^2 mu / 2)
  std::vector<T> Z, A, B, C, D;  // sum e, sum e d^2, sum e v d^2, sum e d, sum e v d
  std::vector<T> f;              // the outputs F / Z
  int sums = 6;                  // how many of the sums were computed (see accumulate_row)
  explicit RowStats(std::size_t n) : mu(n), Z(n), A(n), B(n), C(n), D(n), f(n) {}
};

// Adds row i's sums over keys [lo, hi). c = w^2 / 2, so e = exp(-c (d^2 - mu)).
// kSums says how many sums the caller needs: 2 = Z, F (the output); 4 = also A, B (for dL/dw);
// 6 = also C, D (for dL/dq). Fewer sums, fewer operations per pair in the one hot loop.
template <int kSums, class T>
inline void accumulate_row(T qi, const T* k, const T* v, std::size_t lo, std::size_t hi, T c, T mu,
                           T& Z, T& F, T& A, T& B, T& C, T& D) {
  T z = 0, fs = 0, a = 0, b = 0, cs = 0, ds = 0;
#pragma omp simd reduction(+ : z, fs, a, b, cs, ds)
  for (std::size_t j = lo; j < hi; ++j) {
    const T d = qi - k[j];
    const T d2 = d * d;
    const T e = std::exp(c * (mu - d2));
    const T ev = e * v[j];
    z += e;
    fs += ev;
    if constexpr (kSums >= 4) {
      a += e * d2;
      b += ev * d2;
    }
    if constexpr (kSums >= 6) {
      cs += e * d;
      ds += ev * d;
    }
  }
  Z += z, F += fs, A += a, B += b, C += cs, D += ds;
}

template <class T>
inline T min_sq_dist(T qi, const T* k, std::size_t lo, std::size_t hi, T mu) {
#pragma omp simd reduction(min : mu)
  for (std::size_t j = lo; j < hi; ++j) mu = std::min(mu, (qi - k[j]) * (qi - k[j]));
  return mu;
}

// Runs f(lo, hi) over row i's key ranges: all of [0, m), or [0, i) and (i, m) with leave-one-out.
template <class F>
inline void for_key_ranges(std::size_t i, std::size_t m, bool loo, F&& f) {
  if (!loo) {
    f(std::size_t(0), m);
  } else {
    f(std::size_t(0), i);
    f(i + 1, m);
  }
}

template <int kSums, class T>
RowStats<T> forward_rows(const T* q, std::size_t n, const T* k, const T* v, std::size_t m, T w,
                         bool loo) {
  RowStats<T> r(n);
  r.sums = kSums;
  const T c = w * w / 2;
#pragma omp parallel for schedule(static) if (n * m >= kParallelMinPairs)
  for (long il = 0; il < static_cast<long>(n); ++il) {
    const auto i = static_cast<std::size_t>(il);
    T mu = std::numeric_limits<T>::max();
    for_key_ranges(i, m, loo,
                   [&](std::size_t lo, std::size_t hi) { mu = min_sq_dist(q[i], k, lo, hi, mu); });
    T Z = 0, F = 0, A = 0, B = 0, C = 0, D = 0;
    for_key_ranges(i, m, loo, [&](std::size_t lo, std::size_t hi) {
      accumulate_row<kSums>(q[i], k, v, lo, hi, c, mu, Z, F, A, B, C, D);
    });
    r.mu[i] = mu, r.Z[i] = Z, r.A[i] = A, r.B[i] = B, r.C[i] = C, r.D[i] = D;
    r.f[i] = F / Z;
  }
  return r;
}

}  // namespace

template <class T>
Tensor<T> nw_attention_pool(const Tensor<T>& queries, const Tensor<T>& keys,
                            const Tensor<T>& values, const Tensor<T>& w, bool leave_one_out) {
  const std::string op = "nw_attention_pool";
  check_dim(op, queries, 1, "queries");
  check_dim(op, keys, 1, "keys");
  check_dim(op, values, 1, "values");
  check_defined(op, w);
  const std::size_t n = queries.size(), m = keys.size();
  if (values.size() != m)
    throw std::invalid_argument(op + ": keys " + shape_str(keys.shape()) + " and values " +
                                shape_str(values.shape()) + " must have the same length");
  if (w.size() != 1)
    throw std::invalid_argument(op + ": w must have one element, got shape " +
                                shape_str(w.shape()));
  if (leave_one_out && n != m)
    throw std::invalid_argument(
        op + ": leave_one_out needs the queries to be the keys, got queries " +
        shape_str(queries.shape()) + " and keys " + shape_str(keys.shape()));
  if (m < (leave_one_out ? 2u : 1u))
    throw std::invalid_argument(op + ": too few keys " + shape_str(keys.shape()) +
                                (leave_one_out ? " for leave-one-out (need 2)" : " (need 1)"));

  const T wv = *w.value().data();
  // Only the sums some backward will use: A, B for w, C, D for the queries.
  const bool record_grad = needs_record<T>({queries, keys, values, w});
  const T *qp = queries.value().data(), *kp = keys.value().data(), *vp = values.value().data();
  auto stats = std::make_shared<RowStats<T>>(
      record_grad && queries.requires_grad() ? forward_rows<6>(qp, n, kp, vp, m, wv, leave_one_out)
      : record_grad && w.requires_grad()     ? forward_rows<4>(qp, n, kp, vp, m, wv, leave_one_out)
                                         : forward_rows<2>(qp, n, kp, vp, m, wv, leave_one_out));
  xt::xarray<T> out = xt::zeros<T>({n});
  std::copy(stats->f.begin(), stats->f.end(), out.data());

  return record<T>(
      op, std::move(out), {queries, keys, values, w},
      [queries, keys, values, w, leave_one_out, stats, op](const Node<T>& o) {
        const T wv = *w.value().data();
        const T* g = o.grad.data();
        const RowStats<T>& s = *stats;
        const std::size_t n = queries.size(), m = keys.size();
        if ((w.requires_grad() && s.sums < 4) || (queries.requires_grad() && s.sums < 6))
          throw std::logic_error(op +
                                 ": requires_grad of an input changed between "
                                 "forward and backward");
        if (w.requires_grad()) {  // w: -w sum_i g_i (B_i - f_i A_i) / Z_i
          T acc = 0;
          for (std::size_t i = 0; i < n; ++i) acc += g[i] * (s.B[i] - s.f[i] * s.A[i]) / s.Z[i];
          xt::xarray<T> gw = xt::zeros<T>(w.value().shape());
          *gw.data() = -wv * acc;
          accumulate_grad(w, std::move(gw), op);
        }
        if (queries.requires_grad()) {  // q_i: -w^2 g_i (D_i - f_i C_i) / Z_i
          xt::xarray<T> gq = xt::zeros<T>({n});
          for (std::size_t i = 0; i < n; ++i)
            gq(i) = -wv * wv * g[i] * (s.D[i] - s.f[i] * s.C[i]) / s.Z[i];
          accumulate_grad(queries, std::move(gq), op);
        }
        if (keys.requires_grad() || values.requires_grad()) {
          // k_j: sum_i g_i p_ij (v_j - f_i) w^2 d_ij      v_j: sum_i g_i p_ij
          // One pass per key j over the rows i (no write conflicts between threads).
          const T* q = queries.value().data();
          const T* k = keys.value().data();
          const T* v = values.value().data();
          const T c = wv * wv / 2;
          xt::xarray<T> gk = xt::zeros<T>({m}), gv = xt::zeros<T>({m});
          T* pk = gk.data();
          T* pv = gv.data();
#pragma omp parallel for schedule(static) if (n * m >= kParallelMinPairs)
          for (long jl = 0; jl < static_cast<long>(m); ++jl) {
            const auto j = static_cast<std::size_t>(jl);
            T sk = 0, sv = 0;
#pragma omp simd reduction(+ : sk, sv)
            for (std::size_t i = 0; i < n; ++i) {
              const T d = q[i] - k[j];
              const T p =
                  (leave_one_out && i == j) ? T(0) : std::exp(c * (s.mu[i] - d * d)) / s.Z[i];
              sk += g[i] * p * (v[j] - s.f[i]) * d;
              sv += g[i] * p;
            }
            pk[j] = sk * wv * wv;
            pv[j] = sv;
          }
          if (keys.requires_grad()) accumulate_grad(keys, std::move(gk), op);
          if (values.requires_grad()) accumulate_grad(values, std::move(gv), op);
        }
      });
}

template <class T>
xt::xarray<T> nw_attention_weights(const xt::xarray<T>& queries, const xt::xarray<T>& keys, T w,
                                   bool leave_one_out) {
  const std::size_t n = queries.size(), m = keys.size();
  if (leave_one_out && n != m)
    throw std::invalid_argument(
        "nw_attention_weights: leave_one_out needs as many queries as keys");
  xt::xarray<T> p = xt::xarray<T>::from_shape({n, m});  // every element is written below
  const T c = w * w / 2;
  const T* q = queries.data();
  const T* k = keys.data();
#pragma omp parallel for schedule(static) if (n * m >= kParallelMinPairs)
  for (long il = 0; il < static_cast<long>(n); ++il) {
    const auto i = static_cast<std::size_t>(il);
    T* row = p.data() + i * m;
    T mu = std::numeric_limits<T>::max();
    for_key_ranges(i, m, leave_one_out,
                   [&](std::size_t lo, std::size_t hi) { mu = min_sq_dist(q[i], k, lo, hi, mu); });
    T z = 0;
    for_key_ranges(i, m, leave_one_out, [&](std::size_t lo, std::size_t hi) {
      T zr = 0;
#pragma omp simd reduction(+ : zr)
      for (std::size_t j = lo; j < hi; ++j) {
        row[j] = std::exp(c * (mu - (q[i] - k[j]) * (q[i] - k[j])));
        zr += row[j];
      }
      z += zr;
    });
    if (leave_one_out) row[i] = T(0);
    const T inv = T(1) / z;
#pragma omp simd
    for (std::size_t j = 0; j < m; ++j) row[j] *= inv;
  }
  return p;
}

template Tensor<float> nw_attention_pool(const Tensor<float>&, const Tensor<float>&,
                                         const Tensor<float>&, const Tensor<float>&, bool);
template Tensor<double> nw_attention_pool(const Tensor<double>&, const Tensor<double>&,
                                          const Tensor<double>&, const Tensor<double>&, bool);
template xt::xarray<float> nw_attention_weights(const xt::xarray<float>&, const xt::xarray<float>&,
                                                float, bool);
template xt::xarray<double> nw_attention_weights(const xt::xarray<double>&,
                                                 const xt::xarray<double>&, double, bool);

}  // namespace tapegrad
