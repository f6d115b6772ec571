// One truth at two speeds: the fused ops (ops/fused/nw_attention.h) compute the same functions as
// the obvious expressions composed from generic ops (the oracle below), at every scale a user can
// reach, not only the chapter's:
//   d = 1, 2, 3; inputs scaled by 1e-6 .. 1e6; widths from flat to razor-sharp attention (1e-3 ..
//   1e3 in units of the data, and absolute 1e-6 .. 1e6), shared or per coordinate; duplicated keys
//   and queries at exactly the same distance from two keys; queries up to 1e30 (float32) and 1e300
//   (float64) away; with and without leave-one-out; both dtypes;
// the pooled values and the gradients to queries, keys, values and w, the cross-entropy and its
// gradients, and whole training runs (5 epochs of SGD at lr 0.5, the chapter's set-up).
//
// The oracle, in the same dtype as the fused op: with d_ijl = q_il - k_jl and k*_i the nearest key
// of row i (found under NoGradGuard, a constant),
//   logits_ij = -sum_l ((k*_il - k_jl) w_l) ((d_ijl / 2 + (q_il - k*_il) / 2) w_l)
//             = -|d_ij w|^2 / 2 + |(q_i - k*_i) w|^2 / 2
//   f = softmax(logits, 1) matmul v,   L = sum_i logsumexp_j logits_ij - logsumexp_{j in y_i}
// from sub, mul, add, sum, masked_fill, softmax, logsumexp and matmul. The row constant changes
// neither the softmax nor any gradient through it, and it keeps the oracle finite for queries far
// from every key, where |d w|^2 overflows; where it does not, the oracle is softmax(-|d w|^2 / 2)
// itself (checked below).
//
// Tolerances: 1e-4 (float32) and 1e-9 (float64), relative to the size of the terms that make up
// each number (a value next to the scale of v, a gradient next to the sum of its terms' sizes).
// Seeded: TAPEGRAD_ONE_TRUTH_SEED=<n> replays a seed; every failure names seed and case.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include <xtensor/xio.hpp>
#include <xtensor/xmath.hpp>

#include "../reference.h"
#include "autograd/gradcheck_gtest.h"
#include "ops/elementwise.h"
#include "ops/fused/nw_attention.h"
#include "ops/indexing.h"
#include "ops/linalg.h"
#include "ops/reduction.h"
#include "ops/shape.h"
#include "ops/softmax.h"
#include "tests/sanitizer.h"

