// ops/kernels/softmax.h against its oracle, the obvious xtensor expression
//   softmax(x)     = exp(x - max(x)) / sum(exp(x - max(x)))
//   log_softmax(x) = (x - max(x)) - log(sum(exp(x - max(x))))
// (and the backward formulas written the same way), over random shapes with the axis anywhere
// (strided columns as well as contiguous rows), odd lengths, magnitudes 1e-6 ... 1e6, ties and
// -inf masks, in both dtypes. Seeded; the seed and case are in every failure message.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xsort.hpp>

#include "ops/kernels/parallel.h"
#include "ops/kernels/softmax.h"

namespace tapegrad {
namespace {

template <class T>
struct Oracle {
  xt::xarray<T> x, y, log_y, log_y_terms;  // log_y_terms: the tolerance's scale
  std::size_t axis;
  Oracle(const xt::xarray<T>& logits, std::size_t ax) : x(logits), axis(ax) {
    // (Reductions are evaluated into arrays before broadcasting against x: xtensor 0.24.3's lazy
    // keep_dims reducers give wrong values inside a broadcast expression.)
    const xt::xarray<T> m = xt::amax(x, {axis}, xt::keep_dims);
    const xt::xarray<T> shifted = x - m;
    const xt::xarray<T> e = xt::exp(shifted);
    const xt::xarray<T> z = xt::sum(e, {axis}, xt::keep_dims);
    y = e / z;
    log_y = shifted - xt::log(z);
    // (+ 1: log z is only as exact as z, whose rounding error eps * z is an absolute error eps in
    // log z.)
    log_y_terms = xt::abs(shifted) + xt::log(z) + T(1);
  }
  // d/dx of sum(grad * softmax(x)) and of sum(grad * log_softmax(x)), and the size of the terms
  // they subtract (for the tolerance).
  xt::xarray<T> softmax_grad(const xt::xarray<T>& g) const {
    const xt::xarray<T> dot = xt::sum(g * y, {axis}, xt::keep_dims);
    return y * (g - dot);
  }
  xt::xarray<T> softmax_grad_terms(const xt::xarray<T>& g) const {
    const xt::xarray<T> dot = xt::sum(xt::abs(g) * y, {axis}, xt::keep_dims);
    return y * (xt::abs(g) + dot);
  }
  xt::xarray<T> log_softmax_grad(const xt::xarray<T>& g) const {
    const xt::xarray<T> gsum = xt::sum(g, {axis}, xt::keep_dims);
    return g - xt::exp(log_y) * gsum;
  }
  xt::xarray<T> log_softmax_grad_terms(const xt::xarray<T>& g) const {
    const xt::xarray<T> gsum = xt::sum(xt::abs(g), {axis}, xt::keep_dims);
    return xt::abs(g) + xt::exp(log_y) * gsum;
  }
};

// |kernel - oracle| <= rel * scale + abs, elementwise, scale = |oracle| unless given (the backward
// formulas subtract nearly equal terms; their error is relative to the terms, not the result).
// NaN must match NaN, an infinity the same infinity.
template <class T>
::testing::AssertionResult close(const char* what, const xt::xarray<T>& kernel,
                                 const xt::xarray<T>& oracle, double rel,
                                 const xt::xarray<T>* scale = nullptr) {
  const double abs_tol = 4 * std::numeric_limits<T>::min() / std::numeric_limits<T>::epsilon();
  for (std::size_t i = 0; i < oracle.size(); ++i) {
    const double k = kernel.data()[i], o = oracle.data()[i];
    const double sc = scale ? static_cast<double>(scale->data()[i]) : std::abs(o);
    if ((std::isnan(o) && std::isnan(k)) || k == o) continue;  // NaN, or the same infinity
    if (!(std::abs(k - o) <= rel * sc + abs_tol))
      return ::testing::AssertionFailure()
             << what << "[" << i << "]: kernel " << k << " oracle " << o;
  }
  return ::testing::AssertionSuccess();
}

template <class T>
AxisSplit axis_split_of(const xt::xarray<T>& a, std::size_t axis) {
  AxisSplit s;
  for (std::size_t i = 0; i < axis; ++i) s.outer *= a.shape()[i];
  s.len = a.shape()[axis];
  for (std::size_t i = axis + 1; i < a.dimension(); ++i) s.inner *= a.shape()[i];
  return s;
}

// Random logits: a scale 10^u (u in [-6, 6]), values scale * N(0, 1), some repeated (ties), some
// -inf (masked), never a whole slice of -inf (that case is tested on its own).
template <class T>
xt::xarray<T> random_logits(std::mt19937_64& rng, std::vector<std::size_t> shape) {
  std::uniform_real_distribution<double> u(-6, 6), coin(0, 1);
  std::normal_distribution<double> normal;
  const double scale = std::pow(10.0, u(rng));
  xt::xarray<T> x = xt::xarray<T>::from_shape(shape);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double c = coin(rng);
    x.data()[i] = static_cast<T>(c < 0.1 && i > 0 ? x.data()[i - 1] : scale * normal(rng));
    if (c > 0.95) x.data()[i] = -std::numeric_limits<T>::infinity();
  }
  return x;
}

template <class T>
void check_against_oracle(std::uint64_t seed, int cases, double rel) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> extent(1, 37), rank(1, 3);
  for (int c = 0; c < cases; ++c) {
    std::vector<std::size_t> shape(rank(rng));
    for (auto& e : shape) e = extent(rng);
    const std::size_t axis = std::uniform_int_distribution<std::size_t>(0, shape.size() - 1)(rng);
    xt::xarray<T> x = random_logits<T>(rng, shape);
    // Keep one finite logit per slice: put a finite value at position 0 of the axis.
    xt::xarray<T> g = random_logits<T>(rng, shape);
    for (auto& v : g)
      if (std::isinf(v)) v = T(1);
    const AxisSplit s = axis_split_of(x, axis);
    for (std::size_t o = 0; o < s.outer; ++o)
      for (std::size_t i = 0; i < s.inner; ++i) x.data()[o * s.len * s.inner + i] = T(0.5);
    SCOPED_TRACE("seed " + std::to_string(seed) + " case " + std::to_string(c) + " axis " +
                 std::to_string(axis) + " of rank " + std::to_string(shape.size()));
    const Oracle<T> oracle(x, axis);
    xt::xarray<T> y = xt::xarray<T>::from_shape(shape), d = y;
    kernels::softmax(x.data(), y.data(), s);
    ASSERT_TRUE(close("softmax", y, oracle.y, rel));
    kernels::softmax_backward(y.data(), g.data(), d.data(), s);
    const xt::xarray<T> terms = oracle.softmax_grad_terms(g);
    ASSERT_TRUE(close("softmax backward", d, oracle.softmax_grad(g), rel * 4, &terms));
    kernels::log_softmax(x.data(), y.data(), s);
    ASSERT_TRUE(close("log_softmax", y, oracle.log_y, rel, &oracle.log_y_terms));
    kernels::log_softmax_backward(y.data(), g.data(), d.data(), s);
    const xt::xarray<T> log_terms = oracle.log_softmax_grad_terms(g);
    ASSERT_TRUE(close("log_softmax backward", d, oracle.log_softmax_grad(g), rel * 4, &log_terms));
  }
}

