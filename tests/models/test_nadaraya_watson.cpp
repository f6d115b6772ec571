// models/nadaraya_watson.h: average pooling, nonparametric pooling with the 2nd edition's kernels,
// the training layouts, and NWKernelRegression for d = 1 (the book's shapes) and vectors, for
// regression and classes. PyTorch float64 reference numbers (tests/reference/make_nd_reference.py
// -> nd_reference.json) for values and gradients in both dtypes, float64 gradchecks of every
// differentiable function on several shapes, wrong shapes, the cross-entropy's stability, the
// logits at the ends of the float range, the fused op against the composed model, and training.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>
#include <xtensor/xadapt.hpp>

#include "../autograd/throws_with.h"
#include "autograd/gradcheck_gtest.h"
#include "data/datasets.h"
#include "model_test_util.h"
#include "models/nadaraya_watson.h"
#include "ops/fused/nw_attention.h"
#include "optim/sgd.h"
#include "tapegrad.h"

using namespace tapegrad;
using namespace tapegrad::testutil;
using nlohmann::json;

namespace {

const Kernel kAllKernels[] = {Kernel::Gaussian, Kernel::Boxcar, Kernel::Constant,
                              Kernel::Epanechikov};

// Six points, unevenly spaced, for gradchecks and small exact checks.
const std::vector<double> kX6 = {0.2, 0.9, 1.3, 2.6, 3.1, 4.4};
const std::vector<double> kY6 = {0.5, 1.9, 2.4, 2.1, 1.2, 0.3};

ChapterData chapter_data(std::uint64_t seed = 0) {
  Rng rng(seed);
  return make_chapter_data(rng);
}

double loss_value(NWKernelRegression<double>& net, const Tensor<double>& x, const Tensor<double>& y,
                  const Tensor<double>& k, const Tensor<double>& v) {
  return sum(mse_loss(net(x, k, v), y, "none") * 0.5).item();
}

// ---------------------------------------------------------------------------------------------
// Average pooling and the nonparametric kernels
// ---------------------------------------------------------------------------------------------

// Average pooling predicts mean(y) for every query, shape (n_query,).
TEST(NWKernel, AveragePoolingIsTheMean) {
  const auto y = to_tensor<double>(kY6);
  const auto a = average_pooling(y, 7);
  ASSERT_EQ(a.shape(), (Shape{7}));
  double mean = 0;
  for (double v : kY6) mean += v / kY6.size();
  for (double v : to_vec(a)) EXPECT_NEAR(v, mean, 1e-15);
  EXPECT_THROW(average_pooling(Tensor<double>(xt::xarray<double>::from_shape({0})), 3),
               std::invalid_argument);
}

// For every kernel, each query's weights are a probability distribution (>= 0, sum 1), and the
// estimate is that weighted average of y.
TEST(NWKernel, WeightRowsSumToOneForAllKernels) {
  const ChapterData c = chapter_data();
  const auto x = to_tensor<double>(c.x_train), y = to_tensor<double>(c.y_train);
  const auto q = to_tensor<double>(c.x_query);
  for (Kernel k : kAllKernels) {
    for (double sigma : {0.3, 1.0, 2.5}) {
      SCOPED_TRACE(to_string(k) + ", sigma " + std::to_string(sigma));
      NWResult<double> r = nadaraya_watson(x, y, q, k, sigma);
      ASSERT_EQ(r.weights.shape(), (Shape{50, 50}));
      ASSERT_EQ(r.y_hat.shape(), (Shape{50}));
      for (std::size_t i = 0; i < 50; ++i) {
        double s = 0, f = 0;
        for (std::size_t j = 0; j < 50; ++j) {
          EXPECT_GE(r.weights.value()(i, j), 0.0);
          s += r.weights.value()(i, j);
          f += r.weights.value()(i, j) * c.y_train[j];
        }
        EXPECT_NEAR(s, 1.0, 1e-12);
        EXPECT_NEAR(r.y_hat.value()(i), f, 1e-12);
      }
    }
  }
}

// The weights equal K(d / sigma) / sum_j K(d_j / sigma) computed directly from kernel_value.
TEST(NWKernel, WeightsAreNormalisedKernelValues) {
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  const std::vector<double> qs = {0.0, 1.0, 2.2, 4.0};
  for (Kernel k : kAllKernels) {
    SCOPED_TRACE(to_string(k));
    const double sigma = 1.5;
    NWResult<double> r = nadaraya_watson(x, y, to_tensor<double>(qs), k, sigma);
    EXPECT_EQ(r.empty_rows, 0u);
    for (std::size_t i = 0; i < qs.size(); ++i) {
      double z = 0;
      for (double xi : kX6) z += kernel_value(k, (qs[i] - xi) / sigma);
      for (std::size_t j = 0; j < kX6.size(); ++j)
        EXPECT_NEAR(r.weights.value()(i, j), kernel_value(k, (qs[i] - kX6[j]) / sigma) / z, 1e-14);
    }
  }
}

// kernel_value is the 2nd edition's formulas; names round-trip; unknown names throw.
TEST(NWKernel, KernelValuesAndNames) {
  EXPECT_DOUBLE_EQ(kernel_value(Kernel::Gaussian, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(kernel_value(Kernel::Gaussian, 2.0), std::exp(-2.0));
  EXPECT_DOUBLE_EQ(kernel_value(Kernel::Boxcar, 0.99), 1.0);
  EXPECT_DOUBLE_EQ(kernel_value(Kernel::Boxcar, -1.0), 0.0);
  EXPECT_DOUBLE_EQ(kernel_value(Kernel::Constant, 1e9), 1.0);
  EXPECT_DOUBLE_EQ(kernel_value(Kernel::Epanechikov, 0.25), 0.75);
  EXPECT_DOUBLE_EQ(kernel_value(Kernel::Epanechikov, -0.25), 0.75);
  EXPECT_DOUBLE_EQ(kernel_value(Kernel::Epanechikov, 1.5), 0.0);
  for (Kernel k : kAllKernels) EXPECT_EQ(kernel_from_string(to_string(k)), k);
  EXPECT_THROW(kernel_from_string("Gaussian"), std::invalid_argument);
  EXPECT_THROW(kernel_from_string(""), std::invalid_argument);
}

// The constant kernel weighs every training pair equally: it is average pooling.
TEST(NWKernel, ConstantKernelIsAveragePooling) {
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  NWResult<double> r =
      nadaraya_watson(x, y, to_tensor<double>({-3.0, 1.0, 100.0}), Kernel::Constant);
  const auto a = average_pooling(y, 3);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_NEAR(r.y_hat.value()(i), a.value()(i), 1e-14);
}

// The gaussian row is computed as a softmax: a query 1000 away from every key (exp(-5e5) underflows
// to 0 in the naive K / sum K) still gets finite weights, all on the nearest key.
TEST(NWKernel, GaussianFarQueryIsFinite) {
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  for (double q : {1e3, -1e3}) {
    NWResult<double> r = nadaraya_watson(x, y, to_tensor<double>({q}), Kernel::Gaussian, 1.0);
    ASSERT_TRUE(std::isfinite(r.y_hat.value()(0)));
    double s = 0;
    for (std::size_t j = 0; j < 6; ++j) {
      ASSERT_TRUE(std::isfinite(r.weights.value()(0, j)));
      s += r.weights.value()(0, j);
    }
    EXPECT_NEAR(s, 1.0, 1e-12);
    const std::size_t nearest = q > 0 ? 5 : 0;
    EXPECT_NEAR(r.weights.value()(0, nearest), 1.0, 1e-12);
    EXPECT_NEAR(r.y_hat.value()(0), kY6[nearest], 1e-12);
    EXPECT_EQ(r.empty_rows, 0u);
  }
  // float32 too (exp(-50) already underflows there).
  NWResult<float> rf = nadaraya_watson(to_tensor<float>(kX6), to_tensor<float>(kY6),
                                       to_tensor<float>({1e3}), Kernel::Gaussian, 1.0f);
  EXPECT_TRUE(std::isfinite(rf.y_hat.value()(0)));
  EXPECT_NEAR(rf.y_hat.value()(0), kY6[5], 1e-5);
}

// sigma is a length scale: scaling inputs, queries and sigma together leaves the weights unchanged;
// a wider gaussian spreads the weights (closer to average pooling), a narrower one concentrates
// them.
TEST(NWKernel, GaussianSigmaScales) {
  const std::vector<double> qs = {0.0, 1.7, 3.3};
  const auto y = to_tensor<double>(kY6);
  NWResult<double> base =
      nadaraya_watson(to_tensor<double>(kX6), y, to_tensor<double>(qs), Kernel::Gaussian, 0.8);
  std::vector<double> xs = kX6, qs3 = qs;
  for (double& v : xs) v *= 3;
  for (double& v : qs3) v *= 3;
  NWResult<double> scaled =
      nadaraya_watson(to_tensor<double>(xs), y, to_tensor<double>(qs3), Kernel::Gaussian, 2.4);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 6; ++j)
      EXPECT_NEAR(scaled.weights.value()(i, j), base.weights.value()(i, j), 1e-13);

  // Largest weight per row shrinks as sigma grows; a huge sigma is average pooling.
  double prev = 1.0 + 1e-12;
  for (double sigma : {0.1, 0.5, 1.0, 2.0, 10.0}) {
    NWResult<double> r = nadaraya_watson(to_tensor<double>(kX6), y, to_tensor<double>({2.0}),
                                         Kernel::Gaussian, sigma);
    double mx = 0;
    for (std::size_t j = 0; j < 6; ++j) mx = std::max(mx, r.weights.value()(0, j));
    EXPECT_LT(mx, prev) << "sigma " << sigma;
    prev = mx;
  }
  NWResult<double> wide =
      nadaraya_watson(to_tensor<double>(kX6), y, to_tensor<double>({2.0}), Kernel::Gaussian, 1e6);
  EXPECT_NEAR(wide.y_hat.value()(0), average_pooling(y, 1).value()(0), 1e-9);
}

// Compact kernels with no training input within sigma of a query: by default (EmptyRow::Nearest)
// the query takes its nearest training input's value (weight 1 there), and empty_rows counts it.
TEST(NWKernel, CompactKernelEmptyRowFallsBackToNearest) {
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  for (Kernel k : {Kernel::Boxcar, Kernel::Epanechikov}) {
    SCOPED_TRACE(to_string(k));
    // 50 and -7 are far from all keys; 2.0 has neighbours within sigma 1.
    NWResult<double> r = nadaraya_watson(x, y, to_tensor<double>({50.0, 2.0, -7.0}), k, 1.0);
    EXPECT_EQ(r.empty_rows, 2u);
    for (std::size_t j = 0; j < 6; ++j) {
      EXPECT_EQ(r.weights.value()(0, j), j == 5 ? 1.0 : 0.0);
      EXPECT_EQ(r.weights.value()(2, j), j == 0 ? 1.0 : 0.0);
    }
    EXPECT_DOUBLE_EQ(r.y_hat.value()(0), kY6[5]);
    EXPECT_DOUBLE_EQ(r.y_hat.value()(2), kY6[0]);
    double s = 0;
    for (std::size_t j = 0; j < 6; ++j) s += r.weights.value()(1, j);
    EXPECT_NEAR(s, 1.0, 1e-14);
  }
}

// EmptyRow::Throw reports the empty row as std::domain_error instead of inventing weights.
TEST(NWKernel, CompactKernelEmptyRowThrowsWhenAsked) {
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  for (Kernel k : {Kernel::Boxcar, Kernel::Epanechikov}) {
    EXPECT_THROW(nadaraya_watson(x, y, to_tensor<double>({1.0, 50.0}), k, 1.0, EmptyRow::Throw),
                 std::domain_error);
    // Rows with support do not throw.
    EXPECT_NO_THROW(nadaraya_watson(x, y, to_tensor<double>({1.0}), k, 1.0, EmptyRow::Throw));
  }
  // The gaussian and constant kernels never have empty rows.
  EXPECT_NO_THROW(
      nadaraya_watson(x, y, to_tensor<double>({50.0}), Kernel::Gaussian, 1.0, EmptyRow::Throw));
}

// A kernel width must be a positive finite number; bad shapes are rejected.
TEST(NWKernel, InvalidArgumentsThrow) {
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  const auto q = to_tensor<double>({1.0});
  for (double s : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()})
    for (Kernel k : kAllKernels)
      EXPECT_THROW(nadaraya_watson(x, y, q, k, s), std::invalid_argument) << s;
  EXPECT_THROW(nadaraya_watson(x, to_tensor<double>({1.0, 2.0}), q, Kernel::Gaussian),
               std::invalid_argument);
  EXPECT_THROW(nadaraya_watson(reshape(x, {2, 3}), y, q, Kernel::Gaussian), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Keys and values
// ---------------------------------------------------------------------------------------------

// Leave-one-out keys/values are (n, n - 1) and row i is the training set without pair i, in order
// (X_tile[~eye].reshape(n, n - 1)); without leave-one-out every row is the whole training set.
TEST(NWModel, TrainingKeysValuesLeaveOneOut) {
  const std::vector<double> xs = {1, 2, 3, 4}, ys = {10, 20, 30, 40};
  auto [k, v] = training_keys_values(to_tensor<double>(xs), to_tensor<double>(ys));
  ASSERT_EQ(k.shape(), (Shape{4, 3}));
  ASSERT_EQ(v.shape(), (Shape{4, 3}));
  for (std::size_t i = 0; i < 4; ++i) {
    std::size_t c = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      if (j == i) continue;
      EXPECT_EQ(k.value()(i, c), xs[j]) << "row " << i;
      EXPECT_EQ(v.value()(i, c), ys[j]) << "row " << i;
      ++c;
    }
  }
  auto [ka, va] = training_keys_values(to_tensor<double>(xs), to_tensor<double>(ys), false);
  ASSERT_EQ(ka.shape(), (Shape{4, 4}));
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t j = 0; j < 4; ++j) {
      EXPECT_EQ(ka.value()(i, j), xs[j]);
      EXPECT_EQ(va.value()(i, j), ys[j]);
    }
  // The chapter's size.
  const ChapterData c = chapter_data();
  auto [k50, v50] =
      training_keys_values(to_tensor<double>(c.x_train), to_tensor<double>(c.y_train));
  EXPECT_EQ(k50.shape(), (Shape{50, 49}));
  EXPECT_EQ(v50.shape(), (Shape{50, 49}));
  auto [qk, qv] = query_keys_values(to_tensor<double>(c.x_train), to_tensor<double>(c.y_train), 7);
  EXPECT_EQ(qk.shape(), (Shape{7, 50}));
  EXPECT_EQ(qv.shape(), (Shape{7, 50}));
}

// Fewer than 2 pairs, or x and y of different lengths, cannot make leave-one-out keys.
TEST(NWModel, TrainingKeysValuesRejectsBadInput) {
  EXPECT_THROW(training_keys_values(to_tensor<double>({1.0}), to_tensor<double>({2.0})),
               std::invalid_argument);
  EXPECT_THROW(training_keys_values(to_tensor<double>({1.0, 2.0}), to_tensor<double>({2.0})),
               std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// NWKernelRegression
// ---------------------------------------------------------------------------------------------

// forward: (n,), (n, m), (n, m) -> (n,), weights (n, m) with rows summing to 1, and the result is
// the formula sum_i softmax_i(-((q - k_i) w)^2 / 2) v_i computed by hand.
TEST(NWModel, ForwardMatchesFormula) {
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  auto [k, v] = training_keys_values(x, y);
  NWKernelRegression<double> net(1.7);
  const auto out = net(x, k, v);
  ASSERT_EQ(out.shape(), (Shape{6}));
  ASSERT_EQ(net.attention_weights().shape(), (Shape{6, 5}));
  for (std::size_t i = 0; i < 6; ++i) {
    double z = 0, f = 0, s = 0;
    for (std::size_t j = 0; j < 5; ++j)
      z += std::exp(-std::pow((kX6[i] - k.value()(i, j)) * 1.7, 2) / 2);
    for (std::size_t j = 0; j < 5; ++j) {
      const double a = std::exp(-std::pow((kX6[i] - k.value()(i, j)) * 1.7, 2) / 2) / z;
      EXPECT_NEAR(net.attention_weights().value()(i, j), a, 1e-14);
      f += a * v.value()(i, j);
      s += net.attention_weights().value()(i, j);
    }
    EXPECT_NEAR(out.value()(i), f, 1e-14);
    EXPECT_NEAR(s, 1.0, 1e-14);
  }
  EXPECT_EQ(net.parameters().size(), 1u);
  EXPECT_TRUE(net.parameters()[0].same(net.w()));
  EXPECT_TRUE(net.w().requires_grad());
}

// Shape mismatches between queries, keys and values are std::invalid_argument, not a crash.
TEST(NWModel, ForwardShapeErrorsThrow) {
  NWKernelRegression<double> net(1.0);
  const auto q3 = to_tensor<double>({1, 2, 3});
  const auto k33 = Tensor<double>(xt::xarray<double>(xt::ones<double>({3, 3})));
  const auto k23 = Tensor<double>(xt::xarray<double>(xt::ones<double>({2, 3})));
  const auto k34 = Tensor<double>(xt::xarray<double>(xt::ones<double>({3, 4})));
  const auto k333 = Tensor<double>(xt::xarray<double>(xt::ones<double>({3, 3, 3})));
  EXPECT_NO_THROW(net(q3, k33, k33));
  EXPECT_THROW(net(q3, k23, k23), std::invalid_argument);    // rows != queries
  EXPECT_THROW(net(q3, k33, k34), std::invalid_argument);    // values != keys
  EXPECT_THROW(net(q3, q3, q3), std::invalid_argument);      // 1-D keys
  EXPECT_THROW(net(k33, k33, k33), std::invalid_argument);   // 2-D queries
  EXPECT_THROW(net(q3, k333, k333), std::invalid_argument);  // 3-D keys
}

// dL/dw by backward agrees with central finite differences (gradcheck, float64) for the chapter's
// loss, with and without leave-one-out, at several w; and the Jacobian of all n predictions too.
TEST(NWGradcheck, LossWrtW) {
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  for (bool loo : {true, false}) {
    // Named tensors rather than a structured binding: C++17 lambdas cannot capture those.
    Tensor<double> k, v;
    std::tie(k, v) = training_keys_values(x, y, loo);
    for (double w0 : {0.3, 1.0, 2.5}) {
      SCOPED_TRACE(std::string(loo ? "leave-one-out" : "keep-self") + ", w " + std::to_string(w0));
      NWKernelRegression<double> net(w0);
      auto loss = [&](const std::vector<Tensor<double>>&) {
        return sum(mse_loss(net(x, k, v), y, "none") * 0.5);
      };
      auto preds = [&](const std::vector<Tensor<double>>&) { return net(x, k, v); };
      EXPECT_TRUE(gradcheck_passes(loss, {net.w()}));
      EXPECT_TRUE(gradcheck_passes(preds, {net.w()}));
    }
  }
}

// Keys, values and queries are tensors too: the model is differentiable in each of them.
TEST(NWGradcheck, PredictionsWrtKeysValuesQueries) {
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  for (bool loo : {true, false}) {
    SCOPED_TRACE(loo ? "leave-one-out" : "keep-self");
    auto [k0, v0] = training_keys_values(x, y, loo);
    Tensor<double> q(x.value(), true), k(k0.value(), true), v(v0.value(), true);
    NWKernelRegression<double> net(1.3);
    auto f = [&](const std::vector<Tensor<double>>& in) { return net(in[0], in[1], in[2]); };
    EXPECT_TRUE(gradcheck_passes(f, {q, k, v}));
    auto loss = [&](const std::vector<Tensor<double>>& in) {
      return sum(mse_loss(net(in[0], in[1], in[2]), y, "none") * 0.5);
    };
    EXPECT_TRUE(gradcheck_passes(loss, {q, k, v, net.w()}));
  }
}

// End to end through the keys/values construction (repeat, masked_select, reshape): the loss as a
// function of the raw training data x, y and w.
TEST(NWGradcheck, LossWrtTrainingData) {
  for (bool loo : {true, false}) {
    SCOPED_TRACE(loo ? "leave-one-out" : "keep-self");
    Tensor<double> x = to_tensor<double>(kX6, true), y = to_tensor<double>(kY6, true);
    NWKernelRegression<double> net(0.9);
    auto loss = [&](const std::vector<Tensor<double>>& in) {
      auto [k, v] = training_keys_values(in[0], in[1], loo);
      return sum(mse_loss(net(in[0], k, v), in[1], "none") * 0.5);
    };
    EXPECT_TRUE(gradcheck_passes(loss, {x, y, net.w()}));
  }
}

// The backward's dL/dw also passes gradcheck on the chapter's data (50 points), where checking the
// keys would be slow (50 x 49 columns) but w is one column.
TEST(NWGradcheck, ChapterSizeLossWrtW) {
  const ChapterData c = chapter_data();
  const auto x = to_tensor<double>(c.x_train), y = to_tensor<double>(c.y_train);
  Tensor<double> k, v;  // not a structured binding: the lambda below captures them
  std::tie(k, v) = training_keys_values(x, y);
  NWKernelRegression<double> net(0.7);
  auto loss = [&](const std::vector<Tensor<double>>&) {
    return sum(mse_loss(net(x, k, v), y, "none") * 0.5);
  };
  EXPECT_TRUE(gradcheck_passes(loss, {net.w()}));
}

// ---------------------------------------------------------------------------------------------
// The fused formulation (forward_fused, ops/fused/nw_attention.h)
// ---------------------------------------------------------------------------------------------

// forward_fused computes the same function as the chapter's composed forward, with and without
// leave-one-out, for training inputs as queries and for other queries; nw_attention_weights is the
// composed attention matrix (with p_ii = 0 under leave-one-out).
TEST(NWFused, MatchesComposedForward) {
  const ChapterData c = chapter_data(5);
  const auto x = to_tensor<double>(c.x_train), y = to_tensor<double>(c.y_train);
  const auto q = to_tensor<double>(c.x_query);
  for (double w : {0.0, 0.4, 1.0, 3.0, 25.0}) {
    SCOPED_TRACE("w " + std::to_string(w));
    NWKernelRegression<double> net(w);
    for (bool loo : {true, false}) {
      auto [k, v] = training_keys_values(x, y, loo);
      const auto composed = to_vec(net(x, k, v));
      const auto fused = to_vec(net.forward_fused(x, x, y, loo));
      EXPECT_LE(testutil::max_rel_diff(fused, composed, 1e-3), 1e-12) << "loo " << loo;
      const xt::xarray<double> p = nw_attention_weights(x.value(), x.value(), w, loo);
      const auto& a = net.attention_weights().value();  // (n, n - 1) or (n, n)
      for (std::size_t i = 0; i < 50; ++i)
        for (std::size_t j = 0, col = 0; j < 50; ++j) {
          if (loo && j == i) {
            EXPECT_EQ(p(i, j), 0.0);
            continue;
          }
          EXPECT_NEAR(p(i, j), a(i, col), 1e-13);
          ++col;
        }
    }
    auto [qk, qv] = query_keys_values(x, y, 50);
    EXPECT_LE(testutil::max_rel_diff(to_vec(net.forward_fused(q, x, y, false)),
                                     to_vec(net(q, qk, qv)), 1e-3),
              1e-12);
  }
}

// A query far from every key (the softmax shift keeps it finite), in float32 and float64.
TEST(NWFused, FarQueryIsFinite) {
  NWKernelRegression<double> net(2.0);
  const auto f = net.forward_fused(to_tensor<double>({1e3, -1e3}), to_tensor<double>(kX6),
                                   to_tensor<double>(kY6), false);
  EXPECT_NEAR(f.value()(0), kY6[5], 1e-12);
  EXPECT_NEAR(f.value()(1), kY6[0], 1e-12);
  NWKernelRegression<float> netf(2.0f);
  const auto ff = netf.forward_fused(to_tensor<float>({1e3}), to_tensor<float>(kX6),
                                     to_tensor<float>(kY6), false);
  EXPECT_NEAR(ff.value()(0), kY6[5], 1e-5);
}

// Bad shapes are std::invalid_argument: leave-one-out needs the queries to be the keys (n == m) and
// at least 2 of them; keys and values must be 1-D and of one length.
TEST(NWFused, ShapeErrorsThrow) {
  NWKernelRegression<double> net(1.0);
  const auto x = to_tensor<double>(kX6), y = to_tensor<double>(kY6);
  EXPECT_THROW(net.forward_fused(to_tensor<double>({1.0, 2.0}), x, y, true), std::invalid_argument);
  EXPECT_NO_THROW(net.forward_fused(to_tensor<double>({1.0, 2.0}), x, y, false));
  EXPECT_THROW(net.forward_fused(to_tensor<double>({1.0}), to_tensor<double>({1.0}),
                                 to_tensor<double>({2.0}), true),
               std::invalid_argument);
  EXPECT_THROW(net.forward_fused(x, x, to_tensor<double>({1.0}), false), std::invalid_argument);
  EXPECT_THROW(net.forward_fused(x, reshape(x, {2, 3}), reshape(y, {2, 3}), false),
               std::invalid_argument);
  EXPECT_THROW(net.forward_fused(reshape(x, {2, 3}), x, y, false), std::invalid_argument);
}

// The fused op's hand-written backward agrees with finite differences for w, queries, keys and
// values, and for the training loss as a function of (x, y, w) with x both queries and keys.
TEST(NWGradcheck, FusedWrtAllInputs) {
  for (bool loo : {true, false}) {
    SCOPED_TRACE(loo ? "leave-one-out" : "keep-self");
    NWKernelRegression<double> net(1.3);
    Tensor<double> q = to_tensor<double>(kX6, true), k = to_tensor<double>(kX6, true);
    Tensor<double> v = to_tensor<double>(kY6, true);
    auto f = [&](const std::vector<Tensor<double>>& in) {
      return net.forward_fused(in[0], in[1], in[2], loo);
    };
    EXPECT_TRUE(gradcheck_passes(f, {q, k, v, net.w()}));
    Tensor<double> x = to_tensor<double>(kX6, true), y = to_tensor<double>(kY6, true);
    auto loss = [&](const std::vector<Tensor<double>>& in) {
      return sum(mse_loss(net.forward_fused(in[0], in[0], in[1], loo), in[1], "none") * 0.5);
    };
    EXPECT_TRUE(gradcheck_passes(loss, {x, y, net.w()}));
  }
  // Queries that are not the keys (prediction), more queries than keys.
  NWKernelRegression<double> net(0.8);
  Tensor<double> q = to_tensor<double>({-0.5, 0.0, 1.1, 2.2, 3.3, 4.4, 5.5, 7.0}, true);
  Tensor<double> k = to_tensor<double>(kX6, true), v = to_tensor<double>(kY6, true);
  auto f = [&](const std::vector<Tensor<double>>& in) {
    return net.forward_fused(in[0], in[1], in[2], false);
  };
  EXPECT_TRUE(gradcheck_passes(f, {q, k, v, net.w()}));
}

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

// On the chapter's data (several seeds), 5 epochs of leave-one-out SGD with lr 0.5 from w = U(0,1)
// lower the loss every epoch, and the learned w sharpens the kernel (w > 1), as in the chapter.
TEST(NWModel, TrainingLossDecreasesOnChapterData) {
  for (std::uint64_t seed : {0u, 1u, 2u, 42u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Rng rng(seed);
    const ChapterData c = make_chapter_data(rng);
    ASSERT_EQ(c.x_train.size(), 50u);
    ASSERT_TRUE(std::is_sorted(c.x_train.begin(), c.x_train.end()));
    const auto x = to_tensor<double>(c.x_train), y = to_tensor<double>(c.y_train);
    auto [k, v] = training_keys_values(x, y);
    NWKernelRegression<double> net(rng.uniform());
    SGD<double> trainer(net.parameters(), 0.5);
    std::vector<double> losses;
    for (int epoch = 0; epoch < 5; ++epoch) {
      trainer.zero_grad();
      Tensor<double> l = sum(mse_loss(net(x, k, v), y, "none") * 0.5);
      l.backward();
      trainer.step();
      losses.push_back(l.item());
    }
    losses.push_back(loss_value(net, x, y, k, v));  // after the last step
    for (std::size_t e = 1; e < losses.size(); ++e)
      EXPECT_LE(losses[e], losses[e - 1] + 1e-12) << "epoch " << e;
    EXPECT_LT(losses.back(), 0.8 * losses.front());
    EXPECT_GT(net.w().value()(0), 1.0);
  }
}

// The chapter's data generator: 50 sorted inputs in [0, 5), queries 0, 0.1, ..., 4.9, y_truth the
// noiseless function; the same seed gives the same data, another seed different data.
TEST(NWModel, ChapterDataIsReproducible) {
  const ChapterData a = chapter_data(3), b = chapter_data(3), c = chapter_data(4);
  EXPECT_EQ(a.x_train, b.x_train);
  EXPECT_EQ(a.y_train, b.y_train);
  EXPECT_NE(a.x_train, c.x_train);
  ASSERT_EQ(a.x_query.size(), 50u);
  for (std::size_t i = 0; i < 50; ++i) {
    EXPECT_DOUBLE_EQ(a.x_query[i], 0.1 * i);
    EXPECT_DOUBLE_EQ(a.y_truth[i], 2 * std::sin(0.1 * i) + std::pow(0.1 * i, 0.8));
  }
  for (double xv : a.x_train) {
    EXPECT_GE(xv, 0.0);
    EXPECT_LT(xv, 5.0);
  }
  // The noise is N(0, 0.5^2): residuals have a plausible spread.
  double ss = 0;
  for (std::size_t i = 0; i < 50; ++i)
    ss += std::pow(a.y_train[i] - chapter_truth(a.x_train[i]), 2);
  const double sd = std::sqrt(ss / 50);
  EXPECT_GT(sd, 0.3);
  EXPECT_LT(sd, 0.7);
}

// --- the reference file and comparisons -----------------------------------------------------

const json& nd_reference() {
  static const json j = [] {
    const std::string path = std::string(TAPEGRAD_CHAPTER_REF_DIR) + "/../nd_reference.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return j;
}

// {"shape": [...], "data": [...]} -> xarray<T>.
template <class T>
xt::xarray<T> ref_array(const json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  const auto data = j.at("data").get<std::vector<double>>();
  xt::xarray<T> a = xt::zeros<T>(shape);
  if (a.size() != data.size()) throw std::runtime_error("nd_reference: size mismatch");
  std::transform(data.begin(), data.end(), a.data(), [](double v) { return static_cast<T>(v); });
  return a;
}
template <class T>
Tensor<T> ref_tensor(const json& j, bool requires_grad = false) {
  return Tensor<T>(ref_array<T>(j), requires_grad);
}

// float32 inputs are the float64 ones rounded once: compared at a float32-sized tolerance.
template <class T>
double tol() {
  return std::is_same_v<T, double> ? 1e-10 : 2e-4;
}

// Shapes equal and |a - e| <= tol (1 + |e|) everywhere; names the first bad element.
template <class T>
::testing::AssertionResult close_to(const std::string& what, const xt::xarray<T>& a,
                                    const xt::xarray<double>& e, double tolerance) {
  if (to_shape(a.shape()) != to_shape(e.shape()))
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(to_shape(a.shape()))
                                         << ", expected " << shape_str(to_shape(e.shape()));
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a.data()[i]), y = e.data()[i];
    if (!(std::abs(x - y) <= tolerance * (1 + std::abs(y))))
      return ::testing::AssertionFailure()
             << what << ": flat element " << i << " is " << x << ", expected " << y;
  }
  return ::testing::AssertionSuccess();
}
template <class T>
::testing::AssertionResult matches(const std::string& what, const xt::xarray<T>& a, const json& e) {
  return close_to(what, a, ref_array<double>(e), tol<T>());
}

// a as a 1-D array, (n, 1) -> (n,).
template <class T>
xt::xarray<T> flat(const xt::xarray<T>& a) {
  xt::xarray<T> f = a;
  f.reshape({a.size()});
  return f;
}

const char* dtype_name(float) {
  return "float32";
}
const char* dtype_name(double) {
  return "float64";
}

// Sets w to the case's values (w keeps requires_grad and its name).
template <class T>
void set_w(NWKernelRegression<T>& net, const json& w) {
  net.w().mutable_value() = ref_array<T>(w);
}

Widths case_widths(const json& c) {
  return widths_from_string(c.at("widths").get<std::string>());
}

std::vector<std::int64_t> labels_of(const json& j) {
  return j.get<std::vector<std::int64_t>>();
}

// The book's logits composed plainly, -||(q - k) w||^2 / 2 with no shift: queries (n, d), keys
// (m, d) or (n, m, d), w (1,) or (d,) -> (n, m). Overflows where nw_logits does not.
template <class T>
Tensor<T> plain_logits(const Tensor<T>& q, const Tensor<T>& keys, const Tensor<T>& w) {
  const Tensor<T> k = keys.dim() == 3 ? keys : unsqueeze(keys, 0);
  return sum(square((unsqueeze(q, 1) - k) * w), {-1}) * T(-0.5);
}

// The shift nw_logits adds, ||(q_i - x*_i) w||^2 / 2 (n, 1), with x*_i query i's nearest key found
// here by brute force (in double; a constant, as in nw_logits).
template <class T>
Tensor<T> nearest_shift(const Tensor<T>& q, const Tensor<T>& keys, const Tensor<T>& w) {
  const Tensor<T> k = keys.dim() == 3 ? keys : unsqueeze(keys, 0);
  const std::size_t n = q.shape()[0], m = k.shape()[1], d = q.shape()[1];
  xt::xarray<T> x_star = xt::zeros<T>({n, std::size_t(1), d});
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t row = k.shape()[0] == 1 ? 0 : i;
    double best = INFINITY;
    for (std::size_t j = 0; j < m; ++j) {
      double s = 0;
      for (std::size_t c = 0; c < d; ++c)
        s += std::pow(
            (double(q.value()(i, c)) - k.value()(row, j, c)) * w.value()(w.size() > 1 ? c : 0), 2);
      if (s < best) {
        best = s;
        for (std::size_t c = 0; c < d; ++c) x_star(i, 0, c) = k.value()(row, j, c);
      }
    }
  }
  return sum(square((unsqueeze(q, 1) - Tensor<T>(x_star)) * w), {-1}) * T(0.5);  // (n, 1)
}

// --- PyTorch reference: forward values and gradients, both dtypes ----------------------------

// nw_logits less the shift it adds, ||(q - x*) w||^2 / 2, times -2 is PyTorch's squared distances
// s_ij = sum_k ((q_ik - keys_ijk) w_k)^2, as a function of q, keys and w: values and gradients.
template <class T>
void check_logits_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto q = ref_tensor<T>(c["queries"], true), k = ref_tensor<T>(c["keys"], true);
  auto w = ref_tensor<T>(c["w"], true);
  const Tensor<T> s = (nw_logits(q, k, w) - nearest_shift(q, k, w)) * T(-2);
  EXPECT_TRUE(matches("s", s.value(), c["out"]));
  s.backward(ref_array<T>(c["G"]));
  EXPECT_TRUE(matches("grad queries", q.grad(), c["grad_queries"]));
  EXPECT_TRUE(matches("grad keys", k.grad(), c["grad_keys"]));
  EXPECT_TRUE(matches("grad w", w.grad(), c["grad_w"]));
}

TEST(NDReference, LogitsAreTheSquaredDistancesShifted) {
  const json& cases = nd_reference().at("weighted_sq_distances");
  ASSERT_EQ(cases.size(), 12u);  // d = 1, 2, 3; keys (n, m, d) and (m, d); shared, per-coordinate
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["widths"].get<std::string>() + ", keys " +
                 c["keys"]["shape"].dump());
    check_logits_case<double>(c);
    check_logits_case<float>(c);
  }
}