namespace tapegrad::test {
namespace {

#if defined(TAPEGRAD_UNDER_ASAN)
constexpr int kCases = 150;
#else
constexpr int kCases = 1000;
#endif

using LD = long double;
using Labels = std::vector<std::int64_t>;

// One problem, in float64 (already rounded to the dtype under test): queries (n, d), keys (m, d),
// values (m, C), w (1,) or (d,), labels of the keys and queries, upstream u (n, C).
struct Problem {
  xt::xarray<double> q, k, v, w, u;
  Labels key_labels, query_labels;
  bool leave_one_out = false;
  std::size_t n() const { return q.shape()[0]; }
  std::size_t m() const { return k.shape()[0]; }
  std::size_t d() const { return k.shape()[1]; }
  std::string describe() const {
    std::ostringstream os;
    os.precision(9);
    os << "n " << n() << ", m " << m() << ", d " << d() << ", C " << v.shape()[1] << ", w (";
    for (double e : w) os << e << " ";
    os << "), k[0, 0] " << k(0, 0) << ", q[0, 0] " << q(0, 0) << (leave_one_out ? ", loo" : "");
    return os.str();
  }
};

// Row i's nearest key (but i under leave-one-out), in long double: key j is nearer than key b
// when sum_l w_l^2 (k_bl - k_jl) ((q_l - k_jl) + (q_l - k_bl)) < 0 (|(q - k_j) w|^2 - |(q - k_b)
// w|^2 without the squares, which lose a far query's keys in their rounding). With in_class, the
// nearest of the keys of row i's class (the first key when it has none).
std::size_t nearest_key(const Problem& p, std::size_t i, bool in_class = false) {
  std::size_t best = p.m();
  for (std::size_t j = 0; j < p.m(); ++j) {
    if ((p.leave_one_out && j == i) || (in_class && p.key_labels[j] != p.query_labels[i])) continue;
    LD excess = 0;
    for (std::size_t l = 0; best < p.m() && l < p.d(); ++l) {
      const LD w = p.w(p.w.size() == 1 ? 0 : l), q = p.q(i, l), kb = p.k(best, l), kj = p.k(j, l);
      excess += w * w * (kb - kj) * ((q - kj) + (q - kb));
    }
    if (best == p.m() || excess < 0) best = j;
  }
  return best == p.m() ? 0 : best;
}

template <class T>
Tensor<T> tensor(const xt::xarray<double>& a, bool requires_grad = false) {
  return Tensor<T>(xt::xarray<T>(xt::cast<T>(a)), requires_grad);
}

// The coordinates of each row's nearest key (n, 1, d), a constant (see nearest_key).
template <class T>
Tensor<T> nearest_keys(const Problem& p, bool in_class = false) {
  NoGradGuard no_grad;
  xt::xarray<double> nearest = xt::zeros<double>({p.n(), std::size_t(1), p.d()});
  for (std::size_t i = 0; i < p.n(); ++i) {
    const std::size_t j = nearest_key(p, i, in_class);
    for (std::size_t l = 0; l < p.d(); ++l) nearest(i, 0, l) = p.k(j, l);
  }
  return tensor<T>(nearest);
}

// sum_l ((a_l - b_l) w_l) ((q_l - b_l) / 2 + (q_l - a_l) / 2) w_l for rows q (n, 1, d) against
// a and b (n, 1, d) or (1, m, d): |(q - b) w|^2 / 2 - |(q - a) w|^2 / 2, without the squares.
template <class T>
Tensor<T> half_excess(const Tensor<T>& q, const Tensor<T>& a, const Tensor<T>& b,
                      const Tensor<T>& w) {
  const Tensor<T> mid = add(mul(sub(q, b), T(0.5)), mul(sub(q, a), T(0.5)));
  return sum(mul(mul(sub(a, b), w), mul(mid, w)), {2});
}

// The oracle's logits (n, m) relative to the nearest keys kstar (n, 1, d); -inf at j = i under
// leave-one-out.
template <class T>
Tensor<T> oracle_logits(const Problem& p, const Tensor<T>& q, const Tensor<T>& k,
                        const Tensor<T>& w, const Tensor<T>& kstar) {
  const Tensor<T> logits = neg(half_excess(unsqueeze(q, 1), kstar, unsqueeze(k, 0), w));
  if (!p.leave_one_out) return logits;
  xt::xarray<bool> diagonal = xt::zeros<bool>({p.n(), p.m()});
  for (std::size_t i = 0; i < p.n(); ++i) diagonal(i, i) = true;
  return masked_fill(logits, diagonal, -std::numeric_limits<T>::infinity());
}

template <class T>
Tensor<T> oracle_logits(const Problem& p, const Tensor<T>& q, const Tensor<T>& k,
                        const Tensor<T>& w) {
  return oracle_logits(p, q, k, w, nearest_keys<T>(p));
}

// L = sum_i logsumexp_j a_ij - logsumexp_{j in y_i} a'_ij + |(q_i - kc*_i) w|^2 / 2 -
// |(q_i - k*_i) w|^2 / 2, a relative to the row's nearest key k*, a' to its class's kc*: each
// logsumexp of numbers near 0, however far the class.
template <class T>
Tensor<T> oracle_cross_entropy(const Problem& p, const Tensor<T>& q, const Tensor<T>& k,
                               const Tensor<T>& w) {
  const Tensor<T> kstar = nearest_keys<T>(p), kstar_class = nearest_keys<T>(p, true);
  xt::xarray<bool> other_class = xt::zeros<bool>({p.n(), p.m()});
  for (std::size_t i = 0; i < p.n(); ++i)
    for (std::size_t j = 0; j < p.m(); ++j)
      other_class(i, j) = p.key_labels[j] != p.query_labels[i];
  const Tensor<T> all = logsumexp(oracle_logits(p, q, k, w, kstar), 1);
  const Tensor<T> own = logsumexp(masked_fill(oracle_logits(p, q, k, w, kstar_class), other_class,
                                              -std::numeric_limits<T>::infinity()),
                                  1);
  const Tensor<T> shift = half_excess(unsqueeze(q, 1), kstar, kstar_class, w);  // (n, 1)
  return sum(add(sub(all, own), squeeze(shift, 1)));
}

// What one implementation gives: f (n, C), L, and their gradients.
struct Outcome {
  xt::xarray<double> f, gq, gk, gv, gw, ce_gq, ce_gk, ce_gw;
  double loss = 0;
};

template <class T>
xt::xarray<double> grad_of(const Tensor<T>& t) {
  return xt::xarray<double>(xt::cast<double>(t.grad()));
}

template <class T>
Outcome run(const Problem& p, bool fused) {
  Outcome o;
  auto q = tensor<T>(p.q, true), k = tensor<T>(p.k, true), v = tensor<T>(p.v, true);
  auto w = tensor<T>(p.w, true);
  const Tensor<T> f = fused ? nw_attention_pool(q, k, v, w, p.leave_one_out)
                            : matmul(softmax(oracle_logits(p, q, k, w), 1), v);
  backward(sum(mul(f, tensor<T>(p.u))));
  o.f = xt::cast<double>(f.value());
  o.gq = grad_of(q), o.gk = grad_of(k), o.gv = grad_of(v), o.gw = grad_of(w);
  auto q2 = tensor<T>(p.q, true), k2 = tensor<T>(p.k, true), w2 = tensor<T>(p.w, true);
  Tensor<T> loss;
  if (fused) {
    loss = nw_attention_cross_entropy(q2, k2, p.key_labels, p.query_labels, w2, p.leave_one_out);
  } else {
    loss = oracle_cross_entropy(p, q2, k2, w2);
  }
  backward(loss);
  o.loss = static_cast<double>(loss.item());
  o.ce_gq = grad_of(q2), o.ce_gk = grad_of(k2), o.ce_gw = grad_of(w2);
  return o;
}

// The sizes of the terms behind each number: with r_ij the size of dL/dlogit_ij and the logits
// relative to key ref_i of row i,
//   dq_il: w_l^2 sum_j r_ij |k_ref,l - k_jl|,
//   dk_jl: w_l^2 sum_i r_ij (|d_ijl| + |k_ref,l - k_jl|)   (the second term: the oracle's rounding),
//   dw_l: |w_l| sum_ij r_ij |k_ref,l - k_jl| |d_ijl + d_ref,l|   (summed over l for a shared w);
// for the pooling r_ij = p_ij sum_c |u_ic| (|v_jc| + |f_ic|), f_ic: max(|f_ic|, max_j |v_jc|),
// dv_jc: sum_i |u_ic| p_ij; for the cross-entropy r = p + pc and the term that moves the class's
// sums from its nearest key kc* to k*. Each r_ij is widened by what a rounding of the logit's
// terms does to its weight: (1 + 8 eps sum_l |w_l^2 (k_ref,l - k_jl) (d_ijl + d_ref,l) / 2| / tol)
// (in d >= 2 the terms of a logit can cancel).
struct Sizes {
  xt::xarray<LD> f, gq, gk, gv, gw;
  LD rounding = 0;  // 8 eps / tol
  template <class T>
  static Sizes of(const Problem& p) {
    Sizes s;
    s.f = xt::zeros<LD>({p.n(), p.v.shape()[1]}), s.gq = xt::zeros<LD>(p.q.shape());
    s.gk = xt::zeros<LD>(p.k.shape()), s.gv = xt::zeros<LD>(p.v.shape());
    s.gw = xt::zeros<LD>(p.w.shape());
    s.rounding = 8 * std::numeric_limits<T>::epsilon() / (std::is_same_v<T, float> ? 1e-4L : 1e-9L);
    return s;
  }
};

// 1 + the rounding of the logit of pair (i, j) relative to key ref, as a fraction of tol.
LD conditioning(const Problem& p, std::size_t i, std::size_t j, std::size_t ref, const Sizes& s) {
  LD terms = 0;
  for (std::size_t l = 0; l < p.d(); ++l) {
    const LD wl = p.w(p.w.size() == 1 ? 0 : l), q = p.q(i, l), kr = p.k(ref, l), kj = p.k(j, l);
    terms += std::abs(wl * wl * (kr - kj) * ((q - kj) + (q - kr)) / 2);
  }
  return 1 + s.rounding * terms;
}

// The slopes' part of pair (i, j), logits relative to key ref.
void add_pair(const Problem& p, std::size_t i, std::size_t j, std::size_t ref, LD r, Sizes& s) {
  r *= conditioning(p, i, j, ref, s);
  for (std::size_t l = 0; l < p.d(); ++l) {
    const LD wl = p.w(p.w.size() == 1 ? 0 : l), dl = LD(p.q(i, l)) - p.k(j, l);
    const LD delta = std::abs(LD(p.k(ref, l)) - p.k(j, l));
    s.gq(i, l) += wl * wl * r * delta;
    s.gk(j, l) += wl * wl * r * (std::abs(dl) + delta);  // the oracle's w^2 (d_mid + delta / 2)
    s.gw(p.w.size() == 1 ? 0 : l) +=
        std::abs(wl) * r * delta * std::abs(dl + LD(p.q(i, l)) - p.k(ref, l));
  }
}

template <class T>
Sizes pool_sizes(const Problem& p, const xt::xarray<double>& prob, const xt::xarray<double>& f) {
  Sizes s = Sizes::of<T>(p);
  for (std::size_t i = 0; i < p.n(); ++i) {
    const std::size_t near = nearest_key(p, i);
    for (std::size_t c = 0; c < p.v.shape()[1]; ++c) s.f(i, c) = std::abs(LD(f(i, c)));
    for (std::size_t j = 0; j < p.m(); ++j) {
      LD r = 0;
      const LD rounding = conditioning(p, i, j, near, s) - 1;
      for (std::size_t c = 0; c < p.v.shape()[1]; ++c) {
        const LD vf = std::abs(LD(p.v(j, c))) + std::abs(LD(f(i, c)));
        s.f(i, c) = std::max(s.f(i, c), std::abs(LD(p.v(j, c)))) + prob(i, j) * vf * rounding;
        r += prob(i, j) * std::abs(LD(p.u(i, c))) * vf;
        s.gv(j, c) += std::abs(LD(p.u(i, c))) * prob(i, j) * (1 + rounding);
      }
      add_pair(p, i, j, near, r, s);
    }
  }
  return s;
}

template <class T>
Sizes cross_entropy_sizes(const Problem& p, const xt::xarray<double>& prob,
                          const xt::xarray<double>& prob_class) {
  Sizes s = Sizes::of<T>(p);
  for (std::size_t i = 0; i < p.n(); ++i) {
    const std::size_t near = nearest_key(p, i), near_class = nearest_key(p, i, true);
    for (std::size_t j = 0; j < p.m(); ++j) {
      add_pair(p, i, j, near, prob(i, j), s);
      add_pair(p, i, j, near_class, prob_class(i, j), s);
    }
    add_pair(p, i, near_class, near, 1, s);
  }
  return s;
}

// |got - want| <= tol * size + floor everywhere. floor: what the dtype cannot hold anyway, a few
// thousand times its smallest normal number times the terms' sizes at unit scale (the kernels
// flush results below it to 0 at any step of a product; the composed ops may keep them). Where
// the oracle is not finite (its chain rule meets 0 * inf for keys of weight 0), the fused number
// must be finite unless its terms do not fit in T.
template <class T>
::testing::AssertionResult agree(const std::string& what, const xt::xarray<double>& got,
                                 const xt::xarray<double>& want, const xt::xarray<LD>& size,
                                 const xt::xarray<LD>& unit_size) {
  const LD tol = std::is_same_v<T, float> ? 1e-4L : 1e-9L, top = std::numeric_limits<T>::max();
  for (std::size_t e = 0; e < got.size(); ++e) {
    const LD floor = 1e4L * std::numeric_limits<T>::min() * (1 + unit_size.data()[e]);
    const LD g = got.data()[e], o = want.data()[e];
    const bool ok = std::isfinite(o)
                        ? std::isfinite(g) && std::abs(g - o) <= tol * size.data()[e] + floor
                        : std::isfinite(g) || !(size.data()[e] < top / 100);
    if (!ok) {
      std::ostringstream os;
      os.precision(17);
      os << what << "[" << e << "]: fused " << g << ", oracle " << o << " (size "
         << double(size.data()[e]) << ")";
      return ::testing::AssertionFailure() << os.str();
    }
  }
  return ::testing::AssertionSuccess();
}

bool all_finite(const Outcome& o) {
  for (const auto* a : {&o.gq, &o.gk, &o.gv, &o.gw})
    if (!xt::all(xt::isfinite(*a))) return false;
  return true;
}

// Compares the fused op with the oracle on p; returns whether every gradient was compared (not
// where the oracle's own are not finite: its products overflow for some keys of weight 0, and
// 0 * inf = NaN in its chain rule).
// The oracle's weights p (n, m) and its class weights pc (n, m, 0 off each row's class).
template <class T>
std::pair<xt::xarray<double>, xt::xarray<double>> oracle_weights(const Problem& p) {
  auto q = tensor<T>(p.q), k = tensor<T>(p.k), w = tensor<T>(p.w);
  xt::xarray<bool> other_class = xt::zeros<bool>({p.n(), p.m()});
  for (std::size_t i = 0; i < p.n(); ++i)
    for (std::size_t j = 0; j < p.m(); ++j)
      other_class(i, j) = p.key_labels[j] != p.query_labels[i];
  const Tensor<T> own = masked_fill(oracle_logits(p, q, k, w, nearest_keys<T>(p, true)),
                                    other_class, -std::numeric_limits<T>::infinity());
  return {xt::cast<double>(softmax(oracle_logits(p, q, k, w), 1).value()),
          xt::cast<double>(softmax(own, 1).value())};
}

// Compares the fused op with the oracle on p; returns whether every gradient was compared (not
// where the oracle's own are not finite: its products overflow for some keys of weight 0, and
// 0 * inf = NaN in its chain rule).
template <class T>
bool expect_agrees(const Problem& p, const std::string& where) {
  const Outcome fused = run<T>(p, true), oracle = run<T>(p, false);
  const auto [prob, prob_class] = oracle_weights<T>(p);
  // The floors' sizes: every weight, value and upstream at 1, every width at least 1.
  Problem unit = p;
  unit.u = xt::ones_like(p.u), unit.v = xt::ones_like(p.v), unit.w = xt::maximum(xt::abs(p.w), 1.0);
  const xt::xarray<double> ones = xt::ones_like(prob), ones_f = xt::ones_like(oracle.f);
  const Sizes s = pool_sizes<T>(p, prob, oracle.f), s1 = pool_sizes<T>(unit, ones, ones_f);
  EXPECT_TRUE(agree<T>(where + "f", fused.f, oracle.f, s.f, s1.f));
  EXPECT_TRUE(agree<T>(where + "dL/dq", fused.gq, oracle.gq, s.gq, s1.gq));
  EXPECT_TRUE(agree<T>(where + "dL/dk", fused.gk, oracle.gk, s.gk, s1.gk));
  EXPECT_TRUE(agree<T>(where + "dL/dv", fused.gv, oracle.gv, s.gv, s1.gv));
  EXPECT_TRUE(agree<T>(where + "dL/dw", fused.gw, oracle.gw, s.gw, s1.gw));
  if (std::isfinite(oracle.loss)) {  // the cross-entropy: terms of the loss's own size
    const LD tol = std::is_same_v<T, float> ? 1e-4L : 1e-9L;
    EXPECT_NEAR(fused.loss, oracle.loss, double(tol * (1 + std::abs(LD(oracle.loss)))))
        << where << "cross-entropy";
    const Sizes c = cross_entropy_sizes<T>(p, prob, prob_class),
                c1 = cross_entropy_sizes<T>(unit, ones, ones);
    EXPECT_TRUE(agree<T>(where + "CE dL/dq", fused.ce_gq, oracle.ce_gq, c.gq, c1.gq));
    EXPECT_TRUE(agree<T>(where + "CE dL/dk", fused.ce_gk, oracle.ce_gk, c.gk, c1.gk));
    EXPECT_TRUE(agree<T>(where + "CE dL/dw", fused.ce_gw, oracle.ce_gw, c.gw, c1.gw));
  }
  return all_finite(oracle);
}

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(std::uint64_t seed) : rng(seed) {}
  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  bool coin(double p) { return uniform(0, 1) < p; }
  double normal() { return std::normal_distribution<double>(0, 1)(rng); }
};

// Query i at exactly the same distance from two keys: q_i = c, keys c + (a, b, ..) and c + (b, a,
// ..) (d >= 2: the keys mirror each other; d = 1: c - a and c + a), in multiples of a power of 2
// so that every coordinate and difference is exact.
void add_tie(Gen& gen, Problem& p, std::size_t i, double scale) {
  const double unit = std::exp2(std::round(std::log2(scale))), a = unit * gen.integer(1, 9);
  const double b = unit * gen.integer(0, 9);
  const std::size_t j0 = static_cast<std::size_t>(gen.integer(0, int(p.m()) - 1)),
                    j1 = (j0 + 1) % p.m();
  for (std::size_t l = 0; l < p.d(); ++l) {
    const double c = unit * gen.integer(-8, 8);
    p.q(i, l) = c;
    p.k(j0, l) = c + (p.d() == 1 ? -a : l == 0 ? a : l == 1 ? b : 0);
    p.k(j1, l) = c + (p.d() == 1 ? a : l == 0 ? b : l == 1 ? a : 0);
  }
}

// A random problem at a random scale. far_exponent: queries reach 10^far_exponent (30 for float32,
// 300 for float64). Everything is rounded to T first, so that both paths see the same inputs.
template <class T>
Problem random_problem(Gen& gen, int far_exponent) {
  Problem p;
  const double scale = std::pow(10.0, gen.integer(-6, 6));
  const std::size_t d = static_cast<std::size_t>(gen.integer(1, 3)), m = gen.integer(2, 40);
  const std::size_t C = gen.coin(0.7) ? 1 : 3;
  p.leave_one_out = gen.coin(0.5);
  const std::size_t n = p.leave_one_out ? m : static_cast<std::size_t>(gen.integer(1, 12));
  p.k = xt::zeros<double>({m, d}), p.v = xt::zeros<double>({m, C}), p.q = xt::zeros<double>({n, d});
  for (std::size_t j = 0; j < m; ++j) {
    const bool duplicate = j > 0 && gen.coin(0.2);
    const std::size_t from = duplicate ? static_cast<std::size_t>(gen.integer(0, int(j) - 1)) : j;
    for (std::size_t l = 0; l < d; ++l)
      p.k(j, l) = duplicate ? p.k(from, l) : scale * gen.uniform(0, 5);
    for (std::size_t c = 0; c < C; ++c)
      p.v(j, c) = gen.normal() * std::pow(10.0, gen.integer(-2, 2));
  }
  p.w = xt::zeros<double>({gen.coin(0.5) ? d : std::size_t(1)});
  const bool relative = gen.coin(0.8);
  for (double& e : p.w)
    e = relative ? std::pow(10.0, gen.uniform(-3, 3)) / scale : std::pow(10.0, gen.uniform(-6, 6));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t l = 0; l < d; ++l) {
      const double far = std::pow(10.0, gen.uniform(0, far_exponent));
      p.q(i, l) = p.leave_one_out ? p.k(i, l)
                  : gen.coin(0.6) ? scale * gen.uniform(-1, 6)
                                  : (gen.coin(0.5) ? 5 * scale + far : -far);
    }
  if (!p.leave_one_out && gen.coin(0.15)) add_tie(gen, p, 0, scale);
  p.u = xt::zeros<double>({n, C});
  for (double& e : p.u) e = gen.uniform(-1, 1);
  for (std::size_t j = 0; j < m; ++j) p.key_labels.push_back(gen.integer(0, 2));
  for (std::size_t i = 0; i < n; ++i) p.query_labels.push_back(p.key_labels[i % m]);
  for (auto* a : {&p.q, &p.k, &p.v, &p.w, &p.u})
    for (double& e : *a) e = static_cast<double>(static_cast<T>(e));
  return p;
}