TEST(SoftmaxKernel, MatchesTheXtensorOracleFloat) {
  check_against_oracle<float>(1, 400, 2e-5);
}
TEST(SoftmaxKernel, MatchesTheXtensorOracleDouble) {
  check_against_oracle<double>(2, 400, 1e-13);
}

// Large rows: the parallel split and the vector loops' remainders (lengths around the lane count).
TEST(SoftmaxKernel, LongRowsAndColumnsFloat) {
  std::mt19937_64 rng(3);
  for (std::size_t len : {63u, 64u, 65u, 4001u}) {
    for (std::size_t axis : {0u, 1u}) {
      xt::xarray<float> x = random_logits<float>(rng, {len, 33});
      for (std::size_t j = 0; j < 33; ++j) x(0, j) = 1;   // one finite logit per column
      for (std::size_t i = 0; i < len; ++i) x(i, 0) = 1;  // and per row
      const Oracle<float> oracle(x, axis);
      xt::xarray<float> y = xt::xarray<float>::from_shape(x.shape());
      kernels::softmax(x.data(), y.data(), axis_split_of(x, axis));
      EXPECT_TRUE(close("softmax", y, oracle.y, 1e-4)) << "len " << len << " axis " << axis;
    }
  }
}

// softmax_row, the entry point of the fused op: an all -inf row gives NaN (as PyTorch: there is no
// distribution over nothing); a -inf among finite logits gets weight 0; [1000, 0] and
// [-1000, -1001] are finite.
template <class T>
void check_special_rows() {
  const T inf = std::numeric_limits<T>::infinity();
  T out[3];
  const T all_masked[3] = {-inf, -inf, -inf};
  kernels::softmax_row(all_masked, out, 3);
  for (T v : out) EXPECT_TRUE(std::isnan(v));
  const T masked[3] = {T(1), -inf, T(1)};
  kernels::softmax_row(masked, out, 3);
  EXPECT_EQ(out[0], T(0.5));
  EXPECT_EQ(out[1], T(0));
  EXPECT_EQ(out[2], T(0.5));
  const T big[2] = {T(1000), T(0)};
  kernels::softmax_row(big, out, 2);
  EXPECT_EQ(out[0], T(1));
  EXPECT_EQ(out[1], T(0));
  const T nan_row[3] = {T(0), std::numeric_limits<T>::quiet_NaN(), T(1)};
  kernels::softmax_row(nan_row, out, 3);
  for (T v : out) EXPECT_TRUE(std::isnan(v));
  const T low[2] = {T(-1000), T(-1001)};
  kernels::log_softmax_row(low, out, 2);
  EXPECT_NEAR(out[0], -0.31326168751822286, 1e-6);
  EXPECT_NEAR(out[1], -1.3132616875182228, 1e-6);
}

