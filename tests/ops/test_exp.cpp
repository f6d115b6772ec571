// The kernels' exp (ops/kernels/exp.h) against std::exp: ulp error over dense sweeps of the normal
// range in both dtypes, the special values, the flush-to-zero and overflow boundaries.
#include "ops/kernels/exp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace tapegrad {
namespace {

using kernels::exp_array;
using kernels::fast_exp;

// Distance in ulps between two non-negative finite values of the same type: their bit patterns
// are ordered like the values, so it is the difference of the patterns.
template <class T>
std::uint64_t ulp_distance(T a, T b) {
  using Bits = typename kernels::detail::ExpTraits<T>::Bits;
  Bits ua, ub;
  std::memcpy(&ua, &a, sizeof a);
  std::memcpy(&ub, &b, sizeof b);
  return ua > ub ? ua - ub : ub - ua;
}

// Largest ulp error of exp_array against std::exp over `count` evenly spaced points of [lo, hi]
// (through the array entry point, so the vectorised loop is what is measured).
template <class T>
std::uint64_t max_ulp_error(T lo, T hi, std::size_t count, T* worst_x) {
  std::vector<T> x(count), y(count);
  for (std::size_t i = 0; i < count; ++i)
    x[i] = lo + (hi - lo) * static_cast<T>(i) / static_cast<T>(count - 1);
  exp_array(x.data(), y.data(), count);
  std::uint64_t worst = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t d = ulp_distance(y[i], std::exp(x[i]));
    if (d > worst) {
      worst = d;
      *worst_x = x[i];
    }
  }
  return worst;
}

// Every float of [lo, hi] one by one (for the short ranges around the thresholds and 0).
std::uint64_t max_ulp_error_every_float(float lo, float hi, float* worst_x) {
  std::vector<float> x;
  for (float v = lo; v <= hi; v = std::nextafter(v, hi + 1)) x.push_back(v);
  std::vector<float> y(x.size());
  exp_array(x.data(), y.data(), x.size());
  std::uint64_t worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::uint64_t d = ulp_distance(y[i], std::exp(x[i]));
    if (d > worst) {
      worst = d;
      *worst_x = x[i];
    }
  }
  return worst;
}

// The normal range of the result: log(smallest normal) <= x <= log(largest finite).
TEST(KernelExp, FloatWithinOneUlpOverTheNormalRange) {
  float at = 0;
  // kMinArg: the smallest float whose exp is normal (std::log(FLT_MIN) rounds below it).
  const float lo = kernels::detail::ExpTraits<float>::kMinArg, hi = 88.7228f;
  EXPECT_LE(max_ulp_error<float>(lo, hi, 1 << 22, &at), 1u) << "at x = " << at;
  EXPECT_LE(max_ulp_error<float>(-1, 1, 1 << 20, &at), 1u) << "at x = " << at;
  // Near 0, and every float near the reduction's switch points n -> n + 1 (x = (k + 1/2) ln2) and
  // at both ends of the range.
  EXPECT_LE(max_ulp_error<float>(-1e-3f, 1e-3f, 1 << 20, &at), 1u) << "at x = " << at;
  EXPECT_LE(max_ulp_error_every_float(0.3465f, 0.3467f, &at), 1u) << "at x = " << at;
  EXPECT_LE(max_ulp_error_every_float(lo, -87.30f, &at), 1u) << "at x = " << at;
  EXPECT_LE(max_ulp_error_every_float(88.70f, 88.7228f, &at), 1u) << "at x = " << at;
}

TEST(KernelExp, DoubleWithinOneUlpOverTheNormalRange) {
  double at = 0;
  const double lo = kernels::detail::ExpTraits<double>::kMinArg, hi = 709.78;
  EXPECT_LE(max_ulp_error<double>(lo, hi, 1 << 22, &at), 1u) << "at x = " << at;
  EXPECT_LE(max_ulp_error<double>(-1, 1, 1 << 20, &at), 1u) << "at x = " << at;
  EXPECT_LE(max_ulp_error<double>(-1e-12, 1e-12, 1 << 16, &at), 1u) << "at x = " << at;
  EXPECT_LE(max_ulp_error<double>(lo, lo + 1e-9, 1 << 16, &at), 1u) << "at x = " << at;
  EXPECT_LE(max_ulp_error<double>(709.782712893383, 709.782712893384, 1 << 10, &at), 1u)
      << "at x = " << at;
}