std::uint64_t seed_from_env() {
  const char* e = std::getenv("TAPEGRAD_ONE_TRUTH_SEED");
  return e ? std::strtoull(e, nullptr, 10) : 20261123u;
}

template <class T>
void property_run(int far_exponent) {
  const std::uint64_t seed = seed_from_env();
  Gen gen(seed);
  int compared = 0;
  for (int c = 0; c < kCases; ++c) {
    const Problem p = random_problem<T>(gen, far_exponent);
    const std::string where =
        "seed " + std::to_string(seed) + " case " + std::to_string(c) + " (" + p.describe() + "): ";
    compared += expect_agrees<T>(p, where);
    if (getenv("DUMP") && ::testing::Test::HasFailure()) {
      std::cout.precision(17);
      std::cout << "q " << p.q << "\nk " << p.k << "\nv " << p.v << "\nw " << p.w << "\n";
      for (auto l : p.key_labels) std::cout << l << ", ";
      std::cout << "\n";
      for (auto l : p.query_labels) std::cout << l << ", ";
      std::cout << "\n" << p.leave_one_out << "\n";
    }
    if (::testing::Test::HasFailure()) return;
  }
  // The gradients were compared in most cases, not only the values.
  EXPECT_GT(compared, kCases * 3 / 4);
  std::cout << "[one truth] seed " << seed << ": " << kCases << " cases agree (gradients in "
            << compared << ")\n";
}

