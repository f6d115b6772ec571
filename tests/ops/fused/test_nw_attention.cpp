// ops/fused/nw_attention.h: the fused Nadaraya-Watson pooling and cross-entropy checked by float64
// gradcheck (the whole Jacobian, so every upstream gradient) for d = 1, 2, 3, at the ends of the
// float range against answers worked out by hand, and on bad input. Their agreement with the same
// functions composed from generic ops, at every scale: test_nw_attention_vs_composed.cpp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xmanipulation.hpp>

#include "../reference.h"
#include "autograd/gradcheck_gtest.h"
#include "ops/elementwise.h"
#include "ops/fused/nw_attention.h"
#include "ops/reduction.h"

namespace tapegrad::test {
namespace {

using Labels = std::vector<std::int64_t>;

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

Labels random_labels(std::mt19937& rng, std::size_t count, std::int64_t classes) {
  // every class at least twice, so that each row has another key of its class
  Labels labels(count);
  for (std::size_t i = 0; i < count; ++i) labels[i] = static_cast<std::int64_t>(i / 2) % classes;
  std::shuffle(labels.begin(), labels.end(), rng);
  return labels;
}

// --- gradcheck ----------------------------------------------------------------------------------

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

TEST(NwAttentionPoolGradcheck, EveryShapeWidthAndMode) {
  std::mt19937 rng(1101);
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.name());
    const std::size_t n = 5, m = c.loo ? 5 : 6;
    auto q = uniform(rng, {n, c.d}, -1.0, 1.0), k = uniform(rng, {m, c.d}, -1.0, 1.0);
    auto v = uniform(rng, {m, c.C}, -2.0, 2.0);
    auto w = uniform(rng, {c.per_coordinate ? c.d : 1}, 0.8, 2.0);
    if (c.loo)  // the training set-up: the queries are the keys
      EXPECT_TRUE(gradcheck_passes(
          [](const auto& in) { return nw_attention_pool(in[0], in[0], in[1], in[2], true); },
          {k, v, w}));
    else
      EXPECT_TRUE(gradcheck_passes(
          [](const auto& in) { return nw_attention_pool(in[0], in[1], in[2], in[3], false); },
          {q, k, v, w}));
  }
}

// The chapter's vectors: queries (n,), keys (m,), values (m,) -> (n,), with a narrow window
// (w = 20 on keys over [0, 10] leaves most keys out of each row) and a duplicated key.
TEST(NwAttentionPoolGradcheck, VectorsAndNarrowWindows) {
  std::mt19937 rng(1102);
  auto k = uniform(rng, {24}, 0.0, 10.0), v = uniform(rng, {24}, -1.0, 1.0);
  k.mutable_value()(5) = k.value()(4);
  auto q = uniform(rng, {7}, -1.0, 11.0);
  auto w = vec<double>({20.0}, true);
  EXPECT_TRUE(gradcheck_passes(
      [](const auto& in) { return nw_attention_pool(in[0], in[1], in[2], in[3], false); },
      {q, k, v, w}));
  EXPECT_TRUE(gradcheck_passes(
      [](const auto& in) { return nw_attention_pool(in[0], in[0], in[1], in[2], true); },
      {k, v, w}));
  // leave-one-out with queries that are not the keys (row i skips key i all the same)
  auto q4 = uniform(rng, {24}, 0.0, 10.0);
  EXPECT_TRUE(gradcheck_passes(
      [](const auto& in) { return nw_attention_pool(in[0], in[1], in[2], in[3], true); },
      {q4, k, v, w}));
}

