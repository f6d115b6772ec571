// ops/attention_nd.h: the fused d-dimensional attention pooling and NW cross-entropy, checked by
// float64 gradcheck, against the same functions composed from ops (the oracle below), against the
// 1-D fused op at d = 1, far from every key where the oracle overflows, and on bad input.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include <xtensor/xadapt.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>

#include "autograd/gradcheck_gtest.h"
#include "ops/attention.h"
#include "ops/attention_nd.h"
#include "ops/elementwise.h"
#include "ops/indexing.h"
#include "ops/linalg.h"
#include "ops/reduction.h"
#include "ops/shape.h"
#include "ops/softmax.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

using Labels = std::vector<std::int64_t>;

// Small literal tensors: rows of a matrix, or a vector.
template <class T>
Tensor<T> mat(const std::vector<std::vector<double>>& rows, bool requires_grad = false) {
  xt::xarray<T> out = xt::zeros<T>({rows.size(), rows.at(0).size()});
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; j < rows[i].size(); ++j) out(i, j) = static_cast<T>(rows[i][j]);
  return Tensor<T>(std::move(out), requires_grad);
}
template <class T>
Tensor<T> vec(const std::vector<double>& values, bool requires_grad = false) {
  xt::xarray<T> out = xt::zeros<T>({values.size()});
  for (std::size_t i = 0; i < values.size(); ++i) out(i) = static_cast<T>(values[i]);
  return Tensor<T>(std::move(out), requires_grad);
}

// --- the oracle: the same functions composed from ops, (n, m) matrices and all --------------

// -1/2 s_ij, s_ij = sum_l ((q_il - k_jl) w_l)^2, (n, m); -inf at j = i with leave_one_out.
template <class T>
Tensor<T> composed_logits(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& w, bool loo) {
  const Tensor<T> diff = sub(unsqueeze(q, 1), unsqueeze(k, 0));  // (n, m, d)
  const Tensor<T> logits = mul(sum(square(mul(diff, w)), {2}), T(-0.5));
  if (!loo) return logits;
  const std::size_t n = q.shape()[0];
  xt::xarray<bool> diagonal = xt::zeros<bool>({n, n});
  for (std::size_t i = 0; i < n; ++i) diagonal(i, i) = true;
  return masked_fill(logits, diagonal, -std::numeric_limits<T>::infinity());
}

template <class T>
Tensor<T> composed_pool(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                        const Tensor<T>& w, bool loo) {
  return matmul(softmax(composed_logits(q, k, w, loo), 1), v);
}

// (count, classes) one-hot rows of labels, a constant.
template <class T>
Tensor<T> one_hot_rows(const Labels& labels, std::size_t classes) {
  xt::xarray<T> out = xt::zeros<T>({labels.size(), classes});
  for (std::size_t i = 0; i < labels.size(); ++i) out(i, static_cast<std::size_t>(labels[i])) = 1;
  return Tensor<T>(std::move(out));
}

// L = -sum_i log p_i[y_i], p = softmax(logits) matmul one_hot(key_labels): the readable, unstable
// way (log of a sum of weights that may underflow).
template <class T>
Tensor<T> composed_cross_entropy(const Tensor<T>& q, const Tensor<T>& k, const Labels& key_labels,
                                 const Labels& query_labels, const Tensor<T>& w, bool loo) {
  const std::size_t classes =
      1 + static_cast<std::size_t>(*std::max_element(key_labels.begin(), key_labels.end()));
  const Tensor<T> class_p = matmul(softmax(composed_logits(q, k, w, loo), 1),
                                   one_hot_rows<T>(key_labels, classes));  // (n, C)
  const Tensor<T> own = sum(mul(class_p, one_hot_rows<T>(query_labels, classes)), {1});
  return neg(sum(log(own)));
}

Tensor<float> to_float(const Tensor<double>& t, bool requires_grad) {
  return Tensor<float>(xt::xarray<float>(xt::cast<float>(t.value())), requires_grad);
}

Tensor<double> fresh(const Tensor<double>& t, bool requires_grad = true) {
  return Tensor<double>(t.value(), requires_grad);
}