TEST(NwAttentionVsComposed, AtEveryScaleFloat64) {
  property_run<double>(300);
}
TEST(NwAttentionVsComposed, AtEveryScaleFloat32) {
  property_run<float>(30);
}

// Where |d w|^2 does not overflow, the oracle's logits give the weights of the plain
// softmax(-|d w|^2 / 2): the row constant changes nothing.
TEST(NwAttentionVsComposed, TheOracleIsThePlainSoftmax) {
  Gen gen(11);
  for (int c = 0; c < 50; ++c) {
    Problem p = random_problem<double>(gen, 3);
    auto q = tensor<double>(p.q), k = tensor<double>(p.k), w = tensor<double>(p.w);
    const Tensor<double> diff = sub(unsqueeze(q, 1), unsqueeze(k, 0));
    Tensor<double> plain = mul(sum(square(mul(diff, w)), {2}), -0.5);
    const auto ours = softmax(oracle_logits(p, q, k, w), 1).value();
    if (p.leave_one_out) {
      xt::xarray<bool> diagonal = xt::zeros<bool>({p.n(), p.m()});
      for (std::size_t i = 0; i < p.n(); ++i) diagonal(i, i) = true;
      plain = masked_fill(plain, diagonal, -std::numeric_limits<double>::infinity());
    }
    EXPECT_TRUE(all_close(p.describe(), ours, softmax(plain, 1).value(), 1e-9, 1e-12));
  }
}