TEST(NwAttentionCrossEntropyGradcheck, EveryShapeWidthAndMode) {
  std::mt19937 rng(1103);
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.name());
    const std::size_t n = 6, m = c.loo ? 6 : 8;
    const auto classes = static_cast<std::int64_t>(c.C == 1 ? 2 : c.C);
    const Labels key_labels = random_labels(rng, m, classes);
    Labels query_labels = c.loo ? key_labels : random_labels(rng, m, classes);
    query_labels.resize(n);
    auto q = uniform(rng, {n, c.d}, -1.0, 1.0), k = uniform(rng, {m, c.d}, -1.0, 1.0);
    auto w = uniform(rng, {c.per_coordinate ? c.d : 1}, 0.8, 2.0);
    auto ce = [=](const Tensor<double>& qs, const Tensor<double>& ks, const Tensor<double>& ws) {
      return nw_attention_cross_entropy(qs, ks, key_labels, query_labels, ws, c.loo);
    };
    if (c.loo)
      EXPECT_TRUE(
          gradcheck_passes([=](const auto& in) { return ce(in[0], in[0], in[1]); }, {k, w}));
    else
      EXPECT_TRUE(
          gradcheck_passes([=](const auto& in) { return ce(in[0], in[1], in[2]); }, {q, k, w}));
  }
}

// The negative control: an input whose forward is w (1 + 1e-2) but whose backward claims dw'/dw =
// 1 makes every gradient to w wrong by 1%; gradcheck, as these tests call it, must see it.
TEST(NwAttentionPoolGradcheck, RejectsAGradientWrongByOnePercent) {
  std::mt19937 rng(1104);
  auto q = uniform(rng, {5, 2}, -1.0, 1.0), k = uniform(rng, {6, 2}, -1.0, 1.0);
  auto v = uniform(rng, {6, 1}, -2.0, 2.0), w = vec<double>({1.3, 0.9}, true);
  auto off = [](const Tensor<double>& x) {
    return record<double>("off_by_one_percent", x.value() * 1.01, {x},
                          [x](const xt::xarray<double>& grad, const Node<double>&) {
                            accumulate_grad(x, xt::xarray<double>(grad), "off");
                          });
  };
  auto pool = [&](const auto& in) { return nw_attention_pool(in[0], in[1], in[2], off(in[3])); };
  EXPECT_FALSE(gradcheck(pool, {q, k, v, w}).ok);
  auto honest = [](const auto& in) { return nw_attention_pool(in[0], in[1], in[2], in[3] * 1.01); };
  EXPECT_TRUE(gradcheck_passes(honest, {q, k, v, w}));
}

// --- the same op in every form -----------------------------------------------------------------

// Vectors are d = 1 and C = 1: the (n,) form equals the (n, 1) form, values and gradients.
TEST(NwAttentionPool, VectorsAreTheOneColumnCase) {
  std::mt19937 rng(1105);
  for (bool loo : {false, true}) {
    SCOPED_TRACE(loo ? "loo" : "all pairs");
    auto q1 = uniform(rng, {9}, -3.0, 3.0), k1 = uniform(rng, {9}, -3.0, 3.0);
    auto v1 = uniform(rng, {9}, -1.0, 1.0), w1 = uniform(rng, {1}, 0.5, 2.0);
    auto column = [](const Tensor<double>& t) {
      return Tensor<double>(xt::xarray<double>(xt::reshape_view(t.value(), {t.size(), 1ul})), true);
    };
    auto q = column(q1), k = column(k1), v = column(v1);
    auto w = Tensor<double>(w1.value(), true);
    const auto f1 = nw_attention_pool(q1, k1, v1, w1, loo);
    const auto f = nw_attention_pool(q, k, v, w, loo);
    EXPECT_EQ(f1.shape(), (Shape{9}));
    EXPECT_EQ(f.shape(), (Shape{9, 1}));
    EXPECT_TRUE(all_close("f", xt::xarray<double>(xt::flatten(f.value())), f1.value(), 0, 0));
    backward(sum(mul(f1, vec<double>({1, -2, 3, 0.5, 1, 1, -1, 2, 0.25}))));
    backward(sum(mul(f, mat<double>({{1}, {-2}, {3}, {0.5}, {1}, {1}, {-1}, {2}, {0.25}}))));
    for (auto [one, two, what] :
         {std::tuple{q1, q, "queries"}, std::tuple{k1, k, "keys"}, std::tuple{v1, v, "values"}})
      EXPECT_TRUE(all_close(what, xt::xarray<double>(xt::flatten(two.grad())), one.grad(), 0, 0));
    EXPECT_TRUE(all_close("w", w.grad(), w1.grad(), 0, 0));
  }
}