Labels random_labels(std::mt19937& rng, std::size_t count, std::int64_t classes) {
  // every class at least twice, so that each row has another key of its class
  Labels labels(count);
  for (std::size_t i = 0; i < count; ++i) labels[i] = static_cast<std::int64_t>(i / 2) % classes;
  std::shuffle(labels.begin(), labels.end(), rng);
  return labels;
}

// --- gradcheck ------------------------------------------------------------------------------

struct Case {
  std::size_t d, C;
  bool per_coordinate, loo;
  std::string name() const {
    return "d=" + std::to_string(d) + " C=" + std::to_string(C) +
           (per_coordinate ? " per-coordinate" : " shared") + (loo ? " loo" : " all pairs");
  }
};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (std::size_t d : {1u, 2u, 3u})
    for (std::size_t C : {1u, 3u})
      for (bool per_coordinate : {false, true})
        for (bool loo : {false, true}) cases.push_back({d, C, per_coordinate, loo});
  return cases;
}

TEST(NwAttentionPoolNdGradcheck, EveryShapeWidthAndMode) {
  std::mt19937 rng(1101);
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.name());
    const std::size_t n = 5, m = c.loo ? 5 : 6;
    auto q = uniform(rng, {n, c.d}, -1.0, 1.0);
    auto k = uniform(rng, {m, c.d}, -1.0, 1.0);
    auto v = uniform(rng, {m, c.C}, -2.0, 2.0);
    auto w = uniform(rng, {c.per_coordinate ? c.d : 1}, 0.8, 2.0);
    if (c.loo)  // the training set-up: the queries are the keys
      EXPECT_TRUE(gradcheck_passes(
          [](const auto& in) { return nw_attention_pool_nd(in[0], in[0], in[1], in[2], true); },
          {k, v, w}));
    else
      EXPECT_TRUE(gradcheck_passes(
          [](const auto& in) { return nw_attention_pool_nd(in[0], in[1], in[2], in[3], false); },
          {q, k, v, w}));
  }
}

TEST(NwAttentionPoolNdGradcheck, LeaveOneOutWithSeparateQueriesAndKeys) {
  std::mt19937 rng(1102);
  auto q = uniform(rng, {4, 2}, -1.0, 1.0);
  auto k = uniform(rng, {4, 2}, -1.0, 1.0);
  auto v = uniform(rng, {4, 3}, -2.0, 2.0);
  auto w = uniform(rng, {2}, 0.8, 2.0);
  EXPECT_TRUE(gradcheck_passes(
      [](const auto& in) { return nw_attention_pool_nd(in[0], in[1], in[2], in[3], true); },
      {q, k, v, w}));
}

TEST(NwCrossEntropyNdGradcheck, EveryShapeWidthAndMode) {
  std::mt19937 rng(1103);
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.name());
    const std::size_t n = 6, m = c.loo ? 6 : 8;
    const auto classes = static_cast<std::int64_t>(c.C == 1 ? 2 : c.C);
    const Labels key_labels = random_labels(rng, m, classes);
    Labels query_labels = c.loo ? key_labels : random_labels(rng, m, classes);
    query_labels.resize(n);
    auto q = uniform(rng, {n, c.d}, -1.0, 1.0);
    auto k = uniform(rng, {m, c.d}, -1.0, 1.0);
    auto w = uniform(rng, {c.per_coordinate ? c.d : 1}, 0.8, 2.0);
    if (c.loo)
      EXPECT_TRUE(gradcheck_passes(
          [=](const auto& in) {
            return nw_cross_entropy_nd(in[0], in[0], key_labels, query_labels, in[1], true);
          },
          {k, w}));
    else
      EXPECT_TRUE(gradcheck_passes(
          [=](const auto& in) {
            return nw_cross_entropy_nd(in[0], in[1], key_labels, query_labels, in[2], false);
          },
          {q, k, w}));
  }
}

// --- against the composed oracle ------------------------------------------------------------