template <class T>
void check_forward_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto q = ref_tensor<T>(c["queries"], true), k = ref_tensor<T>(c["keys"], true);
  auto v = ref_tensor<T>(c["values"], true);
  NWKernelRegression<T> net(q.shape()[1], case_widths(c), T(1));
  set_w(net, c["w"]);
  const Tensor<T> out = net.forward(q, k, v);
  EXPECT_TRUE(matches("out", out.value(), c["out"]));
  EXPECT_TRUE(matches("attention weights", net.attention_weights().value(), c["weights"]));
  out.backward(ref_array<T>(c["G"]));
  EXPECT_TRUE(matches("grad queries", q.grad(), c["grad_queries"]));
  EXPECT_TRUE(matches("grad keys", k.grad(), c["grad_keys"]));
  EXPECT_TRUE(matches("grad values", v.grad(), c["grad_values"]));
  EXPECT_TRUE(matches("grad w", net.w().grad(), c["grad_w"]));
}

TEST(NDReference, ModelForward) {
  const json& cases = nd_reference().at("forward");
  ASSERT_EQ(cases.size(), 12u);  // d = 1, 2, 3; shared, per-coordinate; C = 1, 3
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["widths"].get<std::string>() + ", values " +
                 c["values"]["shape"].dump());
    check_forward_case<double>(c);
    check_forward_case<float>(c);
  }
}