// Enough rows for the threads' split (n m >= kParallelGrain) and sharp windows: the same numbers.
TEST(NwAttentionVsComposed, ManyRowsAcrossThreadsAndSharpWindows) {
  Gen gen(12);
  for (double sharpness : {1.0, 30.0, 300.0})
    for (std::size_t d : {1u, 2u, 3u}) {
      Problem p;
      const std::size_t n = 300;
      p.leave_one_out = true;
      p.k = xt::zeros<double>({n, d}), p.v = xt::zeros<double>({n, std::size_t(2)});
      for (double& e : p.k) e = gen.uniform(0, 5);
      for (double& e : p.v) e = gen.normal();
      p.q = p.k, p.u = xt::zeros<double>({n, std::size_t(2)});
      for (double& e : p.u) e = gen.uniform(-1, 1);
      p.w = xt::xarray<double>::from_shape({d});
      for (std::size_t l = 0; l < d; ++l) p.w(l) = sharpness * (l == 0 ? 1 : 0.1 * double(l + 1));
      for (std::size_t j = 0; j < n; ++j) p.key_labels.push_back(gen.integer(0, 3));
      p.query_labels = p.key_labels;
      expect_agrees<double>(
          p, "sharpness " + std::to_string(sharpness) + " d " + std::to_string(d) + ": ");
      Problem pf = p;
      for (auto* a : {&pf.q, &pf.k, &pf.v, &pf.w, &pf.u})
        for (double& e : *a) e = static_cast<double>(static_cast<float>(e));
      expect_agrees<float>(pf, "float32 sharpness " + std::to_string(sharpness) + ": ");
    }
}