// The fused op in T and the oracle in float64 on the same inputs (rounded to T), forward and the
// gradients of sum(f * u) for a non-uniform u.
template <class T>
void expect_pool_matches_oracle(const Tensor<double>& q0, const Tensor<double>& k0,
                                const Tensor<double>& v0, const Tensor<double>& w0, bool loo,
                                double rtol, double atol) {
  auto cast = [](const Tensor<double>& t) {
    if constexpr (std::is_same_v<T, float>)
      return to_float(t, true);
    else
      return fresh(t);
  };
  auto back = [](const Tensor<T>& t) {  // the rounded inputs, in float64, for the oracle
    return Tensor<double>(xt::xarray<double>(xt::cast<double>(t.value())), true);
  };
  Tensor<T> q = cast(q0), k = cast(k0), v = cast(v0), w = cast(w0);
  Tensor<double> qd = back(q), kd = back(k), vd = back(v), wd = back(w);
  std::mt19937 rng(7);
  const Tensor<double> u = uniform(rng, {q0.shape()[0], v0.shape()[1]}, -1.0, 1.0, false);

  const Tensor<T> f = nw_attention_pool_nd(q, k, v, w, loo);
  const Tensor<double> expected = composed_pool(qd, kd, vd, wd, loo);
  EXPECT_TRUE(all_close("f", f.value(), expected.value(), rtol, atol));
  backward(sum(mul(f, Tensor<T>(xt::xarray<T>(xt::cast<T>(u.value()))))));
  backward(sum(mul(expected, u)));
  // Gradients: the absolute tolerance is relative to each gradient's natural size (its bound for
  // |u| <= 1: n rows, weights summing to 1), not to its largest element: in one-hot rows every
  // slope is a rounding error of the natural size (the oracle's 1e-52 against the fused 0).
  const double n = static_cast<double>(q0.shape()[0]), d = static_cast<double>(q0.shape()[1]);
  const double x = std::max(xt::amax(xt::abs(qd.value()))(), xt::amax(xt::abs(kd.value()))());
  const double big_w = xt::amax(xt::abs(wd.value()))(), big_v = xt::amax(xt::abs(vd.value()))();
  const double slope = n * big_v * big_w * big_w * 2 * x;
  const std::vector<std::tuple<const char*, Tensor<T>, Tensor<double>, double>> grads = {
      {"queries", q, qd, slope},
      {"keys", k, kd, slope},
      {"values", v, vd, n},
      {"w", w, wd, n * d * big_v * big_w * 4 * x * x}};
  for (const auto& [what, fused, oracle, natural] : grads)
    EXPECT_TRUE(all_close(what, fused.grad(), oracle.grad(), rtol, atol * natural));
}

TEST(NwAttentionPoolNdOracle, Float64AndFloat32OverScales) {
  std::mt19937 rng(1104);
  for (double x_scale : {1e-3, 1.0, 1e3})
    for (double w_scale : {1e-2, 1.0, 1e2})
      for (bool loo : {false, true})
        for (std::size_t d : {2u, 3u}) {
          // w scaled against x so that x w spans flat (1e-5) to one-hot (1e5) attention
          SCOPED_TRACE("x " + std::to_string(x_scale) + " w " + std::to_string(w_scale) +
                       (loo ? " loo" : "") + " d " + std::to_string(d));
          const std::size_t n = 7, m = loo ? 7 : 9;
          auto k = uniform(rng, {m, d}, -x_scale, x_scale);
          auto q = loo ? k : uniform(rng, {n, d}, -x_scale, x_scale);
          auto v = uniform(rng, {m, 2}, -1.0, 1.0);
          auto w = uniform(rng, {d}, 0.5 * w_scale, 2.0 * w_scale);
          expect_pool_matches_oracle<double>(q, k, v, w, loo, 1e-9, 1e-9);
          expect_pool_matches_oracle<float>(q, k, v, w, loo, 1e-4, 1e-4);
        }
}