template <class T>
void check_predict_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto q = ref_tensor<T>(c["queries"], true), x = ref_tensor<T>(c["x_train"], true);
  auto v = ref_tensor<T>(c["values"], true);
  NWKernelRegression<T> net(q.shape()[1], case_widths(c), T(1));
  set_w(net, c["w"]);
  const Tensor<T> out = net.predict(q, x, v);
  EXPECT_TRUE(matches("out", out.value(), c["out"]));
  EXPECT_TRUE(matches("attention weights", net.attention_weights().value(), c["weights"]));
  out.backward(ref_array<T>(c["G"]));
  EXPECT_TRUE(matches("grad queries", q.grad(), c["grad_queries"]));
  EXPECT_TRUE(matches("grad x_train", x.grad(), c["grad_x_train"]));
  EXPECT_TRUE(matches("grad values", v.grad(), c["grad_values"]));
  EXPECT_TRUE(matches("grad w", net.w().grad(), c["grad_w"]));
}

TEST(NDReference, ModelPredict) {
  const json& cases = nd_reference().at("predict");
  ASSERT_EQ(cases.size(), 4u);
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["widths"].get<std::string>());
    check_predict_case<double>(c);
    check_predict_case<float>(c);
  }
}

template <class T>
void check_cross_entropy_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto logits = ref_tensor<T>(c["logits"], true);
  const auto kl = c["key_labels"].get<std::vector<std::vector<std::int64_t>>>();
  xt::xarray<std::int64_t> key_labels = xt::zeros<std::int64_t>(logits.shape());
  for (std::size_t i = 0; i < kl.size(); ++i)
    for (std::size_t j = 0; j < kl[i].size(); ++j) key_labels(i, j) = kl[i][j];
  const Tensor<T> loss = nw_cross_entropy(logits, key_labels, labels_of(c["labels"]));
  EXPECT_TRUE(matches("loss", loss.value(), c["out"]));
  loss.backward();
  EXPECT_TRUE(matches("grad logits", logits.grad(), c["grad_logits"]));
}

