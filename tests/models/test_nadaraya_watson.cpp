// The chapter's models: average pooling, nonparametric Nadaraya-Watson pooling with the four
// kernels of the 2nd edition, the leave-one-out keys/values, and NWKernelRegression (its shapes,
// its gradients by finite differences, and its training on the chapter's data).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <tuple>

#include "autograd/gradcheck_gtest.h"
#include "model_test_util.h"
#include "data/datasets.h"
#include "models/nadaraya_watson.h"
#include "optim/sgd.h"
#include "ops/attention.h"
#include "tapegrad.h"

using namespace tapegrad;
using namespace tapegrad::testutil;

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

}  // namespace

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
// The fused formulation (forward_fused, ops/attention.h)
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