TEST(NwCrossEntropyNdOracle, ValuesAndGradientsFloat64) {
  std::mt19937 rng(1105);
  for (bool loo : {false, true})
    for (std::size_t d : {1u, 2u, 3u}) {
      SCOPED_TRACE(std::to_string(d) + (loo ? " loo" : ""));
      const std::size_t n = 8, m = loo ? 8 : 10;
      const Labels key_labels = random_labels(rng, m, 3);
      Labels query_labels = loo ? key_labels : random_labels(rng, m, 3);
      query_labels.resize(n);
      auto k = uniform(rng, {m, d}, -1.0, 1.0);
      auto q = loo ? k : uniform(rng, {n, d}, -1.0, 1.0);
      auto w = uniform(rng, {d}, 0.5, 3.0);
      auto qf = fresh(q), kf = fresh(k), wf = fresh(w), qc = fresh(q), kc = fresh(k), wc = fresh(w);
      const auto fused = nw_cross_entropy_nd(qf, kf, key_labels, query_labels, wf, loo);
      const auto oracle = composed_cross_entropy(qc, kc, key_labels, query_labels, wc, loo);
      EXPECT_NEAR(fused.item(), oracle.item(), 1e-10 * std::abs(oracle.item()));
      backward(fused);
      backward(oracle);
      EXPECT_TRUE(all_close("queries", qf.grad(), qc.grad(), 1e-8, 1e-10));
      EXPECT_TRUE(all_close("keys", kf.grad(), kc.grad(), 1e-8, 1e-10));
      EXPECT_TRUE(all_close("w", wf.grad(), wc.grad(), 1e-8, 1e-10));
      // float32 against the float64 oracle
      const auto f32 = nw_cross_entropy_nd(to_float(q, false), to_float(k, false), key_labels,
                                           query_labels, to_float(w, false), loo);
      EXPECT_NEAR(f32.item(), oracle.item(), 1e-5 * std::abs(oracle.item()));
    }
}

// Enough rows (n m >= kParallelGrain) for the threads' split and their per-thread key partials,
// and class-grouped keys in random label order: the same numbers as the oracle.
TEST(NwAttentionNdOracle, ManyRowsAcrossThreads) {
  std::mt19937 rng(1107);
  const std::size_t n = 300, d = 2;
  auto x = uniform(rng, {n, d}, 0.0, 5.0);
  auto v = uniform(rng, {n, 3}, -1.0, 1.0);
  auto w = uniform(rng, {d}, 1.0, 3.0);
  {
    SCOPED_TRACE("pool");
    expect_pool_matches_oracle<double>(x, x, v, w, true, 1e-9, 1e-9);
    expect_pool_matches_oracle<float>(x, x, v, w, true, 1e-4, 1e-4);
  }
  SCOPED_TRACE("cross-entropy");
  const Labels labels = random_labels(rng, n, 4);
  auto xf = fresh(x), wf = fresh(w), xc = fresh(x), wc = fresh(w);
  const auto fused = nw_cross_entropy_nd(xf, xf, labels, labels, wf, true);
  const auto oracle = composed_cross_entropy(xc, xc, labels, labels, wc, true);
  EXPECT_NEAR(fused.item(), oracle.item(), 1e-10 * std::abs(oracle.item()));
  backward(fused);
  backward(oracle);
  EXPECT_TRUE(all_close("queries = keys", xf.grad(), xc.grad(), 1e-8, 1e-9));
  EXPECT_TRUE(all_close("w", wf.grad(), wc.grad(), 1e-8, 1e-9));
}