TEST(NDReference, CrossEntropyOfLogits) {
  const json& cases = nd_reference().at("cross_entropy");
  ASSERT_EQ(cases.size(), 2u);
  for (const json& c : cases) {
    check_cross_entropy_case<double>(c);
    check_cross_entropy_case<float>(c);
  }
}

// The whole training loss as the program builds it: keys and values (leave-one-out or all pairs),
// the model, and the squared or cross-entropy loss; gradients of w and of the training inputs.
template <class T>
void check_training_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto x = ref_tensor<T>(c["x_train"], true);
  const bool loo = c["leave_one_out"].get<bool>();
  const bool classification = c["task"] == "classification";
  std::vector<std::int64_t> labels;
  Tensor<T> values;
  if (classification) {
    labels = labels_of(c["labels"]);
    values = one_hot<T>(labels, 3);
  } else {
    values = ref_tensor<T>(c["values"]);
  }
  NWKernelRegression<T> net(x.shape()[1], case_widths(c), T(1));
  set_w(net, c["w"]);
  const auto [keys, vals] = training_keys_values(x, values, loo);
  const Tensor<T> p = net.forward(x, keys, vals);
  EXPECT_TRUE(matches("p", p.value(), c["p"]));
  const Tensor<T> loss =
      c["loss"] == "squared"
          ? squared_loss(p, values)
          : nw_cross_entropy(net.logits(), training_key_labels(labels, loo), labels);
  EXPECT_TRUE(matches("loss", loss.value(), c["out"]));
  loss.backward();
  EXPECT_TRUE(matches("grad w", net.w().grad(), c["grad_w"]));
  EXPECT_TRUE(matches("grad x_train", x.grad(), c["grad_x_train"]));
}

TEST(NDReference, TrainingLosses) {
  const json& cases = nd_reference().at("training");
  ASSERT_EQ(cases.size(), 7u);
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["widths"].get<std::string>() + ", " +
                 c["task"].get<std::string>() + ", " + c["loss"].get<std::string>() +
                 (c["leave_one_out"].get<bool>() ? ", leave-one-out" : ", all pairs"));
    check_training_case<double>(c);
    check_training_case<float>(c);
  }
}

template <class T>
void check_nonparametric_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  const NWResult<T> r = nadaraya_watson(
      ref_tensor<T>(c["x_train"]), ref_tensor<T>(c["values"]), ref_tensor<T>(c["x_query"]),
      kernel_from_string(c["kernel"].get<std::string>()), static_cast<T>(c["sigma"].get<double>()));
  EXPECT_EQ(r.empty_rows, 0u);
  EXPECT_TRUE(matches("weights", r.weights.value(), c["weights"]));
  EXPECT_TRUE(matches("y_hat", r.y_hat.value(), c["y_hat"]));
}

TEST(NDReference, NonparametricPooling) {
  const json& cases = nd_reference().at("nonparametric");
  ASSERT_EQ(cases.size(), 32u);  // d = 1, 2, 2, 3 x four kernels x two widths
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["kernel"].get<std::string>() + ", sigma " +
                 c["sigma"].dump());
    check_nonparametric_case<double>(c);
    check_nonparametric_case<float>(c);
  }
}

// --- float64 gradchecks -----------------------------------------------------------------------

// Uniform in [lo, hi), requires_grad as asked.
Tensor<double> uniform(std::mt19937& rng, const Shape& shape, double lo, double hi,
                       bool requires_grad = true) {
  std::uniform_real_distribution<double> d(lo, hi);
  xt::xarray<double> a = xt::zeros<double>(shape);
  for (auto& v : a) v = d(rng);
  return Tensor<double>(std::move(a), requires_grad);
}

// f's output times a fixed non-uniform tensor, summed: the backward rules see a non-uniform seed.
GradcheckFn weighted(GradcheckFn f, Tensor<double> g) {
  return [f = std::move(f), g](const std::vector<Tensor<double>>& in) { return sum(f(in) * g); };
}

struct NdShape {
  std::size_t d;
  Widths widths;
  std::size_t w_len() const { return widths == Widths::Shared ? 1 : d; }
  std::string str() const { return "d " + std::to_string(d) + ", " + to_string(widths); }
};
const NdShape kShapes[] = {{1, Widths::Shared}, {1, Widths::PerCoordinate},
                           {2, Widths::Shared}, {2, Widths::PerCoordinate},
                           {3, Widths::Shared}, {3, Widths::PerCoordinate}};

// nw_logits with the shift taken off again is -s / 2, in queries, keys and w, keys (n, m, d) and
// (m, d). (nw_logits alone treats x* as a constant: its own derivative in the nearest key misses
// the shift's, which no softmax sees; gradcheck of the logits alone would perturb x* too.)
TEST(NDGradcheck, LogitsWithoutTheShift) {
  std::mt19937 rng(1101);
  const std::size_t n = 3, m = 4;
  for (const NdShape& s : kShapes)
    for (bool per_query : {true, false}) {
      SCOPED_TRACE(s.str() + (per_query ? ", keys (n, m, d)" : ", keys (m, d)"));
      auto q = uniform(rng, {n, s.d}, -1, 1);
      auto k = per_query ? uniform(rng, {n, m, s.d}, -1, 1) : uniform(rng, {m, s.d}, -1, 1);
      auto w = uniform(rng, {s.w_len()}, 0.5, 1.5);
      const GradcheckFn f = [](const auto& in) {
        return nw_logits(in[0], in[1], in[2]) - nearest_shift(in[0], in[1], in[2]);
      };
      EXPECT_TRUE(gradcheck_passes(f, {q, k, w}));
      EXPECT_TRUE(gradcheck_passes(weighted(f, uniform(rng, {n, m}, -2, 2, false)), {q, k, w}));
    }
}