// nw_attention_weights is the pooling's matrix: p v equals the pooled f, rows sum to 1, p_ii = 0
// under leave-one-out; the scalar-width form is the (1,) form.
TEST(NwAttentionWeights, IsThePoolingsMatrix) {
  std::mt19937 rng(1106);
  for (bool loo : {false, true}) {
    auto x = uniform(rng, {30, 2}, 0.0, 3.0, false), v = uniform(rng, {30, 1}, -1.0, 1.0, false);
    const xt::xarray<double> w = {2.0, 5.0};
    const xt::xarray<double> p = nw_attention_weights(x.value(), x.value(), w, loo);
    const auto f = nw_attention_pool(x, x, v, Tensor<double>(w), loo);
    EXPECT_TRUE(all_close("p v", xt::xarray<double>(xt::linalg::dot(p, v.value())), f.value(),
                          1e-13, 1e-15));
    EXPECT_TRUE(all_close("rows", xt::xarray<double>(xt::sum(p, {1})),
                          xt::xarray<double>(xt::ones<double>({30})), 1e-13, 0));
    for (std::size_t i = 0; loo && i < 30; ++i) EXPECT_EQ(p(i, i), 0.0);
  }
  const xt::xarray<double> q = {0.1, 1.4, 2.0}, k = {0.0, 1.0, 2.0, 3.0};
  EXPECT_EQ(nw_attention_weights(q, k, 1.7), nw_attention_weights(q, k, xt::xarray<double>{1.7}));
}

// One-hot values of many classes (class probabilities) are pooled into class bins, O(window + C) a
// row: the same numbers as the dense pooling (which runs when the values and w need their
// gradients), values and the keys' gradient, for d = 1 and 2.
TEST(NwAttentionPool, OneHotValuesPoolIntoClassBins) {
  std::mt19937 rng(1107);
  for (std::size_t d : {1u, 2u}) {
    auto q = uniform(rng, {40, d}, 0.0, 3.0, false), k = uniform(rng, {60, d}, 0.0, 3.0, false);
    xt::xarray<double> onehot = xt::zeros<double>({60, 20});
    for (std::size_t j = 0; j < 60; ++j) onehot(j, (j * 7) % 20) = 1;

    const xt::xarray<double> u = uniform(rng, {40, 20}, -1.0, 1.0, false).value();
    std::vector<xt::xarray<double>> f, gk;
    for (bool dense : {false, true}) {
      Tensor<double> keys(k.value(), true), values(onehot, dense),
          w(xt::xarray<double>{4.0}, dense);
      const auto out = nw_attention_pool(q, keys, values, w);
      backward(sum(mul(out, Tensor<double>(u))));
      f.push_back(out.value()), gk.push_back(keys.grad());
    }
    EXPECT_TRUE(all_close("f", f[0], f[1], 1e-13, 1e-15));
    EXPECT_TRUE(all_close("keys", gk[0], gk[1], 1e-11, 1e-13));
  }
}

// --- the ends of the float range ---------------------------------------------------------------