TEST(SoftmaxKernel, SpecialRowsFloat) {
  check_special_rows<float>();
}
TEST(SoftmaxKernel, SpecialRowsDouble) {
  check_special_rows<double>();
}

// kernels::FlushDenormals: subnormal results are 0 inside its scope only. A softmax entry that
// would be subnormal (exp(-87.3) = 1.2e-38, halved by a row sum of 2) is 0, and the caller's
// floating-point mode is the same after the kernel as before (a subnormal product stays one).
TEST(SoftmaxKernels, FlushToZeroOnlyInsideTheKernel) {
  volatile float tiny = 1e-30f, small = 1e-10f;  // volatile: computed at run time
  ASSERT_GT(tiny * small, 0.0f);                 // 1e-40, subnormal
  {
    const kernels::FlushDenormals flush;
#ifdef TAPEGRAD_HAS_MXCSR
    EXPECT_EQ(tiny * small, 0.0f);
#endif
  }
  EXPECT_GT(tiny * small, 0.0f);
  const std::vector<float> logits = {0.0f, 0.0f, -87.3f, -1.0f};
  std::vector<float> y(logits.size());
  kernels::softmax(logits.data(), y.data(), AxisSplit{1, logits.size(), 1});
  const float expected_tiny = std::exp(-87.3f) / (2 + std::exp(-1.0f));  // subnormal
  ASSERT_LT(expected_tiny, std::numeric_limits<float>::min());
#ifdef TAPEGRAD_HAS_MXCSR
  EXPECT_EQ(y[2], 0.0f);
#else
  EXPECT_LE(y[2], std::numeric_limits<float>::min());
#endif
  EXPECT_FLOAT_EQ(y[0], 1 / (2 + std::exp(-1.0f)));
  EXPECT_GT(tiny * small, 0.0f);  // the mode is the caller's again
}

}  // namespace
}  // namespace tapegrad