// softmax of nw_logits is softmax(-s / 2): the shift is a per-row constant. The
// nearest key's logit is exactly 0 and every other logit is <= 0; gradients through the softmax
// are exact (gradcheck, in queries, keys and w, keys (n, m, d) and (m, d)).
TEST(NWLogits, SameSoftmaxAndGradients) {
  std::mt19937 rng(1108);
  const std::size_t n = 3, m = 5;
  for (const NdShape& s : kShapes)
    for (bool per_query : {true, false}) {
      SCOPED_TRACE(s.str() + (per_query ? ", keys (n, m, d)" : ", keys (m, d)"));
      auto q = uniform(rng, {n, s.d}, -1, 1), w = uniform(rng, {s.w_len()}, 0.5, 1.5);
      auto k = per_query ? uniform(rng, {n, m, s.d}, -1, 1) : uniform(rng, {m, s.d}, -1, 1);
      const xt::xarray<double> shifted = nw_logits(q, k, w).value();
      const xt::xarray<double> plain = plain_logits(q, k, w).value();
      for (std::size_t i = 0; i < n; ++i) {
        double top = -1e300;
        for (std::size_t j = 0; j < m; ++j) top = std::max(top, shifted(i, j));
        EXPECT_EQ(top, 0.0) << "row " << i;
        for (std::size_t j = 0; j < m; ++j)  // the same logits up to the row's constant
          EXPECT_NEAR(shifted(i, j) - shifted(i, 0), plain(i, j) - plain(i, 0), 1e-12);
      }
      const GradcheckFn f = [](const auto& in) {
        return softmax(nw_logits(in[0], in[1], in[2]), 1);
      };
      EXPECT_TRUE(gradcheck_passes(weighted(f, uniform(rng, {n, m}, -2, 2, false)), {q, k, w}));
    }
}

// Passes when f throws std::invalid_argument naming every one of parts.
template <class F>
::testing::AssertionResult throws_naming(F&& f, const std::vector<std::string>& parts) {
  return throws_with_all<std::invalid_argument>(std::forward<F>(f), parts);
}

TEST(NWLogits, WrongShapesNameTheOpAndShapes) {
  const Tensor<double> q = zeros<double>({3, 2}), w2 = ones<double>({2});
  EXPECT_TRUE(throws_naming(
      [&] {
        nw_logits(q, zeros<double>({4, 3}), w2);
      },
      {"nw_logits", "queries (3, 2)", "keys (4, 3)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        nw_logits(q, zeros<double>({2, 4, 2}), w2);
      },
      {"nw_logits", "keys (2, 4, 2)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        nw_logits(q, zeros<double>({4, 2}), ones<double>({3}));
      },
      {"nw_logits", "w (3,)"}));
}

// A query far from the keys relative to their spacing: at q = (3000, 0), keys 1e-4 apart differ
// by about 0.3 in -s / 2 = -(q - k)^2 / 2 ~ -4.5e6, which float32 rounds to steps of 0.5: the plain
// logits lose the differences that decide the weights (the control below), the shifted ones keep
// them. Against a long double softmax(-s / 2) of the same float32 inputs; and a query so far
// (1e20) that s overflows float32: finite, all weight on the nearest key.
TEST(NWLogits, FarQueriesInFloat) {
  const xt::xarray<float> keys = {{0.f, 0.f}, {1e-4f, 0.f}, {2e-4f, 0.f}, {3e-4f, 0.f}};
  const xt::xarray<float> queries = {{3000.f, 0.f}, {-2500.f, 0.f}, {1e20f, 0.f}};
  NWKernelRegression<float> net(2, Widths::PerCoordinate, 1.f);
  const Tensor<float> y(xt::xarray<float>(xt::reshape_view(xt::arange<float>(1.f, 5.f), {4, 1})));
  NoGradGuard no_grad;
  const xt::xarray<float> f = net.predict(Tensor<float>(queries), Tensor<float>(keys), y).value();
  const xt::xarray<float> p = net.attention_weights().value();
  const xt::xarray<float> plain =
      softmax(plain_logits(Tensor<float>(queries), Tensor<float>(keys), net.w()), 1).value();
  double plain_error = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    long double s[4], top = -1e300L, z = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const long double a = static_cast<long double>(queries(i, 0)) - keys(j, 0);
      s[j] = -(a * a) / 2;
      top = std::max(top, s[j]);
    }
    for (std::size_t j = 0; j < 4; ++j) z += std::exp(s[j] - top);
    for (std::size_t j = 0; j < 4; ++j) {
      const double want = double(std::exp(s[j] - top) / z);
      EXPECT_NEAR(p(i, j), want, 1e-5) << "query " << i << " key " << j;
      plain_error = std::max(plain_error, std::abs(plain(i, j) - want));
    }
  }
  EXPECT_GT(plain_error, 0.05) << "control: the unshifted float32 logits should lose the weights";
  for (std::size_t j = 0; j < 4; ++j) EXPECT_TRUE(std::isfinite(p(2, j)));
  EXPECT_EQ(p(2, 3), 1.f);  // (3e-4, 0) is the key nearest to (1e20, 0)
  EXPECT_EQ(f(2, 0), 4.f);
}

// The model's forward and predict, in every input and in w (the gradcheck input replaces the
// model's w, so finite differences perturb it too).
TEST(NDGradcheck, ModelForwardAndPredict) {
  std::mt19937 rng(1102);
  const std::size_t n = 3, m = 4;
  for (const NdShape& s : kShapes)
    for (std::size_t C : {1u, 3u}) {
      SCOPED_TRACE(s.str() + ", C " + std::to_string(C));
      auto q = uniform(rng, {n, s.d}, -1, 1), w = uniform(rng, {s.w_len()}, 0.5, 1.5);
      auto k = uniform(rng, {n, m, s.d}, -1, 1), v = uniform(rng, {n, m, C}, -1, 1);
      const GradcheckFn forward = [s](const auto& in) {
        NWKernelRegression<double> net(s.d, s.widths, 1.0);
        net.w() = in[3];
        return net.forward(in[0], in[1], in[2]);
      };
      EXPECT_TRUE(gradcheck_passes(forward, {q, k, v, w}));
      EXPECT_TRUE(
          gradcheck_passes(weighted(forward, uniform(rng, {n, C}, -2, 2, false)), {q, k, v, w}));
      auto x = uniform(rng, {m, s.d}, -1, 1), vm = uniform(rng, {m, C}, -1, 1);
      const GradcheckFn predict = [s](const auto& in) {
        NWKernelRegression<double> net(s.d, s.widths, 1.0);
        net.w() = in[3];
        return net.predict(in[0], in[1], in[2]);
      };
      EXPECT_TRUE(
          gradcheck_passes(weighted(predict, uniform(rng, {n, C}, -2, 2, false)), {q, x, vm, w}));
    }
}

// The leave-one-out copies route each key's gradient back to its training input.
TEST(NDGradcheck, TrainingKeysValues) {
  std::mt19937 rng(1103);
  for (std::size_t d : {1u, 2u, 3u})
    for (bool loo : {true, false}) {
      SCOPED_TRACE("d " + std::to_string(d) + (loo ? ", leave-one-out" : ", all pairs"));
      const std::size_t n = 4, m = loo ? 3 : 4, C = 2;
      auto x = uniform(rng, {n, d}, -1, 1), v = uniform(rng, {n, C}, -1, 1);
      const GradcheckFn keys = [loo](const auto& in) {
        return training_keys_values(in[0], in[1], loo).first;
      };
      const GradcheckFn vals = [loo](const auto& in) {
        return training_keys_values(in[0], in[1], loo).second;
      };
      EXPECT_TRUE(gradcheck_passes(weighted(keys, uniform(rng, {n, m, d}, -2, 2, false)), {x, v}));
      EXPECT_TRUE(gradcheck_passes(weighted(vals, uniform(rng, {n, m, C}, -2, 2, false)), {x, v}));
    }
}

// The losses: the cross-entropy in its logits, and both losses end to end in w and x_train
// (regression with C = 1, classification with C = 3, leave-one-out and all pairs).
TEST(NDGradcheck, Losses) {
  std::mt19937 rng(1104);
  const std::vector<std::int64_t> labels = {0, 2, 1, 0, 1, 2, 2};
  const std::size_t n = labels.size();
  for (bool loo : {true, false}) {
    SCOPED_TRACE(loo ? "leave-one-out" : "all pairs");
    const auto key_labels = training_key_labels(labels, loo);
    auto logits = uniform(rng, {n, loo ? n - 1 : n}, -3, 3);
    EXPECT_TRUE(gradcheck_passes(
        [&](const auto& in) { return nw_cross_entropy(in[0], key_labels, labels); }, {logits}));
    for (const NdShape& s : kShapes) {
      SCOPED_TRACE(s.str());
      auto x = uniform(rng, {n, s.d}, -1.5, 1.5), w = uniform(rng, {s.w_len()}, 0.5, 1.5);
      const Tensor<double> onehot = one_hot<double>(labels, 3);
      const Tensor<double> y = uniform(rng, {n, 1}, -1, 1, false);
      for (int loss : {0, 1, 2}) {  // cross-entropy, squared (classes), squared (regression)
        const GradcheckFn f = [&, s, loss](const auto& in) {
          NWKernelRegression<double> net(s.d, s.widths, 1.0);
          net.w() = in[1];
          const Tensor<double>& values = loss == 2 ? y : onehot;
          const auto [k, v] = training_keys_values(in[0], values, loo);
          const Tensor<double> p = net.forward(in[0], k, v);
          return loss == 0 ? nw_cross_entropy(net.logits(), key_labels, labels)
                           : squared_loss(p, values);
        };
        EXPECT_TRUE(gradcheck_passes(f, {x, w})) << "loss " << loss;
      }
    }
  }
  auto p = uniform(rng, {4, 3}, 0, 1), t = uniform(rng, {4, 3}, 0, 1);
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return squared_loss(in[0], in[1]); }, {p, t}));
}

// Negative control: gradcheck must reject a wrong backward. Here the squared distances are built
// with w detached in one factor of the square, so the recorded gradient in w is half the truth.
TEST(NDGradcheck, RejectsAHalvedWidthGradient) {
  std::mt19937 rng(1105);
  auto q = uniform(rng, {3, 2}, -1, 1), k = uniform(rng, {4, 2}, -1, 1);
  auto w = uniform(rng, {2}, 0.5, 1.5);
  const GradcheckFn wrong = [](const auto& in) {
    const Tensor<double> diff = unsqueeze(in[0], 1) - unsqueeze(in[1], 0);
    return sum((diff * in[2]) * (diff * in[2].detach()), {-1});
  };
  EXPECT_FALSE(gradcheck(wrong, {q, k, w}).ok);
  // The same shape of computation written right passes.
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return plain_logits(in[0], in[1], in[2]); },
                               {q, k, w}));
}

// --- the cross-entropy's stability -----------------------------------------------------------

// Own-class logits -1e4 against 0 for the others: p_i[y_i] ~ exp(-1e4) underflows to 0, so the
// naive -log(p) is inf, but the stable form is finite and exact: log(#others) + 1e4 - log(#own).
TEST(NDCrossEntropy, FiniteWhenOwnClassLogitsAreHugelyNegative) {
  const std::vector<std::int64_t> labels = {0, 1};
  xt::xarray<std::int64_t> key_labels = {{0, 1, 1, 0}, {1, 0, 0, 0}};
  for (bool as_float : {false, true}) {
    SCOPED_TRACE(as_float ? "float32" : "float64");
    const xt::xarray<double> lv = {{-1e4, 0.0, 0.0, -1e4}, {-1e4, 0.0, 0.0, 0.0}};
    const double expected = (std::log(2.0) + 1e4 - std::log(2.0)) + (std::log(3.0) + 1e4);
    auto check = [&](auto zero) {
      using T = decltype(zero);
      auto logits = Tensor<T>(xt::xarray<T>(xt::cast<T>(lv)), true);
      // The naive route really does fail here.
      const xt::xarray<T> p = softmax(logits.detach(), 1).value();
      EXPECT_EQ(p(0, 0) + p(0, 3), T(0));
      const Tensor<T> loss = nw_cross_entropy(logits, key_labels, labels);
      ASSERT_TRUE(std::isfinite(loss.item()));
      EXPECT_NEAR(loss.item(), expected, expected * (as_float ? 1e-6 : 1e-14));
      loss.backward();
      for (T g : logits.grad()) EXPECT_TRUE(std::isfinite(g));
      // d/d logit of an own key: -(its share of the own class) + (its share of all) = -1/2 + 0.
      // (float: exp(self - result) with self = -1e4 and result = -1e4 + log 2 sees result rounded
      // to float's ulp at 1e4, 1e-3: the gradient is right to that, as in torch.)
      const double g_tol = as_float ? 2e-3 : 1e-12;
      EXPECT_NEAR(logits.grad()(0, 0), -0.5, g_tol);
      EXPECT_NEAR(logits.grad()(1, 1), 1.0 / 3, g_tol);  // another class: its softmax share
      EXPECT_NEAR(logits.grad()(1, 0), -1.0, g_tol);     // the only own key: -1 + ~0
    };
    if (as_float)
      check(0.0f);
    else
      check(0.0);
  }
}