// A query far beyond keys 0, 1, 2 (1.75e38 in float32, 9e307 in float64, where |q - k| rounds
// to the same number for every key and |d| + nearest overflows) gets the nearest key's value,
// with finite gradients.
template <class T>
void far_query_gets_the_nearest_value(double far) {
  SCOPED_TRACE(far);
  auto k = vec<T>({0, 1, 2}, true), v = vec<T>({1, 2, 3}, true), q = vec<T>({far}, true);
  for (double width : {1.0, 0.623833, 20.0}) {
    auto w = vec<T>({width}, true);
    const auto f = nw_attention_pool(q, k, v, w);
    EXPECT_EQ(f.value()(0), T(3)) << "w " << width;
    backward(sum(f));
    for (const Tensor<T>* t : {&q, &k, &v, &w}) EXPECT_TRUE(xt::all(xt::isfinite(t->grad())));
    EXPECT_EQ(v.grad()(2), T(1));
    for (Tensor<T>* t : {&q, &k, &v}) t->zero_grad();
  }
}
TEST(NwAttentionEnds, FarQueryGetsTheNearestKeysValue) {
  far_query_gets_the_nearest_value<float>(1.75e38);
  far_query_gets_the_nearest_value<double>(9e307);
}

// Inputs spanning more than sqrt(max): x = 0, 1, 2, 1e20 in float32, leave-one-out. The far
// key's weight is 0 in every other row (its excess overflows), and dL/dw is finite: row 3 is
// one-hot on key 2 and adds 0, rows 0-2 are the three-key problem worked out here.
TEST(NwAttentionEnds, InputsSpanningMoreThanSqrtMaxGiveAFiniteWidthGradient) {
  const auto x = vec<float>({0, 1, 2, 1e20f}), y = vec<float>({1, 2, 3, 4});
  const double width = 0.623833;
  const auto w = vec<float>({static_cast<float>(width)}, true);
  const auto f = nw_attention_pool(x, x, y, w, true);
  const auto loss = sum(square(f - y)) * 0.5f;
  backward(loss);
  // Rows 0-2 by hand in double: row i over the other two small keys.
  const double xs[] = {0, 1, 2}, ys[] = {1, 2, 3}, wd = static_cast<float>(width);
  double grad_w = 0;
  for (int i = 0; i < 3; ++i) {
    double z = 0, fy = 0, p[3] = {};
    for (int j = 0; j < 3; ++j)
      if (j != i) z += p[j] = std::exp(-0.5 * wd * wd * (xs[i] - xs[j]) * (xs[i] - xs[j]));
    for (int j = 0; j < 3; ++j) fy += (p[j] /= z) * ys[j];
    EXPECT_NEAR(f.value()(i), fy, 1e-6);
    for (int j = 0; j < 3; ++j)
      grad_w += (fy - ys[i]) * p[j] * (ys[j] - fy) * (-wd * (xs[i] - xs[j]) * (xs[i] - xs[j]));
  }
  EXPECT_EQ(f.value()(3), 3.f);
  ASSERT_TRUE(std::isfinite(w.grad()(0)));
  EXPECT_NEAR(w.grad()(0), grad_w, 1e-5 * std::abs(grad_w));
}

// A constant column near the top of float32 (every x_1 = 2e38, d = 2): the pooling is that of
// the first column alone.
TEST(NwAttentionEnds, ConstantColumnNearTheTopOfFloat32) {
  const auto x2 = mat<float>({{0, 2e38}, {1, 2e38}, {2.5, 2e38}, {4, 2e38}});
  const auto x1 = vec<float>({0, 1, 2.5, 4}), y = vec<float>({1, -2, 3, 0.5});
  const auto w = vec<float>({0.9f});
  const auto f2 = nw_attention_pool(x2, x2, y, w, true), f1 = nw_attention_pool(x1, x1, y, w, true);
  EXPECT_TRUE(all_close("f", f2.value(), f1.value(), 1e-6, 1e-7));
}