// Sharp attention: each row visits only its window (keys whose weight can be non-zero), found
// from the coordinate with the largest width times spread; per class for the cross-entropy, whose
// own class may sit outside the overall window. Same numbers as the all-pairs oracle.
TEST(NwAttentionNdOracle, SharpAttentionWindows) {
  std::mt19937 rng(1108);
  const std::size_t n = 200, d = 3;
  auto x = uniform(rng, {n, d}, 0.0, 5.0);
  auto v = uniform(rng, {n, 2}, -1.0, 1.0);
  const Labels labels = random_labels(rng, n, 3);
  for (double sharpness : {3.0, 30.0, 300.0}) {
    SCOPED_TRACE("w ~ " + std::to_string(sharpness));
    // one coordinate nearly ignored, one dominant: the window axis is the dominant one
    auto w = vec<double>({0.01 * sharpness, sharpness, 0.5 * sharpness}, true);
    expect_pool_matches_oracle<double>(x, x, v, w, true, 1e-9, 1e-9);
    expect_pool_matches_oracle<float>(x, x, v, w, true, 1e-4, 1e-4);
    expect_pool_matches_oracle<double>(x, uniform(rng, {50, d}, 0.0, 5.0),
                                       uniform(rng, {50, 2}, -1.0, 1.0), w, false, 1e-9, 1e-9);
    auto xf = fresh(x), wf = fresh(w), xc = fresh(x), wc = fresh(w);
    const auto fused = nw_cross_entropy_nd(xf, xf, labels, labels, wf, true);
    const auto oracle = composed_cross_entropy(xc, xc, labels, labels, wc, true);
    if (std::isfinite(oracle.item())) {
      EXPECT_NEAR(fused.item(), oracle.item(), 1e-9 * std::abs(oracle.item()));
      backward(fused);
      backward(oracle);
      EXPECT_TRUE(all_close("x", xf.grad(), xc.grad(), 1e-7, 1e-9 * sharpness * sharpness));
      EXPECT_TRUE(all_close("w", wf.grad(), wc.grad(), 1e-7, 1e-9 * sharpness));
    } else {  // the oracle's class sums underflowed; the fused loss is finite and larger
      EXPECT_TRUE(std::isfinite(fused.item()));
    }
  }
}

// Every key at the same window coordinate (the search visits them all) and duplicate keys.
TEST(NwAttentionNdOracle, DegenerateKeys) {
  std::mt19937 rng(1109);
  auto k = uniform(rng, {40, 2}, -1.0, 1.0, false);
  for (std::size_t j = 0; j < 40; ++j) k.mutable_value()(j, 0) = 0.5;  // one coordinate for all
  for (std::size_t j = 20; j < 40; ++j) k.mutable_value()(j, 1) = k.value()(j - 20, 1);
  auto q = uniform(rng, {30, 2}, -1.0, 1.0);
  auto v = uniform(rng, {40, 1}, -1.0, 1.0);
  expect_pool_matches_oracle<double>(q, fresh(k), v, vec<double>({50.0, 20.0}, true), false, 1e-9,
                                     1e-9);
  expect_pool_matches_oracle<double>(fresh(k), fresh(k), v, vec<double>({5.0, 2.0}, true), true,
                                     1e-9, 1e-9);
  // a negative width and a zero one (that coordinate ignored; every key in its "window")
  expect_pool_matches_oracle<double>(q, fresh(k), v, vec<double>({-3.0, 0.0}, true), false, 1e-9,
                                     1e-9);
  expect_pool_matches_oracle<double>(q, fresh(k), v, vec<double>({0.0}, true), false, 1e-9, 1e-9);
}

// --- far from every key: the oracle's squares overflow, the fused op stays exact ------------

TEST(NwAttentionPoolNdFar, Float32QueryPastTheSquaresOverflow) {
  // keys (0, 0), (5, 0), (0, 5); the query (1e20, 1e19) is nearest to (5, 0) (its squared distance
  // is 1e21 below (0, 0)'s, 1e20 - 5 above (0, 5)'s by 1e21 - 1e20): one-hot attention on value 2.
  const auto k = mat<float>({{0.0, 0.0}, {5.0, 0.0}, {0.0, 5.0}}, true);
  const auto v = mat<float>({{1.0}, {2.0}, {3.0}}, true);
  const auto w = vec<float>({1.0}, true);
  const auto q = mat<float>({{1e20, 1e19}}, true);
  const auto oracle = composed_pool(q, k, v, w, false);
  EXPECT_FALSE(std::isfinite(oracle.value()(0, 0)));  // (1e20)^2 overflows float32
  const auto f = nw_attention_pool_nd(q, k, v, w, false);
  EXPECT_EQ(f.value()(0, 0), 2.f);
  backward(sum(f));
  for (const Tensor<float>* t : {&q, &k, &v, &w}) EXPECT_TRUE(xt::all(xt::isfinite(t->grad())));
  EXPECT_EQ(v.grad()(1, 0), 1.f);
}