// Runs fast_exp through exp_array, as the kernels do.
template <class T>
T exp_of(T x) {
  T y;
  exp_array(&x, &y, 1);
  return y;
}

template <class T>
void check_special_values() {
  using L = std::numeric_limits<T>;
  EXPECT_EQ(exp_of(T(0)), T(1));
  EXPECT_EQ(exp_of(-T(0)), T(1));
  EXPECT_EQ(exp_of(L::denorm_min()), T(1));
  EXPECT_EQ(exp_of(-L::min()), T(1));
  EXPECT_EQ(exp_of(L::infinity()), L::infinity());
  EXPECT_EQ(exp_of(L::max()), L::infinity());
  EXPECT_EQ(exp_of(T(1000)), L::infinity());
  EXPECT_EQ(exp_of(-L::infinity()), T(0));
  EXPECT_EQ(exp_of(-L::max()), T(0));
  EXPECT_FALSE(std::signbit(exp_of(-L::infinity())));  // +0, not -0
  EXPECT_TRUE(std::isnan(exp_of(L::quiet_NaN())));
  EXPECT_TRUE(std::isnan(exp_of(-L::quiet_NaN())));
  EXPECT_TRUE(std::isnan(exp_of(L::signaling_NaN())));
}

TEST(KernelExp, SpecialValuesFloat) {
  check_special_values<float>();
}
TEST(KernelExp, SpecialValuesDouble) {
  check_special_values<double>();
}

// Overflow: +inf exactly where std::exp overflows (the last finite argument and the next one).
template <class T>
void check_overflow_threshold(T last_finite) {
  const T first_inf = std::nextafter(last_finite, T(1e300 > 1 ? 1000 : 0));
  ASSERT_TRUE(std::isfinite(std::exp(last_finite)));
  ASSERT_TRUE(std::isinf(std::exp(first_inf)));
  EXPECT_LE(ulp_distance(exp_of(last_finite), std::exp(last_finite)), 1u);
  EXPECT_EQ(exp_of(first_inf), std::numeric_limits<T>::infinity());
}

TEST(KernelExp, OverflowThreshold) {
  check_overflow_threshold(88.7228317f);          // log(FLT_MAX) = 88.72283905...
  check_overflow_threshold(709.782712893383973);  // log(DBL_MAX) = 709.78271289338399...
}

// Flush to zero: the smallest argument whose exp is normal gives a normal result (within 1 ulp);
// the next one down gives +0 where std::exp gives a subnormal; everything down to -inf gives +0.
template <class T>
void check_flush_boundary() {
  using L = std::numeric_limits<T>;
  const T first_normal = kernels::detail::ExpTraits<T>::kMinArg;
  const T below = std::nextafter(first_normal, -L::infinity());
  ASSERT_GE(std::exp(first_normal), L::min());
  ASSERT_LT(std::exp(below), L::min());
  ASSERT_GT(std::exp(below), T(0));  // std::exp is subnormal there
  EXPECT_GE(exp_of(first_normal), L::min());
  EXPECT_LE(ulp_distance(exp_of(first_normal), std::exp(first_normal)), 1u);
  EXPECT_EQ(exp_of(below), T(0));
  // Every argument whose exp is subnormal or underflows in std::exp is +0 here.
  for (T x = below; x > T(-2) * -first_normal; x = x * T(1.001) - T(0.01))
    ASSERT_EQ(exp_of(x), T(0)) << "at x = " << x;
}

TEST(KernelExp, FlushToZeroBoundaryFloat) {
  check_flush_boundary<float>();
}
TEST(KernelExp, FlushToZeroBoundaryDouble) {
  check_flush_boundary<double>();
}