// f_i = sum_j p_ij v_j with p_i = softmax(-|(q_i - k_j) w|^2 / 2) in long double (its range holds
// the squares of every float64), each logit relative to key 0's as
//   -(w^2 / 2) sum_l (k_0l - k_jl) ((q_l - k_jl) + (q_l - k_0l))
// so that a query far from every key still tells its keys apart.
template <class T>
std::vector<long double> pooled_exactly(const xt::xarray<T>& q, const xt::xarray<T>& k,
                                        const xt::xarray<T>& v, long double w) {
  std::vector<long double> f(q.shape()[0]);
  for (std::size_t i = 0; i < f.size(); ++i) {
    std::vector<long double> logit(k.shape()[0]);
    for (std::size_t j = 0; j < logit.size(); ++j)
      for (std::size_t l = 0; l < q.shape()[1]; ++l) {
        const long double qi = q(i, l), k0 = k(0, l), kj = k(j, l);
        logit[j] -= w * w / 2 * (k0 - kj) * ((qi - kj) + (qi - k0));
      }
    const long double top = *std::max_element(logit.begin(), logit.end());
    long double z = 0;
    for (std::size_t j = 0; j < logit.size(); ++j) z += std::exp(logit[j] - top);
    for (std::size_t j = 0; j < logit.size(); ++j) f[i] += std::exp(logit[j] - top) / z * v(j, 0);
  }
  return f;
}

// d = 2 keys over [0, S]^2 for S up to 1e30 in float32 with w = 100 (every row one-hot: the
// nearest key's value), and float64 keys spread log-uniformly over 1e-300..1e300.
template <class T>
void pools_at_every_scale(double lo, double hi, bool log_spread, double w, int seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  auto draw = [&](std::size_t rows) {
    xt::xarray<T> a = xt::zeros<T>({rows, std::size_t(2)});
    for (auto& e : a) e = static_cast<T>(log_spread ? std::pow(10.0, u(rng)) : u(rng));
    return a;
  };
  const xt::xarray<T> k = draw(40), q = draw(40);
  xt::xarray<T> v = xt::zeros<T>({40ul, 1ul});
  for (std::size_t j = 0; j < 40; ++j) v(j, 0) = static_cast<T>(j);
  const auto f = nw_attention_pool(Tensor<T>(q), Tensor<T>(k), Tensor<T>(v), vec<T>({w}));
  const auto expected = pooled_exactly(q, k, v, static_cast<long double>(static_cast<T>(w)));
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-9;
  for (std::size_t i = 0; i < 40; ++i)
    EXPECT_NEAR(f.value()(i, 0), static_cast<double>(expected[i]), 40 * tol) << "query " << i;
}
TEST(NwAttentionEnds, TwoDimensionalKeysAtEveryScale) {
  for (double top : {1e18, 1e20, 1e25, 1e30}) {
    SCOPED_TRACE(top);
    pools_at_every_scale<float>(0, top, false, 100, 7);
  }
  pools_at_every_scale<double>(-300, 300, true, 100, 8);
  pools_at_every_scale<double>(-300, 300, true, 1, 9);
}

// dL/dw where the excess d^2 overflows (float32 keys 0, 1e30, 2e30, query 0.9e30, w = 1e-30) or
// underflows (the same at scale 1e-30, w = 1e30), against the chapter's formula in double:
// dL/dw = sum_j p_j (v_j - f) (-w d_j^2) for L = f.
TEST(NwAttentionEnds, WidthGradientWhereTheSquaresOverflowOrUnderflow) {
  for (double scale : {1e30, 1e-30}) {
    SCOPED_TRACE(scale);
    const double x[] = {0, scale, 2 * scale}, y[] = {1, 2, 3}, qd = 0.9 * scale, wd = 1 / scale;
    const auto k = vec<float>({x[0], x[1], x[2]}), v = vec<float>({1, 2, 3});
    const auto q = vec<float>({qd}), w = vec<float>({wd}, true);
    const auto f = nw_attention_pool(q, k, v, w);
    backward(sum(f));
    double z = 0, fy = 0, p[3], expected = 0;
    const double qf = static_cast<float>(qd), wf = static_cast<float>(wd);
    for (int j = 0; j < 3; ++j)
      z += p[j] = std::exp(-0.5 * std::pow((qf - static_cast<float>(x[j])) * wf, 2));
    for (int j = 0; j < 3; ++j) fy += (p[j] /= z) * y[j];
    for (int j = 0; j < 3; ++j)
      expected += p[j] * (y[j] - fy) * (-std::pow((qf - static_cast<float>(x[j])) * wf, 2) / wf);
    EXPECT_NEAR(f.value()(0), fy, 1e-6);
    EXPECT_NEAR(w.grad()(0), expected, 1e-5 * std::abs(expected)) << "expected " << expected;
  }
}

