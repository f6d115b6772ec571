// ops/kernels/elementwise.h's broadcasts against their oracle, xtensor's own broadcast: zip (every
// path: equal shapes, one element, rows, columns, outer, and the general collapsed row loop) and
// broadcast_to, over random shape pairs of rank 0..4 with extents 0..5 (ones where a broadcast
// repeats), both dtypes, sizes on both sides of the parallel threshold. Bit-for-bit: each output
// element is f of the same two inputs. Seeded; the case is in every failure message.
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <xtensor/xarray.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xrandom.hpp>

#include "ops/kernels/elementwise.h"

namespace tapegrad {
namespace {

// A pair of shapes that broadcast together: a result shape, and each operand's extents kept or set
// to 1 at random, with leading axes dropped at random.
struct ShapePair {
  Shape a, b, s;
};

ShapePair random_pair(std::mt19937& rng, std::size_t max_extent) {
  const std::size_t rank = rng() % 5;
  Shape s(rank);
  for (auto& e : s) e = rng() % (max_extent + 1);
  auto operand = [&] {
    Shape x = s;
    for (auto& e : x)
      if (rng() % 2) e = 1;
    x.erase(x.begin(), x.begin() + static_cast<long>(rng() % (rank + 1)));
    return x;
  };
  ShapePair p{operand(), operand(), Shape{}};
  p.s = broadcast_shapes("test", p.a, p.b);
  return p;
}

std::string str(const ShapePair& p) {
  return shape_str(p.a) + " with " + shape_str(p.b) + " -> " + shape_str(p.s);
}

template <class T>
xt::xarray<T> random_array(const Shape& s, std::mt19937& rng) {
  std::vector<std::size_t> shape(s.begin(), s.end());
  xt::xarray<T> x = xt::xarray<T>::from_shape(shape);
  std::uniform_real_distribution<double> u(-1e3, 1e3);
  for (auto& v : x) v = static_cast<T>(u(rng));
  return x;
}

template <class T>
void check_broadcasts(std::size_t max_extent, int cases) {
  std::mt19937 rng(20261207);
  for (int c = 0; c < cases; ++c) {
    const ShapePair p = random_pair(rng, max_extent);
    const xt::xarray<T> a = random_array<T>(p.a, rng), b = random_array<T>(p.b, rng);
    const std::vector<std::size_t> s(p.s.begin(), p.s.end());
    const xt::xarray<T> ab = xt::broadcast(a, s), bb = xt::broadcast(b, s);
    const auto f = [](T x, T y) { return x - y; };  // antisymmetric: a swapped operand shows
    const xt::xarray<T> expected = ab - bb;
    const xt::xarray<T> got = kernels::zip(a, b, f);
    ASSERT_EQ(got.shape(), expected.shape()) << str(p);
    for (std::size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got.data()[i], expected.data()[i]) << str(p) << " at flat index " << i;
    if (p.s.empty()) continue;
    const xt::xarray<T> a_to = kernels::broadcast_to(a, p.a, p.s);
    for (std::size_t i = 0; i < a_to.size(); ++i)
      ASSERT_EQ(a_to.data()[i], ab.data()[i]) << "broadcast_to " << str(p) << " at " << i;
  }
}

TEST(BroadcastKernels, ZipAndBroadcastToMatchXtensorSmall) {
  check_broadcasts<float>(5, 3000);
  check_broadcasts<double>(5, 3000);
}

// Extents up to 60: results past kParallelGrain (2^15) elements run split across threads.
TEST(BroadcastKernels, ZipAndBroadcastToMatchXtensorLarge) {
  check_broadcasts<float>(60, 60);
  check_broadcasts<double>(60, 60);
}

// The layouts the models make: (n, 1, d) against (1, m, d) and (n, m, 1) against (1, m, 1).
TEST(BroadcastKernels, QueriesAgainstKeys) {
  std::mt19937 rng(7);
  for (const ShapePair& p : {ShapePair{{40, 1, 3}, {1, 900, 3}, {40, 900, 3}},
                             ShapePair{{300, 1, 1}, {1, 299, 1}, {300, 299, 1}},
                             ShapePair{{300, 299, 1}, {300, 1, 1}, {300, 299, 1}}}) {
    const xt::xarray<double> a = random_array<double>(p.a, rng), b = random_array<double>(p.b, rng);
    const std::vector<std::size_t> s(p.s.begin(), p.s.end());
    const xt::xarray<double> expected = xt::broadcast(a, s) - xt::broadcast(b, s);
    EXPECT_EQ(kernels::zip(a, b, [](double x, double y) { return x - y; }), expected) << str(p);
  }
}

}  // namespace
}  // namespace tapegrad