// The array helpers: every length (vector body and remainder), in place, and the shifted sum.
TEST(KernelExp, ArrayHelpersMatchTheScalarFunction) {
  for (std::size_t n = 0; n < 40; ++n) {
    std::vector<float> x(n), y(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = -3.0f + 0.37f * static_cast<float>(i);
    exp_array(x.data(), y.data(), n);
    float sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_EQ(y[i], fast_exp(x[i]));
      sum += fast_exp(x[i] - 2.0f);
    }
    std::vector<float> z(n);
    const float s = kernels::exp_shifted_sum(x.data(), 2.0f, z.data(), n);
    EXPECT_NEAR(s, sum, 1e-5f * sum);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(z[i], fast_exp(x[i] - 2.0f));
    exp_array(x.data(), x.data(), n);  // in place
    EXPECT_EQ(x, y);
  }
}

// fast_exp_nonpositive is fast_exp bit for bit wherever x <= 0: every float from a little below
// the flush threshold up to -0, a dense sweep of doubles down past theirs, in a vector loop as the
// kernels call it; and exp(0) = 1 for positive x, NaN for NaN, +0 for -inf.
template <class T>
void nonpositive_in_a_loop(const std::vector<T>& x, std::vector<T>& y) {
#pragma omp simd
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = kernels::fast_exp_nonpositive(x[i]);
}

TEST(KernelExp, NonpositiveIsFastExpBitForBitFloat) {
  // -0 down to -88.5 (kMinArg = -87.34) as bit patterns 0x80000000 upward: every 61st float
  // (1.8e7 of them, every exponent and spread over the mantissas), and every float within 2^16
  // patterns of the flush threshold.
  const float threshold = kernels::detail::ExpTraits<float>::kMinArg;
  std::uint32_t at_threshold;
  std::memcpy(&at_threshold, &threshold, sizeof threshold);
  std::vector<float> x;
  auto add = [&x](std::uint32_t b) {
    float v;
    std::memcpy(&v, &b, sizeof v);
    if (v >= -88.5f) x.push_back(v);
  };
  for (std::uint32_t b = 0x80000000u; b < 0xC2B10000u; b += 61) add(b);
  for (std::uint32_t b = at_threshold - (1u << 16); b < at_threshold + (1u << 16); ++b) add(b);
  std::vector<float> y(x.size());
  nonpositive_in_a_loop(x, y);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < x.size(); ++i) differ += ulp_distance(y[i], fast_exp(x[i])) != 0;
  EXPECT_EQ(differ, 0u) << "of " << x.size() << " floats";
}

TEST(KernelExp, NonpositiveIsFastExpBitForBitDouble) {
  std::vector<double> x;
  for (double v = -0.0; v > -720; v = v * 1.0001 - 1e-300) x.push_back(v);  // every magnitude
  for (int k = 0; k < 1 << 20; ++k) x.push_back(-720.0 * k / (1 << 20));    // evenly spread
  for (int k = 0; k < 1 << 16; ++k) x.push_back(-708.396418532264078 + 1e-13 * (k - (1 << 15)));
  std::vector<double> y(x.size());
  nonpositive_in_a_loop(x, y);
  for (std::size_t i = 0; i < x.size(); ++i)
    ASSERT_EQ(ulp_distance(y[i], fast_exp(x[i])), 0u) << "at x = " << x[i];
}

template <class T>
void check_nonpositive_special_values() {
  using L = std::numeric_limits<T>;
  const std::vector<T> x = {
      T(0),           -T(0),     L::denorm_min(), T(1), L::infinity(), -L::infinity(), -L::max(),
      L::quiet_NaN(), T(-1e-30), -L::quiet_NaN(), T(3)};
  std::vector<T> y(x.size());
  nonpositive_in_a_loop(x, y);
  EXPECT_EQ(y[0], T(1));
  EXPECT_EQ(y[1], T(1));
  EXPECT_EQ(y[2], T(1));  // positive: exp(0)
  EXPECT_EQ(y[3], T(1));
  EXPECT_EQ(y[4], T(1));
  EXPECT_EQ(y[5], T(0));
  EXPECT_FALSE(std::signbit(y[5]));
  EXPECT_EQ(y[6], T(0));
  EXPECT_TRUE(std::isnan(y[7]));
  EXPECT_EQ(y[8], T(1));
  EXPECT_TRUE(std::isnan(y[9]));
  EXPECT_EQ(y[10], T(1));
}

TEST(KernelExp, NonpositiveSpecialValues) {
  check_nonpositive_special_values<float>();
  check_nonpositive_special_values<double>();
}

}  // namespace
}  // namespace tapegrad