// A query at exactly the same distance from two keys (d = 2; the keys mirror each other) gets
// exactly the average of their values, at every scale: both keys' logits are the same number.
template <class T>
void ties_stay_ties(double s) {
  SCOPED_TRACE(s);
  for (double c : {0.0, 0.37 * s, -2.5 * s}) {
    const auto k = mat<T>({{c + s, c}, {c, c + s}, {c - 3 * s, c - 3 * s}});
    const auto v = mat<T>({{1}, {2}, {100}});
    for (auto w : {vec<T>({1.0}), vec<T>({0.7, 0.7}), vec<T>({3.0 / s})}) {
      const auto f = nw_attention_pool(mat<T>({{c, c}}), k, v, w);
      EXPECT_EQ(f.value()(0, 0), T(1.5)) << "c " << c;
      const auto p = nw_attention_weights(xt::xarray<T>({{T(c), T(c)}}), k.value(), w.value());
      EXPECT_EQ(p(0, 0), p(0, 1)) << "c " << c;
    }
  }
}
TEST(NwAttentionEnds, ExactTiesStayTies) {
  for (double s : {5001.3, 20001.7, 1e5}) ties_stay_ties<float>(s);
  for (double s : {3e8, 1e12}) ties_stay_ties<double>(s);
}

// --- the cross-entropy at its edges --------------------------------------------------------------

TEST(NwAttentionCrossEntropy, FiniteWhenTheClassIsFarFromTheNearestKeys) {
  // The row's class keys sit 100 away; p_i[y_i] = exp(-5000)-ish underflows when composed, not
  // here: L_i = logsumexp_all - logsumexp_class, worked out by hand.
  const auto k = mat<double>({{0.0}, {0.1}, {100.0}, {100.1}});
  const auto q = mat<double>({{0.05}});
  const auto w = vec<double>({1.0}, true);
  const auto fused = nw_attention_cross_entropy(q, k, {0, 0, 1, 1}, {1}, w, false);
  auto logsumexp = [](double a, double b) {
    const double top = std::max(a, b);
    return top + std::log(std::exp(a - top) + std::exp(b - top));
  };
  const double a0 = -0.5 * 0.05 * 0.05, a2 = -0.5 * 99.95 * 99.95, a3 = -0.5 * 100.05 * 100.05;
  const double expected = logsumexp(a0, a0) - logsumexp(a2, a3);
  EXPECT_NEAR(fused.item(), expected, 1e-9 * expected);
  backward(fused);
  EXPECT_TRUE(std::isfinite(w.grad()(0)));
}

TEST(NwAttentionCrossEntropy, InfiniteWhenTheRowHasNoOtherKeyOfItsClass) {
  const auto k = mat<double>({{0.0}, {1.0}, {2.0}});
  const auto w = vec<double>({1.0});
  const Labels labels = {0, 0, 1};
  EXPECT_EQ(nw_attention_cross_entropy(k, k, labels, labels, w, true).item(),
            std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isfinite(nw_attention_cross_entropy(k, k, labels, labels, w, false).item()));
}

// Labels need no array of their size: 1e12 and INT64_MAX are labels like 0 and 1.
TEST(NwAttentionCrossEntropy, HugeLabelsAreLabels) {
  const auto k = mat<double>({{0.0}, {0.4}, {1.0}, {1.3}});
  const auto w = vec<double>({1.0});
  const Labels small = {0, 0, 1, 1};
  const Labels huge = {std::int64_t(1e12), std::int64_t(1e12),
                       std::numeric_limits<std::int64_t>::max(),
                       std::numeric_limits<std::int64_t>::max()};
  EXPECT_EQ(nw_attention_cross_entropy(k, k, huge, huge, w, true).item(),
            nw_attention_cross_entropy(k, k, small, small, w, true).item());
}