TEST(NwAttentionPoolNdFar, Float64QueryPastTheSquaresOverflow) {
  const auto k = mat<double>({{0.0, 0.0}, {5.0, 0.0}, {0.0, 5.0}}, true);
  const auto v = mat<double>({{1.0}, {2.0}, {3.0}}, true);
  const auto w = vec<double>({1.0, 2.0}, true);
  const auto q = mat<double>({{1e200, 1e199}}, true);
  EXPECT_FALSE(std::isfinite(composed_pool(q, k, v, w, false).value()(0, 0)));
  const auto f = nw_attention_pool_nd(q, k, v, w, false);
  EXPECT_EQ(f.value()(0, 0), 2.0);
}

TEST(NwCrossEntropyNdFar, FiniteWhenTheClassIsFarAwayFromTheNearestKeys) {
  // The row's class keys sit 100 away; its p_i[y_i] = exp(-5000)-ish underflows in the oracle, not
  // in the fused op: L_i = logsumexp_all - logsumexp_class, worked out here by hand.
  const auto k = mat<double>({{0.0}, {0.1}, {100.0}, {100.1}});
  const auto q = mat<double>({{0.05}});
  const auto w = vec<double>({1.0}, true);
  const Labels key_labels = {0, 0, 1, 1}, query_labels = {1};
  EXPECT_FALSE(
      std::isfinite(composed_cross_entropy(q, k, key_labels, query_labels, w, false).item()));
  const auto fused = nw_cross_entropy_nd(q, k, key_labels, query_labels, w, false);
  auto logsumexp = [](double a, double b) {
    const double top = std::max(a, b);
    return top + std::log(std::exp(a - top) + std::exp(b - top));
  };
  const double a0 = -0.5 * 0.05 * 0.05, a2 = -0.5 * 99.95 * 99.95, a3 = -0.5 * 100.05 * 100.05;
  const double expected = logsumexp(a0, a0) - logsumexp(a2, a3);  // logsumexp over all ~ a0
  EXPECT_NEAR(fused.item(), expected, 1e-9 * expected);
  backward(fused);
  EXPECT_TRUE(std::isfinite(w.grad()(0)));
}

TEST(NwCrossEntropyNd, InfiniteWhenTheRowHasNoOtherKeyOfItsClass) {
  const auto k = mat<double>({{0.0}, {1.0}, {2.0}});
  const auto w = vec<double>({1.0});
  const Labels labels = {0, 0, 1};
  EXPECT_EQ(nw_cross_entropy_nd(k, k, labels, labels, w, true).item(),
            std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isfinite(nw_cross_entropy_nd(k, k, labels, labels, w, false).item()));
}

// --- d = 1 is the 1-D fused op --------------------------------------------------------------

TEST(NwAttentionPoolNd, DimensionOneIsTheOneDimensionalOp) {
  std::mt19937 rng(1106);
  for (bool loo : {false, true}) {
    SCOPED_TRACE(loo ? "loo" : "all pairs");
    const std::size_t n = 9, m = 9;
    auto q1 = uniform(rng, {n}, -3.0, 3.0), k1 = uniform(rng, {m}, -3.0, 3.0);
    auto v1 = uniform(rng, {m}, -1.0, 1.0), w1 = uniform(rng, {1}, 0.5, 2.0);
    auto q =
        Tensor<double>(xt::xarray<double>(xt::reshape_view(q1.value(), {n, std::size_t(1)})), true);
    auto k =
        Tensor<double>(xt::xarray<double>(xt::reshape_view(k1.value(), {m, std::size_t(1)})), true);
    auto v =
        Tensor<double>(xt::xarray<double>(xt::reshape_view(v1.value(), {m, std::size_t(1)})), true);
    auto w = fresh(w1);
    const auto f1 = nw_attention_pool(q1, k1, v1, w1, loo);
    const auto f = nw_attention_pool_nd(q, k, v, w, loo);
    EXPECT_TRUE(
        all_close("f", xt::xarray<double>(xt::flatten(f.value())), f1.value(), 1e-12, 1e-12));
    backward(sum(f1));
    backward(sum(f));
    EXPECT_TRUE(
        all_close("queries", xt::xarray<double>(xt::flatten(q.grad())), q1.grad(), 1e-10, 1e-12));
    EXPECT_TRUE(
        all_close("keys", xt::xarray<double>(xt::flatten(k.grad())), k1.grad(), 1e-10, 1e-12));
    EXPECT_TRUE(
        all_close("values", xt::xarray<double>(xt::flatten(v.grad())), v1.grad(), 1e-10, 1e-12));
    EXPECT_TRUE(all_close("w", w.grad(), w1.grad(), 1e-10, 1e-12));
  }
}

