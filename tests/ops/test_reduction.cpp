// ops/reduction.h: sum and mean (everything or over axes, keepdims) and max over one axis.
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "ops/reduction.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

// --- PyTorch reference ----------------------------------------------------------------------

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const json& args = c.at("args");
  const bool over_axes = args.contains("axes");
  if (op == "sum")
    return over_axes ? sum(in[0], longs(args, "axes"), args.at("keepdims").get<bool>())
                     : sum(in[0]);
  if (op == "mean")
    return over_axes ? mean(in[0], longs(args, "axes"), args.at("keepdims").get<bool>())
                     : mean(in[0]);
  if (op == "max") return max(in[0], args.at("axis").get<long>(), args.at("keepdims").get<bool>());
  throw std::runtime_error("test_reduction: no dispatch for op " + op);
}

TAPEGRAD_TORCH_REFERENCE_TESTS(ReductionTorch, "reduction")

// Shapes that torch produces, stated directly (the reference compares shapes too, but these read
// as documentation of the keepdims / negative-axis conventions).
TEST(ReductionShapes, FollowTorchConventions) {
  const auto x = zeros<double>({2, 3, 4});
  EXPECT_EQ(sum(x).shape(), Shape{});
  EXPECT_EQ(sum(x, {1}).shape(), (Shape{2, 4}));
  EXPECT_EQ(sum(x, {1}, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(sum(x, {-1, 0}).shape(), Shape{3});
  EXPECT_EQ(sum(x, {}).shape(), Shape{});  // an empty axis list reduces everything
  EXPECT_EQ(mean(x, {-2}, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(max(x, -1).shape(), (Shape{2, 3}));
  EXPECT_EQ(max(x, 0, true).shape(), (Shape{1, 3, 4}));
}

// With ties, torch.max(dim) returns the first maximal index and its backward routes the whole
// gradient there; sending it to every tied element (or splitting it) would double-count.
TEST(ReductionMax, TiesSendTheGradientToTheFirstMaximum) {
  auto x = tensor<double>({{1.0, 3.0, 3.0}, {2.0, 2.0, 0.0}, {4.0, 4.0, 4.0}}, true);
  auto m = max(x, 1);
  EXPECT_TRUE(all_close("max", m.value(), xt::xarray<double>({3.0, 2.0, 4.0})));
  m.backward(xt::xarray<double>({1.0, 10.0, 100.0}));
  const xt::xarray<double> expected = {{0.0, 1.0, 0.0}, {10.0, 0.0, 0.0}, {100.0, 0.0, 0.0}};
  EXPECT_TRUE(all_close("grad", x.grad(), expected));
}

// --- gradcheck ------------------------------------------------------------------------------

TEST(ReductionGradcheck, SumAndMeanOverAllAndOverAxes) {
  std::mt19937 rng(21);
  const std::vector<std::vector<long>> axis_lists = {{0}, {1}, {2}, {-1}, {0, 2}, {-3, -2}, {}};
  for (bool keepdims : {false, true}) {
    for (const auto& axes : axis_lists) {
      SCOPED_TRACE("axes of size " + std::to_string(axes.size()) + (keepdims ? ", keepdims" : ""));
      auto x = uniform(rng, {2, 3, 4}, -1.0, 1.0);
      EXPECT_TRUE(
          gradcheck_passes([&](const auto& in) { return sum(in[0], axes, keepdims); }, {x}));
      EXPECT_TRUE(
          gradcheck_passes([&](const auto& in) { return mean(in[0], axes, keepdims); }, {x}));
    }
  }
  for (const Shape& shape : {Shape{5}, Shape{2, 3}, Shape{}}) {
    SCOPED_TRACE(shape_str(shape));
    auto x = uniform(rng, shape, -1.0, 1.0);
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return sum(in[0]); }, {x}));
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return mean(in[0]); }, {x}));
  }
}

TEST(ReductionGradcheck, MaxAwayFromTies) {
  std::mt19937 rng(22);
  for (long axis : {0L, 1L, 2L, -1L, -3L}) {
    for (bool keepdims : {false, true}) {
      SCOPED_TRACE("axis " + std::to_string(axis) + (keepdims ? ", keepdims" : ""));
      auto x = distinct(rng, {2, 3, 4});
      EXPECT_TRUE(
          gradcheck_passes([=](const auto& in) { return max(in[0], axis, keepdims); }, {x}));
    }
  }
  auto v = distinct(rng, {6});
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return max(in[0], 0); }, {v}));
}

TEST(ReductionGradcheck, NonUniformUpstreamGradient) {
  std::mt19937 rng(23);
  const auto w24 = uniform(rng, {2, 4}, -2.0, 2.0, false);
  const auto w3 = uniform(rng, {3}, -2.0, 2.0, false);
  auto x = distinct(rng, {2, 3, 4});
  EXPECT_TRUE(
      gradcheck_passes(weighted_sum([](const auto& in) { return sum(in[0], {1}); }, w24), {x}));
  EXPECT_TRUE(
      gradcheck_passes(weighted_sum([](const auto& in) { return mean(in[0], {-2}); }, w24), {x}));
  EXPECT_TRUE(gradcheck_passes(weighted_sum(
                                   [](const auto& in) {
                                     return sum(in[0], {0, 2});
                                   },
                                   w3),
                               {x}));
  EXPECT_TRUE(
      gradcheck_passes(weighted_sum([](const auto& in) { return max(in[0], 1); }, w24), {x}));
  // keepdims (2, 1, 4) against a (2, 4) weight broadcasts to (2, 2, 4): still a valid scalar loss.
  EXPECT_TRUE(gradcheck_passes(
      weighted_sum([](const auto& in) { return max(in[0], -2, true); }, w24), {x}));
}

// --- errors ---------------------------------------------------------------------------------

TEST(ReductionErrors, BadAxesNameOpAxisAndShape) {
  const auto x = zeros<double>({2, 3});
  EXPECT_TRUE(throws_invalid_argument([&] { sum(x, {2}); }, {"sum", "axis 2", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { sum(x, {-3}); }, {"sum", "axis -3", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { mean(x, {5}); }, {"mean", "axis 5", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { max(x, 2); }, {"max", "axis 2", "(2, 3)"}));
  // -1 and 1 are the same axis of a 2-D tensor.
  EXPECT_TRUE(throws_invalid_argument([&] { sum(x, {1, -1}); }, {"sum", "repeated", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([] { max(zeros<float>({2, 0}), 1); }, {"max", "(2, 0)"}));
  EXPECT_TRUE(throws_invalid_argument([] { mean(zeros<float>({0})); }, {"mean", "(0,)"}));
}

}  // namespace
}  // namespace tapegrad::test
