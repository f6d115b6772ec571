// ops/dropout.h: dropout(x, p, training), drawing its masks from the manual_seed generator.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "autograd/random.h"
#include "ops/dropout.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

TEST(Dropout, DropsAboutPAndScalesTheRest) {
  manual_seed(1);
  const auto x = full<double>({200, 100}, 2.0);
  for (const double p : {0.1, 0.5, 0.8}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    const auto y = dropout(x, p).value();
    std::size_t zeros_seen = 0;
    for (const double v : y) {
      if (v == 0.0) {
        ++zeros_seen;
        continue;
      }
      EXPECT_DOUBLE_EQ(v, 2.0 / (1.0 - p));
    }
    // 20000 Bernoulli(p) draws: the fraction is within 4 standard deviations of p.
    const double fraction = static_cast<double>(zeros_seen) / static_cast<double>(y.size());
    EXPECT_NEAR(fraction, p, 4.0 * std::sqrt(p * (1 - p) / static_cast<double>(y.size())));
    EXPECT_NEAR(xt::mean(y)(), 2.0, 0.1);  // the expected output is the input
  }
}

TEST(Dropout, TheSameSeedDropsTheSameElements) {
  const auto x = ones<float>({8, 16});
  manual_seed(42);
  const auto a = dropout(x, 0.5f).value();
  const auto b = dropout(x, 0.5f).value();
  manual_seed(42);
  EXPECT_EQ(dropout(x, 0.5f).value(), a);
  EXPECT_NE(a, b);  // the generator moved on
  // One uniform per element in row-major order: the mask is rand(shape) < p.
  manual_seed(42);
  const xt::xarray<double> u = rand<double>({8, 16}).value();
  for (std::size_t i = 0; i < u.size(); ++i) EXPECT_EQ(a.data()[i] == 0.0f, u.data()[i] < 0.5);
}

TEST(Dropout, EvalModeAndZeroPReturnTheInput) {
  const auto x = tensor<double>(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  EXPECT_TRUE(dropout(x, 0.5, /*training=*/false).same(x));
  EXPECT_TRUE(dropout(x, 0.0).same(x));
  auto y = dropout(x, 1.0);  // everything dropped
  EXPECT_TRUE(all_close("p = 1", y.value(), xt::xarray<double>{0.0, 0.0, 0.0}));
  sum(y).backward();
  EXPECT_TRUE(all_close("grad at p = 1", x.grad(), xt::xarray<double>{0.0, 0.0, 0.0}));
}

// The gradient is the mask scaled by 1 / (1 - p): the same mask (seeded before each call), so
// gradcheck's finite differences see one function.
TEST(DropoutGradcheck, FixedMask) {
  std::mt19937 rng(271);
  for (const Shape& shape : {Shape{10}, Shape{3, 4, 2}, Shape{}}) {
    SCOPED_TRACE(shape_str(shape));
    auto x = uniform(rng, shape, -2.0, 2.0);
    auto f = [](const auto& in) {
      manual_seed(9);
      return dropout(in[0], 0.4, true);
    };
    EXPECT_TRUE(gradcheck_passes(f, {x}));
    EXPECT_TRUE(gradcheck_passes(weighted_sum(f, uniform(rng, shape, -2.0, 2.0, false)), {x}));
  }
}

TEST(DropoutErrors, ProbabilityOutsideTheUnitInterval) {
  auto x = zeros<double>({2, 3}).set_name("h");
  for (const double p : {-0.1, 1.5, std::nan("")})
    EXPECT_TRUE(throws_invalid_argument([&] { dropout(x, p); }, {"dropout", "p", "h (2, 3)"}));
  EXPECT_TRUE(
      throws_invalid_argument([] { dropout(Tensor<float>(), 0.5f); }, {"dropout", "undefined"}));
}

}  // namespace
}  // namespace tapegrad::test