// --- bad input ------------------------------------------------------------------------------

template <class F>
void expect_invalid(F call, const std::vector<std::string>& fragments) {
  try {
    call();
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    for (const auto& fragment : fragments)
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
          << "'" << e.what() << "' lacks '" << fragment << "'";
  }
}

TEST(NwAttentionPoolNd, WrongShapesNameTheOpAndTheTensors) {
  auto named = [](Tensor<double> t, const char* name) {
    t.set_name(name);
    return t;
  };
  const auto q = named(mat<double>({{0.0, 1.0}, {1.0, 0.0}}), "queries");
  const auto k = named(mat<double>({{0.0, 1.0}, {1.0, 2.0}, {3.0, 1.0}}), "keys");
  const auto v = named(mat<double>({{1.0}, {2.0}, {3.0}}), "values");
  const auto w = named(vec<double>({1.0}), "w");
  const std::string op = "nw_attention_pool_nd";
  expect_invalid(
      [&] {
        nw_attention_pool_nd(named(vec<double>({0.0, 1.0}), "queries"), k, v, w);
      },
      {op, "queries (2,)"});
  expect_invalid(
      [&] {
        nw_attention_pool_nd(q, named(mat<double>({{0.0}, {1.0}, {2.0}}), "keys"), v, w);
      },
      {op, "queries (2, 2)", "keys (3, 1)"});
  expect_invalid(
      [&] {
        nw_attention_pool_nd(q, k, named(mat<double>({{1.0}, {2.0}}), "values"), w);
      },
      {op, "keys (3, 2)", "values (2, 1)"});
  expect_invalid(
      [&] {
        nw_attention_pool_nd(q, k, v, named(vec<double>({1.0, 2.0, 3.0}), "w"));
      },
      {op, "w (3,)"});
  expect_invalid([&] { nw_attention_pool_nd(q, k, v, w, true); },
                 {op, "leave_one_out", "queries (2, 2)", "keys (3, 2)"});
}

TEST(NwCrossEntropyNd, BadLabelsAndShapes) {
  const auto k = mat<double>({{0.0, 1.0}, {1.0, 2.0}, {3.0, 1.0}});
  const auto w = vec<double>({1.0});
  const std::string op = "nw_cross_entropy_nd";
  expect_invalid(
      [&] {
        nw_cross_entropy_nd(k, k, {0, 1}, {0, 1, 1}, w);
      },
      {op, "key_labels", "2 labels for 3 keys"});
  expect_invalid(
      [&] {
        nw_cross_entropy_nd(k, k, {0, 1, 1}, {0, 1}, w);
      },
      {op, "query_labels", "2 labels for 3 queries"});
  expect_invalid(
      [&] {
        nw_cross_entropy_nd(k, k, {0, -1, 1}, {0, 1, 1}, w);
      },
      {op, "key_labels[1] = -1"});
  expect_invalid(
      [&] {
        nw_cross_entropy_nd(k, k, {0, 1, 1}, {0, 2, 1}, w);
      },
      {op, "query_labels[1] = 2"});
  expect_invalid(
      [&] {
        nw_cross_entropy_nd(k, k, {0, 1, 1}, {0, 1, 1}, vec<double>({1.0, 2.0, 3.0}));
      },
      {op, "(3,)"});
}

}  // namespace
}  // namespace tapegrad::test