// Where p does not underflow, the stable loss is -sum_i log p_i[y_i] with p the pooled one-hot
// probabilities of the model itself.
TEST(NDCrossEntropy, EqualsMinusLogOfPooledProbabilities) {
  std::mt19937 rng(1106);
  const std::vector<std::int64_t> labels = {0, 1, 2, 1, 0, 2, 1, 0};
  const std::size_t n = labels.size();
  auto x = uniform(rng, {n, 2}, -2, 2, false);
  NWKernelRegression<double> net(2, Widths::PerCoordinate, 1.3);
  const auto [k, v] = training_keys_values(x, one_hot<double>(labels, 3), true);
  const Tensor<double> p = net.forward(x, k, v);
  double naive = 0;
  for (std::size_t i = 0; i < n; ++i) naive -= std::log(p.value()(i, labels[i]));
  const double stable =
      nw_cross_entropy(net.logits(), training_key_labels(labels, true), labels).item();
  EXPECT_NEAR(stable, naive, 1e-12 * std::abs(naive));
}

TEST(NDCrossEntropy, RowWithoutItsOwnClassThrows) {
  const auto logits = zeros<double>({2, 2});
  xt::xarray<std::int64_t> key_labels = {{0, 1}, {0, 0}};
  try {
    nw_cross_entropy(logits, key_labels, {0, 1});
    FAIL() << "did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("row 1 (label 1)"), std::string::npos) << e.what();
  }
}

// --- d = 1 is the book's call ----------------------------------------------------------------

// The book's shapes, (n,), (n, m), (n, m), are the d = 1 case of (n, 1), (n, m, 1), (n, m, 1):
// predictions, weights and the gradient of w agree, for the book's constructor and for
// NWKernelRegression(1, ...), leave-one-out training layout included, and predict on (n, 1)
// queries is forward on the book's query_keys_values.
template <class T>
void check_agrees_with_1d(double rel) {
  Rng rng(7);
  const ChapterData c = make_chapter_data(rng);
  const std::size_t n = c.x_train.size();
  const Tensor<T> x1 = to_tensor<T>(c.x_train), y1 = to_tensor<T>(c.y_train);
  const Tensor<T> xd = reshape(x1, {static_cast<long>(n), 1});
  const Tensor<T> yd = reshape(y1, {static_cast<long>(n), 1});
  for (bool loo : {true, false}) {
    SCOPED_TRACE(loo ? "leave-one-out" : "all pairs");
    NWKernelRegression<T> one(T(1.7));
    NWKernelRegression<T> nd(1, loo ? Widths::Shared : Widths::PerCoordinate, T(1.7));
    const auto [k1, v1] = training_keys_values(x1, y1, loo);
    const auto [kd, vd] = training_keys_values(xd, yd, loo);
    const Tensor<T> f1 = one.forward(x1, k1, v1), fd = nd.forward(xd, kd, vd);
    EXPECT_TRUE(close_to("predictions", flat(fd.value()),
                         xt::xarray<double>(xt::cast<double>(f1.value())), rel));
    EXPECT_TRUE(close_to("weights", nd.attention_weights().value(),
                         xt::xarray<double>(xt::cast<double>(one.attention_weights().value())),
                         rel));
    sum(square(f1 - y1) * T(0.5)).backward();
    squared_loss(fd, yd).backward();
    EXPECT_TRUE(close_to("grad w", nd.w().grad(),
                         xt::xarray<double>(xt::cast<double>(one.w().grad())), rel * 10));
  }
  // Prediction on the chapter's queries, every training pair visible.
  NWKernelRegression<T> nd(1, Widths::Shared, T(1.7));
  NWKernelRegression<T> one(T(1.7));
  const Tensor<T> q1 = to_tensor<T>(c.x_query);
  const auto [kq, vq] = query_keys_values(x1, y1, q1.size());
  const Tensor<T> f1 = one.forward(q1, kq, vq);
  const Tensor<T> fd = nd.predict(reshape(q1, {-1, 1}), xd, yd);
  EXPECT_TRUE(close_to("query predictions", flat(fd.value()),
                       xt::xarray<double>(xt::cast<double>(f1.value())), rel));
}

TEST(NWDimensionOne, ParametricModel) {
  check_agrees_with_1d<double>(1e-12);
  check_agrees_with_1d<float>(2e-5);
}

// nadaraya_watson on (m, 1) inputs is nadaraya_watson on the book's (m,), for every kernel and
// width, including far queries (gaussian: all weight on the nearest key) and compact-kernel empty
// rows.
TEST(NWDimensionOne, NonparametricPooling) {
  Rng rng(8);
  const ChapterData c = make_chapter_data(rng);
  std::vector<double> qs = c.x_query;
  qs.push_back(40.0);
  qs.push_back(-25.0);
  const auto x1 = to_tensor<double>(c.x_train), y1 = to_tensor<double>(c.y_train);
  const auto q1 = to_tensor<double>(qs);
  const long m = static_cast<long>(c.x_train.size());
  for (Kernel k : {Kernel::Gaussian, Kernel::Boxcar, Kernel::Constant, Kernel::Epanechikov})
    for (double sigma : {0.05, 0.4, 2.0}) {
      SCOPED_TRACE(to_string(k) + ", sigma " + std::to_string(sigma));
      const NWResult<double> a = nadaraya_watson(x1, y1, q1, k, sigma);
      const NWResult<double> b =
          nadaraya_watson(reshape(x1, {m, 1}), reshape(y1, {m, 1}), reshape(q1, {-1, 1}), k, sigma);
      EXPECT_EQ(a.empty_rows, b.empty_rows);
      EXPECT_TRUE(close_to("weights", b.weights.value(), a.weights.value(), 1e-12));
      EXPECT_TRUE(close_to("y_hat", flat(b.y_hat.value()), a.y_hat.value(), 1e-12));
    }
}

// --- nonparametric pooling on vectors --------------------------------------------------------

// A query with no training input within sigma (compact kernels) takes its nearest input's value,
// or throws naming the query; the gaussian row of a far query puts all weight on the nearest
// input, finite in both dtypes.
TEST(NDNonparametric, EmptyRowsAndFarQueries) {
  const xt::xarray<double> xv = {{0.0, 0.0}, {1.0, 0.0}, {0.0, 2.0}};
  const xt::xarray<double> vv = {{1.0, 0.0}, {0.0, 1.0}, {0.5, 0.5}};
  const auto x = tensor<double>(xv), v = tensor<double>(vv);
  const auto q = tensor<double>({{0.2, 0.1}, {30.0, -1.0}, {0.5, 40.0}});
  for (Kernel k : {Kernel::Boxcar, Kernel::Epanechikov}) {
    const NWResult<double> r = nadaraya_watson(x, v, q, k, 1.0);
    EXPECT_EQ(r.empty_rows, 2u);
    EXPECT_EQ(r.weights.value()(1, 1), 1.0);
    EXPECT_EQ(r.weights.value()(2, 2), 1.0);
    EXPECT_EQ(r.y_hat.value()(1, 1), 1.0);
    try {
      nadaraya_watson(x, v, q, k, 1.0, EmptyRow::Throw);
      FAIL() << "did not throw";
    } catch (const std::domain_error& e) {
      EXPECT_NE(std::string(e.what()).find("query (30, -1)"), std::string::npos) << e.what();
    }
  }
  const NWResult<double> g = nadaraya_watson(x, v, q, Kernel::Gaussian, 1.0);
  EXPECT_NEAR(g.weights.value()(1, 1), 1.0, 1e-12);  // the next key is e^-29.5 behind
  EXPECT_NEAR(g.weights.value()(2, 2), 1.0, 1e-15);
  const NWResult<float> gf =
      nadaraya_watson(Tensor<float>(xt::xarray<float>(xt::cast<float>(xv))),
                      Tensor<float>(xt::xarray<float>(xt::cast<float>(vv))),
                      tensor<float>({{1000.0f, 0.0f}}), Kernel::Gaussian, 1.0f);
  for (float w : gf.weights.value()) EXPECT_TRUE(std::isfinite(w));
  EXPECT_EQ(gf.weights.value()(0, 1), 1.0f);
}

// The model's far queries: s = 1e6 (distance 1e3, w = 1) is far below the dtype's max, the row
// maximum is subtracted, and the weights are finite with all weight on the nearest key, in both
// dtypes.
TEST(NDNonparametric, ModelFarQueryIsFinite) {
  NWKernelRegression<float> net(2, Widths::PerCoordinate, 1.0f);
  const auto x = tensor<float>({{0.0f, 0.0f}, {1.0f, 1.0f}, {2.0f, 0.0f}});
  const auto v = tensor<float>({{1.0f}, {2.0f}, {3.0f}});
  const Tensor<float> f = net.predict(tensor<float>({{1000.0f, 1.0f}}), x, v);
  EXPECT_EQ(f.value()(0, 0), 3.0f);
  for (float w : net.attention_weights().value()) EXPECT_TRUE(std::isfinite(w));
}

// --- small pieces --------------------------------------------------------------------------

