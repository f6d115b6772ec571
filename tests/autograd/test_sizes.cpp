// Sizes the library must refuse before allocating (autograd/tensor.h, checked_numel): shapes whose
// element count overflows std::size_t, or needs more bytes than one allocation can hold, and
// factory bounds that are not numbers. Each error names the factory and the shape.
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>

#include <gtest/gtest.h>

#include "autograd/tensor.h"
#include "tapegrad.h"
#include "throws_with.h"

using namespace tapegrad;

namespace {

constexpr std::size_t k2to32 = std::size_t(1) << 32;
constexpr std::size_t k2to62 = std::size_t(1) << 62;
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

TEST(CheckedNumel, CountsElements) {
  EXPECT_EQ(checked_numel("op", {}, 8), 1u);  // a scalar
  EXPECT_EQ(checked_numel("op", {2, 3, 4}, 8), 24u);
  EXPECT_EQ(checked_numel("op", {0, k2to62, k2to62}, 8), 0u);  // a size-0 axis: nothing to hold
}

// (2^32, 2^32) has 2^64 elements: the product wraps around to 0 in std::size_t.
TEST(CheckedNumel, OverflowNamesTheOpAndTheShape) {
  EXPECT_TRUE(throws_with<std::length_error>(
      [] {
        checked_numel("repeat", {k2to32, k2to32}, 4);
      },
      "repeat: shape (4294967296, 4294967296)"));
  EXPECT_TRUE(throws_with<std::length_error>(
      [] {
        checked_numel("reshape", {3, k2to62, 5}, 1);
      },
      "std::size_t"));
}

// 2^62 doubles are 2^65 bytes: countable, but more than any allocation (PTRDIFF_MAX bytes).
TEST(CheckedNumel, MoreBytesThanOneAllocationCanHold) {
  EXPECT_TRUE(throws_with<std::length_error>([] { checked_numel("bmm", {k2to62}, 8); },
                                             "bmm: shape (4611686018427387904,)"));
  // 2^62 bytes is under what one allocation may hold, but more than any machine has.
  EXPECT_TRUE(throws_with<std::length_error>([] { checked_numel("bmm", {k2to62}, 1); },
                                             "more than this machine's memory"));
  EXPECT_EQ(checked_numel("bmm", {1000, 1000}, 8), 1000000u);
}

TEST(FactorySizes, OverflowingShapesThrowNamingTheFactory) {
  EXPECT_TRUE(throws_with<std::length_error>(
      [] {
        zeros<double>({k2to32, k2to32});
      },
      "zeros: shape (4294967296, 4294967296)"));
  EXPECT_TRUE(throws_with<std::length_error>([] { ones<float>({k2to32, k2to32, 2}); }, "ones"));
  EXPECT_TRUE(throws_with<std::length_error>(
      [] {
        full<double>({k2to32, k2to32}, 1.0);
      },
      "full: shape"));
  EXPECT_TRUE(throws_with<std::length_error>([] { eye<double>(k2to32); },
                                             "eye: shape (4294967296, 4294967296)"));
}

TEST(FactorySizes, ShapesBeyondOneAllocationThrowNamingTheFactory) {
  EXPECT_TRUE(throws_with<std::length_error>([] { zeros<double>({k2to62}); },
                                             "zeros: shape (4611686018427387904,)"));
  EXPECT_TRUE(throws_with<std::length_error>([] { zeros<float>({k2to62}); }, "zeros"));
  EXPECT_TRUE(throws_with<std::length_error>([] { arange<double>(0.0, 1e30); }, "arange"));
  EXPECT_TRUE(throws_with<std::length_error>([] { arange<float>(0.0f, 1.0f, 1e-30f); }, "arange"));
}

// Size-0 axes are fine however large the others: nothing is allocated.
TEST(FactorySizes, SizeZeroWithHugeExtentsIsEmpty) {
  EXPECT_EQ(zeros<double>({0, k2to62}).size(), 0u);
  EXPECT_EQ(ones<float>({k2to32, 0, k2to32}).size(), 0u);
}

TEST(FactoryBounds, ArangeRejectsNonFiniteBoundsAndStep) {
  EXPECT_TRUE(throws_with<std::invalid_argument>([] { arange<double>(0.0, kNaN); },
                                                 "arange: bounds must be finite"));
  EXPECT_TRUE(throws_with<std::invalid_argument>([] { arange<double>(kNaN, 1.0); }, "arange"));
  EXPECT_TRUE(throws_with<std::invalid_argument>([] { arange<double>(0.0, kInf); }, "arange"));
  EXPECT_TRUE(throws_with<std::invalid_argument>(
      [] { arange<float>(0.0f, std::numeric_limits<float>::quiet_NaN()); }, "arange"));
  EXPECT_TRUE(throws_with<std::invalid_argument>([] { arange<double>(0.0, 1.0, kNaN); },
                                                 "arange: step must be finite and non-zero"));
  EXPECT_TRUE(throws_with<std::invalid_argument>([] { arange<double>(0.0, 1.0, 0.0); }, "step"));
  EXPECT_TRUE(throws_with<std::invalid_argument>([] { arange<double>(0.0, 1.0, -kInf); }, "step"));
}

// Ops that allocate an output larger than their input (repeat, repeat_interleave) and the random
// factories check the same way: an extent that wraps, a product that overflows, or more bytes than
// the machine has all name the op, never a silent empty tensor or a bare std::bad_alloc.
TEST(OpSizes, RepeatAndRandomFactoriesNameThemselves) {
  const Tensor<double> x(xt::xarray<double>{1.0, 2.0});
  EXPECT_TRUE(throws_with<std::length_error>([&] { repeat(x, {k2to62, 4}); }, "repeat"));
  EXPECT_TRUE(throws_with<std::length_error>([&] { repeat(x, {std::size_t(1) << 40}); },
                                             "more than this machine's memory"));
  EXPECT_TRUE(
      throws_with<std::length_error>([&] { repeat_interleave(x, k2to62); }, "repeat_interleave"));
  EXPECT_TRUE(throws_with<std::length_error>([] { randn<double>({k2to32, k2to32}); }, "randn"));
  EXPECT_TRUE(throws_with<std::length_error>([] { rand<float>({k2to62}); }, "rand"));
  EXPECT_TRUE(throws_with<std::length_error>(
      [] {
        randint<double>(0, 3, {k2to32, k2to32});
      },
      "randint"));
  EXPECT_EQ(repeat(x, {3, 2}).size(), 12u);  // ordinary sizes are untouched
}

// The ordinary cases still give torch's counts, including an empty range.
TEST(FactoryBounds, ArangeCountsAsTorch) {
  EXPECT_EQ(arange<float>(0.0f, 5.0f, 0.1f).size(), 50u);
  EXPECT_EQ(arange<double>(5.0, 0.0).size(), 0u);
  EXPECT_EQ(arange<double>(5.0, 0.0, -2.0).size(), 3u);  // 5, 3, 1
  EXPECT_DOUBLE_EQ(arange<double>(5.0, 0.0, -2.0).value()(2), 1.0);
}

}  // namespace
