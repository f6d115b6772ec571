// Exercise 1 of the 2nd edition: Parzen-window decisions (the class of larger joint density
// p(x, y = c)) are Nadaraya-Watson classification decisions (the class of larger pooled
// probability p(c | x)), because p(x, y = c) = p(x) p(c | x) with p(x) > 0. Checked on two- and
// three-class data over a grid of queries and far queries, in both dtypes.
#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>
#include <xtensor/xarray.hpp>

#include "data/datasets.h"
#include "models/nadaraya_watson.h"
#include "models/parzen.h"

using namespace tapegrad;

namespace {

struct Labelled {
  xt::xarray<double> x;  // (n, 2)
  std::vector<std::int64_t> y;
};

// Points around `classes` centres on a circle, labelled by their centre, with overlap.
Labelled make_blobs(std::size_t n, std::size_t classes, std::uint64_t seed) {
  Rng rng(seed);
  Labelled data{xt::zeros<double>({n, std::size_t(2)}), {}};
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = i % classes;
    const double angle = 2 * M_PI * double(c) / double(classes);
    data.x(i, 0) = std::cos(angle) + 0.8 * rng.normal();
    data.x(i, 1) = std::sin(angle) + 0.8 * rng.normal();
    data.y.push_back(std::int64_t(c));
  }
  return data;
}

// A 25 x 25 grid over [-3, 3]^2 and queries far from every training input.
xt::xarray<double> make_queries() {
  std::vector<double> coords;
  for (int a = 0; a < 25; ++a)
    for (int b = 0; b < 25; ++b) coords.insert(coords.end(), {-3 + a * 0.25, -3 + b * 0.25});
  for (double far : {40.0, -75.0, 1e3, 1e6}) coords.insert(coords.end(), {far, 0.3 * far});
  xt::xarray<double> q = xt::zeros<double>({coords.size() / 2, std::size_t(2)});
  std::copy(coords.begin(), coords.end(), q.begin());
  return q;
}

// NW classification: nonparametric Gaussian pooling of one-hot labels, then argmax.
template <class T>
std::vector<std::int64_t> nw_decisions(const Labelled& data, std::size_t classes,
                                       const xt::xarray<double>& queries, double sigma) {
  const Tensor<T> x{xt::xarray<T>(data.x)}, q{xt::xarray<T>(queries)};
  const NWResult<T> r =
      nadaraya_watson(x, one_hot<T>(data.y, classes), q, Kernel::Gaussian, static_cast<T>(sigma));
  return decide<T>(r.y_hat.value());
}

template <class T>
void check_parzen_equals_nw(std::size_t classes, double sigma) {
  const Labelled data = make_blobs(60, classes, 3 + classes);
  const xt::xarray<double> queries = make_queries();
  const xt::xarray<T> x(data.x), q(queries);
  const auto nw = nw_decisions<T>(data, classes, queries, sigma);
  const auto parzen_log =
      decide<T>(parzen_log_joint_density<T>(x, data.y, classes, q, static_cast<T>(sigma)));
  const auto parzen = decide<T>(parzen_joint_density<T>(x, data.y, classes, q, T(sigma)));
  std::size_t undecided = 0, changes = 0;
  for (std::size_t i = 0; i < nw.size(); ++i) {
    ASSERT_GE(nw[i], 0) << "query " << i;
    EXPECT_EQ(parzen_log[i], nw[i]) << "query " << i;  // at every distance
    if (parzen[i] < 0) {
      ++undecided;  // both densities underflowed to 0
    } else {
      EXPECT_EQ(parzen[i], nw[i]) << "query " << i;
    }
    changes += i > 0 && i < 625 && nw[i] != nw[i - 1];
  }
  EXPECT_GT(changes, 5u) << "the grid must cross decision boundaries for the test to mean much";
  EXPECT_GE(undecided, 2u) << "far queries: the direct densities underflow, the log ones do not";
}

TEST(Parzen, TwoClassDecisionsAreNWDecisions) {
  check_parzen_equals_nw<double>(2, 0.5);
  check_parzen_equals_nw<float>(2, 0.5);
}

TEST(Parzen, ThreeClassDecisionsAreNWDecisions) {
  check_parzen_equals_nw<double>(3, 0.4);
  check_parzen_equals_nw<float>(3, 0.4);
}

// Negative control: a Parzen width other than NW's makes other decisions somewhere, so the
// equality above is not something any two classifiers of these data would show.
TEST(Parzen, OtherWidthDecidesOtherwise) {
  const Labelled data = make_blobs(60, 2, 5);
  const xt::xarray<double> queries = make_queries();
  const auto nw = nw_decisions<double>(data, 2, queries, 0.5);
  const auto parzen =
      decide<double>(parzen_log_joint_density<double>(data.x, data.y, 2, queries, 2.0));
  std::size_t differ = 0;
  for (std::size_t i = 0; i < nw.size(); ++i) differ += parzen[i] != nw[i];
  EXPECT_GT(differ, 0u);
}

// The density is a density: for a single training input it is the normal pdf; the log form agrees
// with the log of the direct one where that does not underflow.
TEST(Parzen, DensityValues) {
  const xt::xarray<double> x = {{0.0, 0.0}, {1.0, 2.0}};
  const xt::xarray<double> q = {{0.5, -0.5}, {30.0, 30.0}};
  const std::vector<std::int64_t> y = {0, 1};
  const double sigma = 0.7;
  const auto p = parzen_joint_density<double>(x, y, 2, q, sigma);
  const auto logp = parzen_log_joint_density<double>(x, y, 2, q, sigma);
  const double pdf0 = std::exp(-(0.25 + 0.25) / (2 * sigma * sigma)) / (2 * M_PI * sigma * sigma);
  EXPECT_NEAR(p(0, 0), pdf0 / 2, 1e-15);  // (1/n) k with n = 2
  EXPECT_NEAR(logp(0, 0), std::log(pdf0 / 2), 1e-12);
  EXPECT_NEAR(logp(0, 1), std::log(p(0, 1)), 1e-12);
  EXPECT_EQ(p(1, 0), 0.0);  // exp(-900 / 0.98) underflows
  EXPECT_NEAR(logp(1, 0),
              -(900.0 + 900.0) / (2 * sigma * sigma) + std::log(pdf0 / 2) +
                  (0.25 + 0.25) / (2 * sigma * sigma),
              1e-9);
  EXPECT_THROW(parzen_joint_density<double>(x, {0, 2}, 2, q, sigma), std::invalid_argument);
  EXPECT_THROW(parzen_log_joint_density<double>(x, y, 2, q, 0.0), std::invalid_argument);
}

}  // namespace