TEST(NDPieces, OneHotArgmaxAndWidthNames) {
  const Tensor<float> oh = one_hot<float>({2, 0, 1}, 3);
  EXPECT_EQ(oh.value(), (xt::xarray<float>{{0, 0, 1}, {1, 0, 0}, {0, 1, 0}}));
  try {
    one_hot<double>({0, 3}, 3);
    FAIL() << "did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("label 3 at index 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(one_hot<double>({-1}, 3), std::invalid_argument);
  // Ties go to the smallest label.
  const xt::xarray<double> p = {{0.2, 0.4, 0.4}, {0.5, 0.5, 0.0}, {0.1, 0.3, 0.6}, {1, 1, 1}};
  EXPECT_EQ(argmax_labels(p), (std::vector<std::int64_t>{1, 0, 2, 0}));
  EXPECT_THROW(argmax_labels(xt::xarray<double>({1.0, 2.0})), std::invalid_argument);
  for (Widths w : {Widths::Shared, Widths::PerCoordinate})
    EXPECT_EQ(widths_from_string(to_string(w)), w);
  EXPECT_THROW(widths_from_string("per_coordinate"), std::invalid_argument);
  // The model's w: (1,) or (d,), every coordinate w_init, named, a parameter.
  NWKernelRegression<double> shared(3, Widths::Shared, 2.5), per(3, Widths::PerCoordinate, 2.5);
  EXPECT_EQ(shared.w().shape(), (Shape{1}));
  EXPECT_EQ(per.w().value(), (xt::xarray<double>{2.5, 2.5, 2.5}));
  EXPECT_TRUE(per.w().requires_grad());
  EXPECT_EQ(per.w().name(), "w");
  EXPECT_EQ(per.parameters().size(), 1u);
  EXPECT_THROW(NWKernelRegression<double>(0, Widths::Shared, 1.0), std::invalid_argument);
}

// Leave-one-out layout: row i holds every row of x but row i, in order; labels the same way.
TEST(NDPieces, TrainingLayout) {
  const auto x = tensor<double>({{1, 10}, {2, 20}, {3, 30}});
  const auto v = tensor<double>({{7}, {8}, {9}});
  const auto [k, val] = training_keys_values(x, v, true);
  EXPECT_EQ(k.value(),
            (xt::xarray<double>{{{2, 20}, {3, 30}}, {{1, 10}, {3, 30}}, {{1, 10}, {2, 20}}}));
  xt::xarray<double> expected_values = {8, 9, 7, 9, 7, 8};
  expected_values.reshape({3, 2, 1});
  EXPECT_EQ(val.value(), expected_values);
  const auto [ka, va] = training_keys_values(x, v, false);
  EXPECT_EQ(ka.shape(), (Shape{3, 3, 2}));
  EXPECT_EQ(va.shape(), (Shape{3, 3, 1}));
  EXPECT_EQ(training_key_labels({4, 5, 6}, true),
            (xt::xarray<std::int64_t>{{5, 6}, {4, 6}, {4, 5}}));
  EXPECT_EQ(training_key_labels({4, 5}, false), (xt::xarray<std::int64_t>{{4, 5}, {4, 5}}));
  EXPECT_THROW(training_key_labels({4}, true), std::invalid_argument);
}

// --- wrong shapes: the message names the op and the shapes ----------------------------------

TEST(NDErrors, WrongShapesNameTheOpAndShapes) {
  const auto q = zeros<double>({3, 2}), k2 = zeros<double>({4, 2}), k3 = zeros<double>({3, 4, 2});
  const auto w1 = ones<double>({1}), w3 = ones<double>({3});
  const std::string wsd = "nw_logits";
  EXPECT_TRUE(throws_naming(
      [&] {
        nw_logits(q, zeros<double>({4, 3}), w1);
      },
      {wsd, "queries (3, 2)", "keys (4, 3)", "w (1,)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        nw_logits(q, zeros<double>({2, 4, 2}), w1);
      },
      {wsd, "keys (2, 4, 2)"}));
  EXPECT_TRUE(throws_naming([&] { nw_logits(q, k2, w3); }, {wsd, "w (3,)"}));
  EXPECT_TRUE(
      throws_naming([&] { nw_logits(zeros<double>({3}), k2, w1); }, {wsd, "queries", "(3,)"}));
  EXPECT_TRUE(throws_naming([&] { nw_logits(q, zeros<double>({2}), w1); }, {wsd, "keys (2,)"}));
  NWKernelRegression<double> net(2, Widths::PerCoordinate, 1.0);
  EXPECT_TRUE(throws_naming(
      [&] {
        net.forward(q, k3, zeros<double>({3, 5, 1}));
      },
      {"NWKernelRegression::forward", "keys (3, 4, 2)", "values (3, 5, 1)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        net.forward(q, k2, zeros<double>({3, 4, 1}));
      },
      {"NWKernelRegression::forward", "keys", "(4, 2)"}));
  NWKernelRegression<double> net3(3, Widths::PerCoordinate, 1.0);
  EXPECT_TRUE(throws_naming(
      [&] {
        net3.forward(q, k3, zeros<double>({3, 4, 1}));
      },
      {"NWKernelRegression::forward", "queries (3, 2)", "d = 3"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        net.predict(q, k2, zeros<double>({5, 1}));
      },
      {"NWKernelRegression::predict", "x_train (4, 2)", "values (5, 1)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        training_keys_values(k2, zeros<double>({3, 1}));
      },
      {"training_keys_values", "x_train (4, 2)", "values (3, 1)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        training_keys_values(zeros<double>({1, 2}), ones<double>({1, 1}));
      },
      {"training_keys_values", "at least 2"}));
  xt::xarray<std::int64_t> kl = xt::zeros<std::int64_t>({3, 3});
  EXPECT_TRUE(throws_naming(
      [&] {
        nw_cross_entropy(zeros<double>({3, 4}), kl, {0, 0, 0});
      },
      {"nw_cross_entropy", "logits (3, 4)", "key_labels (3, 3)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        squared_loss(zeros<double>({3, 2}), zeros<double>({3, 1}));
      },
      {"squared_loss", "(3, 2)", "(3, 1)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        nadaraya_watson(k2, zeros<double>({4, 1}), zeros<double>({2, 3}), Kernel::Gaussian);
      },
      {"nadaraya_watson", "x_train (4, 2)", "x_query (2, 3)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        nadaraya_watson(k2, zeros<double>({4, 1}), q, Kernel::Boxcar, 0.0);
      },
      {"nadaraya_watson", "sigma"}));
}

// --- training with SGD ---------------------------------------------------------------------

// Leave-one-out training learns which coordinate matters: y depends on x1 only, x2 is noise, and
// per-coordinate widths start equal. SGD on the squared loss lowers it, grows w1 and shrinks |w2|
// (the 2nd edition's exercise 2, in small).
TEST(NDTraining, PerCoordinateWidthsLearnToIgnoreAnIrrelevantCoordinate) {
  Rng rng(11);
  const std::size_t n = 60;
  xt::xarray<double> xv = xt::zeros<double>({n, std::size_t(2)});
  xt::xarray<double> yv = xt::zeros<double>({n, std::size_t(1)});
  for (std::size_t i = 0; i < n; ++i) {
    xv(i, 0) = 5 * rng.uniform();
    xv(i, 1) = 5 * rng.uniform();
    yv(i, 0) = 2 * std::sin(xv(i, 0)) + 0.1 * rng.normal();
  }
  const auto x = tensor<double>(xv), y = tensor<double>(yv);
  NWKernelRegression<double> net(2, Widths::PerCoordinate, 1.0);
  SGD<double> sgd(net.parameters(), 0.01);
  const auto [k, v] = training_keys_values(x, y, true);
  double first = 0, last = 0;
  for (int epoch = 0; epoch < 200; ++epoch) {
    sgd.zero_grad();
    const Tensor<double> loss = squared_loss(net.forward(x, k, v), y);
    loss.backward();
    sgd.step();
    (epoch == 0 ? first : last) = loss.item();
  }
  const xt::xarray<double> w = net.w().value();
  RecordProperty("loss_first_last_w1_w2", std::to_string(first) + " " + std::to_string(last) + " " +
                                              std::to_string(w(0)) + " " + std::to_string(w(1)));
  EXPECT_LT(last, 0.5 * first);
  EXPECT_GT(w(0), 1.0);
  EXPECT_LT(std::abs(w(1)), 0.5) << "w = " << w;
}

// Classification with the cross-entropy: two well-separated blobs in 3-D; SGD lowers the loss and
// the leave-one-out predictions (argmax of the pooled one-hot values) are all right.
TEST(NDTraining, CrossEntropyClassifiesTwoBlobs) {
  Rng rng(12);
  const std::size_t n = 40;
  std::vector<std::int64_t> labels(n);
  xt::xarray<double> xv = xt::zeros<double>({n, std::size_t(3)});
  for (std::size_t i = 0; i < n; ++i) {
    labels[i] = static_cast<std::int64_t>(i % 2);
    for (std::size_t k = 0; k < 3; ++k) xv(i, k) = (labels[i] ? 2.0 : -2.0) + rng.normal();
  }
  const auto x = tensor<double>(xv);
  const Tensor<double> onehot = one_hot<double>(labels, 2);
  const auto [k, v] = training_keys_values(x, onehot, true);
  const auto key_labels = training_key_labels(labels, true);
  NWKernelRegression<double> net(3, Widths::Shared, 0.2);
  SGD<double> sgd(net.parameters(), 0.01);
  double first = 0, last = 0;
  Tensor<double> p;
  for (int epoch = 0; epoch < 50; ++epoch) {
    sgd.zero_grad();
    p = net.forward(x, k, v);
    const Tensor<double> loss = nw_cross_entropy(net.logits(), key_labels, labels);
    loss.backward();
    sgd.step();
    (epoch == 0 ? first : last) = loss.item();
  }
  RecordProperty("loss_first_last_w", std::to_string(first) + " " + std::to_string(last) + " " +
                                          std::to_string(net.w().value()(0)));
  EXPECT_LT(last, first);
  EXPECT_EQ(argmax_labels(p.value()), labels);
}

// --- the readable path and the fused op, far from the examples ---------------------------------

// |a - b| <= rtol |b| + atol everywhere (a and b of one shape), naming the first offender.
template <class T>
::testing::AssertionResult near_all(const std::string& what, const xt::xarray<T>& a,
                                    const xt::xarray<T>& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return ::testing::AssertionFailure() << what << ": shapes differ";
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a.data()[i], y = b.data()[i];
    if (!(std::abs(x - y) <= rtol * std::abs(y) + atol))
      return ::testing::AssertionFailure() << what << "[" << i << "]: " << x << " vs " << y;
  }
  return ::testing::AssertionSuccess();
}

// One case: the composed model (predict, and forward on leave-one-out keys) against the fused op
// (forward_fused) in dtype T: outputs, and dL/dw for L = sum(f * g), g fixed.
template <class T>
void expect_fused_equals_composed(const xt::xarray<double>& x, const xt::xarray<double>& q,
                                  const xt::xarray<double>& v, const xt::xarray<double>& w0,
                                  double tol) {
  const Tensor<T> xt_{xt::xarray<T>(x)}, qt{xt::xarray<T>(q)}, vt{xt::xarray<T>(v)};
  NWKernelRegression<T> net(x.shape()[1], Widths::PerCoordinate, T(1));
  net.w() = Tensor<T>(xt::xarray<T>(w0), true);
  const Tensor<T> composed = net.predict(qt, xt_, vt);
  const Tensor<T> fused = net.forward_fused(qt, xt_, vt, false);
  EXPECT_TRUE(near_all("prediction", fused.value(), composed.value(), tol, tol));
  for (const T f : fused.value()) EXPECT_TRUE(std::isfinite(f));
  // Training: leave-one-out keys, dL/dw of a non-uniform L.
  auto [keys, values] = training_keys_values(xt_, vt, true);
  const Tensor<T> g{xt::xarray<T>(xt::xarray<double>(v * 0.7 + 0.3))};
  net.w().zero_grad();
  sum(net.forward(xt_, keys, values) * g).backward();
  const xt::xarray<T> grad_composed = net.w().grad();
  net.w().zero_grad();
  sum(net.forward_fused(xt_, xt_, vt, true) * g).backward();
  EXPECT_TRUE(near_all("dL/dw", net.w().grad(), grad_composed, tol,
                       tol * std::max<double>(1, xt::amax(xt::abs(grad_composed))())));
}

// Inputs scaled by 1e-6 .. 1e6 with widths from flat to sharp (x w from 0.3 to 300, where most
// weights underflow), queries 1e3 spans outside the data: the fused op and the composed model give
// the same numbers in both dtypes.
TEST(NDFusedAgreesWithComposed, AcrossScalesSharpWidthsAndFarQueries) {
  std::mt19937 rng(1109);
  for (double scale : {1e-6, 1e-3, 1.0, 1e3, 1e6})
    for (double sharpness : {0.3, 3.0, 30.0, 300.0}) {
      SCOPED_TRACE("scale " + std::to_string(scale) + ", x w ~ " + std::to_string(sharpness));
      const xt::xarray<double> x = uniform(rng, {9, 2}, 0, scale, false).value();
      xt::xarray<double> q = uniform(rng, {7, 2}, -0.2 * scale, 1.2 * scale, false).value();
      q(5, 0) = 1e3 * scale, q(6, 1) = -1e3 * scale;  // far outside the data
      const xt::xarray<double> v = uniform(rng, {9, 2}, -1, 1, false).value();
      const xt::xarray<double> w = {sharpness / scale, 0.5 * sharpness / scale};
      expect_fused_equals_composed<double>(x, q, v, w, 1e-9);
      expect_fused_equals_composed<float>(x, q, v, w, 2e-4);
    }
}