// --- whole training runs -------------------------------------------------------------------------

// 5 epochs of SGD (lr 0.5) on L = 1/2 sum_i (f_i - y_i)^2 with leave-one-out pooling, fused and
// composed, from the same w_init: the same losses and the same learned w.
template <class T>
void training_agrees(std::size_t d, double scale, double w_init, std::uint64_t seed) {
  Gen gen(seed);
  Problem p;
  p.leave_one_out = true;
  p.k = xt::zeros<double>({std::size_t(50), d}),
  p.v = xt::zeros<double>({std::size_t(50), std::size_t(1)});
  for (double& e : p.k) e = static_cast<double>(static_cast<T>(scale * gen.uniform(0, 5)));
  for (double& e : p.v) e = static_cast<double>(static_cast<T>(gen.normal()));
  p.q = p.k;
  std::vector<double> losses[2], learned[2];
  for (bool fused : {true, false}) {
    auto w = tensor<T>(xt::xarray<double>({w_init}), true);
    for (int epoch = 0; epoch < 5; ++epoch) {
      auto x = tensor<T>(p.k), y = tensor<T>(p.v);
      p.w = xt::cast<double>(w.value());
      const Tensor<T> f = fused ? nw_attention_pool(x, x, y, w, true)
                                : matmul(softmax(oracle_logits(p, x, x, w), 1), y);
      const Tensor<T> loss = mul(sum(square(sub(f, y))), T(0.5));
      backward(loss);
      losses[fused].push_back(static_cast<double>(loss.item()));
      w = Tensor<T>(xt::xarray<T>(w.value() - T(0.5) * w.grad()), true);
    }
    learned[fused].push_back(static_cast<double>(w.value()(0)));
  }
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-9;
  std::ostringstream where;
  where << "d " << d << ", scale " << scale << ", w_init " << w_init << ": ";
  for (int e = 0; e < 5; ++e)
    EXPECT_NEAR(losses[1][e], losses[0][e], tol * losses[0][e]) << where.str() << "epoch " << e;
  EXPECT_NEAR(learned[1][0], learned[0][0], tol * std::abs(learned[0][0])) << where.str();
}

TEST(NwAttentionVsComposed, TrainingAgreesAtEveryScale) {
  for (std::size_t d : {1u, 2u})
    for (double scale : {1e-6, 1e-3, 1.0, 1e3, 5e4, 1e5, 1e6})
      for (double w_init : {0.623833, 0.623833 / scale}) {
        training_agrees<float>(d, scale, w_init, 7);
        training_agrees<double>(d, scale, w_init, 7);
      }
}

}  // namespace
}  // namespace tapegrad::test