// --- bad input -----------------------------------------------------------------------------------

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

Tensor<double> named(Tensor<double> t, const char* name) {
  t.set_name(name);
  return t;
}

TEST(NwAttentionPool, WrongShapesNameTheOpAndTheTensors) {
  const auto q = named(mat<double>({{0.0, 1.0}, {1.0, 0.0}}), "queries");
  const auto k = named(mat<double>({{0.0, 1.0}, {1.0, 2.0}, {3.0, 1.0}}), "keys");
  const auto v = named(mat<double>({{1.0}, {2.0}, {3.0}}), "values");
  const auto w = named(vec<double>({1.0}), "w");
  const std::string op = "nw_attention_pool";
  const auto cube = named(Tensor<double>(xt::zeros<double>({2, 2, 2})), "queries");
  expect_invalid([&] { nw_attention_pool(cube, k, v, w); }, {op, "queries (2, 2, 2)"});
  expect_invalid(
      [&] {
        nw_attention_pool(named(vec<double>({0.0, 1.0}), "queries"), k, v, w);
      },
      {op, "queries (2,)", "keys (3, 2)"});
  expect_invalid(
      [&] {
        nw_attention_pool(q, named(mat<double>({{0.0}, {1.0}, {2.0}}), "keys"), v, w);
      },
      {op, "queries (2, 2)", "keys (3, 1)"});
  expect_invalid(
      [&] {
        nw_attention_pool(q, k, named(mat<double>({{1.0}, {2.0}}), "values"), w);
      },
      {op, "keys (3, 2)", "values (2, 1)"});
  expect_invalid(
      [&] {
        nw_attention_pool(q, k, v, named(vec<double>({1.0, 2.0, 3.0}), "w"));
      },
      {op, "w (3,)"});
  expect_invalid([&] { nw_attention_pool(q, k, v, w, true); },
                 {op, "leave_one_out", "queries (2, 2)", "keys (3, 2)"});
  expect_invalid([&] { nw_attention_pool(q, k, v, Tensor<double>()); }, {op, "undefined"});
  const xt::xarray<double> xq = {0.0, 1.0}, xk = {{0.0, 1.0}};
  expect_invalid([&] { nw_attention_weights(xq, xk, 1.0); }, {"nw_attention_weights", "(1, 2)"});
}

TEST(NwAttentionCrossEntropy, BadLabelsAndShapes) {
  const auto k = mat<double>({{0.0, 1.0}, {1.0, 2.0}, {3.0, 1.0}});
  const auto w = vec<double>({1.0});
  const std::string op = "nw_attention_cross_entropy";
  expect_invalid(
      [&] {
        nw_attention_cross_entropy(k, k, {0, 1}, {0, 1, 1}, w);
      },
      {op, "key_labels", "2 labels for 3 keys"});
  expect_invalid(
      [&] {
        nw_attention_cross_entropy(k, k, {0, 1, 1}, {0, 1}, w);
      },
      {op, "query_labels", "2 labels for 3 queries"});
  expect_invalid(
      [&] {
        nw_attention_cross_entropy(k, k, {0, -1, 1}, {0, 1, 1}, w);
      },
      {op, "key_labels[1] = -1"});
  expect_invalid(
      [&] {
        nw_attention_cross_entropy(k, k, {0, 1, 1}, {0, 2, 1}, w);
      },
      {op, "query_labels[1] = 2"});
  expect_invalid(
      [&] {
        nw_attention_cross_entropy(k, k, {0, 1, 1}, {0, 1, 1}, vec<double>({1.0, 2.0, 3.0}));
      },
      {op, "(3,)"});
}

}  // namespace
}  // namespace tapegrad::test