// --- the composed path at the ends of the float range ----------------------------------------

// Every array of one run, to compare two runs element by element.
template <class T>
using Arrays = std::vector<xt::xarray<T>>;

// Six 2-D points (x1 from kX6, x2 = column in every row), one-hot labels, three queries (one far):
// predict and its weights, the leave-one-out forward's dL/dw under the squared loss, the
// cross-entropy and its dL/dw, and the nonparametric gaussian estimate.
template <class T>
Arrays<T> constant_column_run(T column, Widths widths) {
  const std::vector<std::int64_t> labels = {0, 1, 0, 1, 1, 0};
  const std::vector<double> q1 = {0.5, 3.0, 50.0};
  xt::xarray<T> x = xt::zeros<T>({6, 2}), q = xt::zeros<T>({3, 2});
  for (std::size_t i = 0; i < 6; ++i) x(i, 0) = T(kX6[i]), x(i, 1) = column;
  for (std::size_t i = 0; i < 3; ++i) q(i, 0) = T(q1[i]), q(i, 1) = column;
  const Tensor<T> xs(x), qs(q), v = one_hot<T>(labels, 2);
  NWKernelRegression<T> net(2, widths, T(1.3));
  Arrays<T> out = {net.predict(qs, xs, v).value(), net.attention_weights().value()};
  const auto [k, vals] = training_keys_values(xs, v);
  squared_loss(net.forward(xs, k, vals), v).backward();
  out.push_back(net.w().grad());
  net.w().zero_grad();
  net.forward(xs, k, vals);
  const Tensor<T> ce = nw_cross_entropy(net.logits(), training_key_labels(labels), labels);
  ce.backward();
  out.push_back(ce.value());
  out.push_back(net.w().grad());
  out.push_back(nadaraya_watson(xs, v, qs, Kernel::Gaussian, T(0.7)).y_hat.value());
  return out;
}

// A coordinate equal in every row adds nothing to any distance, also at the top of the range
// (2e38 in float32, 1e308 in float64, where 2 q or (q - k)^2 would overflow): every number of the
// run is exactly what the same data give with that coordinate at 0, and finite.
template <class T>
void check_constant_column(T top) {
  for (Widths widths : {Widths::Shared, Widths::PerCoordinate}) {
    SCOPED_TRACE(dtype_name(T()) + std::string(", ") + to_string(widths));
    const Arrays<T> zero = constant_column_run(T(0), widths),
                    high = constant_column_run(top, widths);
    ASSERT_EQ(zero.size(), high.size());
    for (std::size_t a = 0; a < zero.size(); ++a) {
      EXPECT_EQ(high[a], zero[a]) << "array " << a;
      for (const T v : high[a]) EXPECT_TRUE(std::isfinite(v)) << "array " << a;
    }
  }
}

TEST(NWRange, ConstantColumnAtTheTopAddsNothing) {
  check_constant_column<float>(2e38f);
  check_constant_column<double>(1e308);
}

using LD = long double;

// The 1-D model at one query, in long double: f = sum_j p_j v_j with p = softmax_j(-(w d_j)^2 / 2),
// d_j = T(q - k_j) rounded as every path rounds it, and df/dw = sum_j p_j (v_j - f) (-w d_j^2).
template <class T>
std::pair<long double, long double> one_query_reference(T q, const std::vector<T>& k,
                                                        const std::vector<T>& v, T w) {
  std::vector<long double> logit;
  long double top = -INFINITY, z = 0, f = 0, df = 0;
  for (T key : k) top = std::max(top, logit.emplace_back(-std::pow(LD(T(q - key)) * w, 2) / 2));
  for (long double l : logit) z += std::exp(l - top);
  for (std::size_t j = 0; j < k.size(); ++j) f += std::exp(logit[j] - top) / z * v[j];
  for (std::size_t j = 0; j < k.size(); ++j)
    df += std::exp(logit[j] - top) / z * (v[j] - f) * -w * std::pow(LD(T(q - k[j])), 2);
  return {f, df};
}

// Widths far from 1 with inputs scaled the other way (keys {0, 1e30, 2e30} at w = 1e-30, and
// {0, 1e-30, 2e-30} at w = 1e30, float32): the scaled distances are about 1, and predict and the
// book's forward give f and df/dw of the long double reference (the squares of the inputs or of w
// alone would overflow or vanish).
TEST(NWRange, WidthsFarFromOneKeepValueAndGradient) {
  for (float scale : {1e30f, 1e-30f}) {
    SCOPED_TRACE("scale " + std::to_string(scale));
    const std::vector<float> k = {0.f, scale, 2 * scale}, v = {1.f, 2.f, 3.f};
    const float q = 0.9f * scale, w = 1 / scale;
    const auto [f, df] = one_query_reference(q, k, v, w);
    const Tensor<float> qs = tensor<float>({q}), ks = tensor<float>(xt::adapt(k));
    const Tensor<float> vs = tensor<float>(xt::adapt(v));
    for (bool book : {false, true}) {
      NWKernelRegression<float> net(w);
      const auto [kk, vv] = query_keys_values(ks, vs, 1);
      const Tensor<float> out = book ? net.forward(qs, kk, vv) : net.predict(qs, ks, vs);
      sum(out).backward();
      EXPECT_NEAR(out.value()(0), double(f), 1e-6 * 3) << (book ? "forward" : "predict");
      EXPECT_NEAR(net.w().grad()(0), double(df), 1e-4 * std::abs(double(df)))
          << (book ? "forward" : "predict");
    }
  }
}

// Widths past the square root of float32's largest value (|w| >= 1.8e19, where (x w)^2
// overflows): predict on 2-D inputs puts all weight on the nearest key, whose value it returns
// exactly, and dL/dw is finite (0: every other weight is 0 for every w near it).
TEST(NWRange, HugeWidthsPickTheNearestKey) {
  const xt::xarray<float> x = {{0.2f, 1.f}, {0.9f, -1.f}, {1.3f, 0.5f}, {2.6f, 2.f}};
  const xt::xarray<float> q = {{0.3f, 0.9f}, {2.5f, 1.5f}, {1.4f, 0.4f}, {-50.f, 40.f}};
  const std::size_t nearest[] = {0, 3, 2, 0};
  const Tensor<float> v = tensor<float>({10.f, 20.f, 30.f, 40.f});
  for (float w : {1e20f, -3e25f, 1e30f, 3e38f})
    for (Widths widths : {Widths::Shared, Widths::PerCoordinate}) {
      SCOPED_TRACE("w " + std::to_string(w) + ", " + to_string(widths));
      NWKernelRegression<float> net(2, widths, w);
      const Tensor<float> f = net.predict(Tensor<float>(q), Tensor<float>(x), v);
      sum(f).backward();
      for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(f.value()(i), v.value()(nearest[i])) << "query " << i;
        EXPECT_EQ(net.attention_weights().value()(i, nearest[i]), 1.f) << "query " << i;
      }
      for (float g : net.w().grad()) EXPECT_EQ(g, 0.f);
    }
}

// A query equidistant from two keys weighs them equally, exactly: f = 1.5 for values 1 and 2. In
// 2-D (one step from the query along either axis) and in 1-D (one step either side), at offsets
// s up to 3e8 and widths from 1 to past the square root of the dtype's largest value; through
// predict, the book's forward and the nonparametric gaussian.
template <class T>
void check_ties(double s, double w) {
  SCOPED_TRACE(std::string(dtype_name(T())) + ", s " + std::to_string(s) + ", w " +
               std::to_string(w));
  const T a = T(s), b = T(a + T(1)), v[] = {T(1), T(2)};
  const Tensor<T> values = tensor<T>(xt::xarray<T>({v[0], v[1]}));
  for (Widths widths : {Widths::Shared, Widths::PerCoordinate}) {
    NWKernelRegression<T> net(2, widths, T(w));
    const Tensor<T> f = net.predict(tensor<T>({{a, a}}), tensor<T>({{b, a}, {a, b}}), values);
    EXPECT_EQ(f.value()(0), T(1.5)) << "2-D, " << to_string(widths);
  }
  const Tensor<T> q = tensor<T>({a}), x = tensor<T>({T(a - T(1)), b});
  NWKernelRegression<T> net{T(w)};
  EXPECT_EQ(net.predict(q, x, values).value()(0), T(1.5)) << "1-D predict";
  const auto [keys, vals] = query_keys_values(x, values, 1);
  EXPECT_EQ(net(q, keys, vals).value()(0), T(1.5)) << "1-D forward";
  EXPECT_EQ(nadaraya_watson(x, values, q, Kernel::Gaussian, T(1 / w)).y_hat.value()(0), T(1.5));
}

TEST(NWRange, ExactTiesStayTies) {
  for (double s : {5001.3, 20001.7, 1e5, 3e8}) {
    for (double w : {1.0, 1e3, 1e20}) check_ties<float>(s, w);
    for (double w : {1.0, 1e3, 1e20, 1e160}) check_ties<double>(s, w);
  }
}

// --- labels and class counts are sizes ------------------------------------------------------

// A class count past kMaxClasses, or a label outside 0..kMaxClasses-1, is refused with
// std::invalid_argument naming the op and the limit, before anything is allocated.
TEST(NWLabels, HugeLabelsAndClassCountsAreRefusedByName) {
  const std::int64_t big = 1000000000000, top = std::numeric_limits<std::int64_t>::max();
  const std::string limit = std::to_string(kMaxClasses), last = std::to_string(kMaxClasses - 1);
  using E = std::invalid_argument;
  EXPECT_TRUE(throws_with_all<E>(
      [&] {
        one_hot<float>({0, big}, std::size_t(big) + 1);
      },
      {"one_hot", limit}));
  EXPECT_TRUE(throws_with_all<E>(
      [&] {
        one_hot<double>({0, 1}, std::size_t(1) << 62);
      },
      {"one_hot", limit}));
  EXPECT_TRUE(throws_with_all<E>(
      [&] {
        one_hot<double>({0, top}, 2);
      },
      {"one_hot", "label " + std::to_string(top), "index 1"}));
  EXPECT_TRUE(throws_with_all<E>([&] { one_hot<double>({0, 1}, 0); }, {"one_hot", limit}));
  EXPECT_TRUE(throws_with_all<E>(
      [&] {
        training_key_labels({0, big, 1});
      },
      {"training_key_labels", "label " + std::to_string(big), last}));
  xt::xarray<std::int64_t> key_labels = xt::zeros<std::int64_t>({2, 1});
  key_labels(0, 0) = top;
  EXPECT_TRUE(throws_with_all<E>(
      [&] {
        nw_cross_entropy(zeros<double>({2, 1}), key_labels, {0, top});
      },
      {"nw_cross_entropy", "label " + std::to_string(top), last}));
  // At the limit: the largest label of the largest class count is a class.
  const Tensor<float> edge = one_hot<float>({std::int64_t(kMaxClasses) - 1}, kMaxClasses);
  EXPECT_EQ(edge.value()(0, kMaxClasses - 1), 1.f);
}

}  // namespace
