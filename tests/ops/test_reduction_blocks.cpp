// ops/reduction.h, the blocks beyond the chapter: min over a dim, argmax and argmin (integer
// results, over a dim or the flattened tensor).
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "blocks_reference.h"
#include "ops/reduction.h"

namespace tapegrad::test {
namespace {

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const json& args = c.at("args");
  if (op == "min") return min(in[0], args.at("axis").get<long>(), args.at("keepdims").get<bool>());
  throw std::runtime_error("test_reduction_blocks: no dispatch for op " + op);
}

TAPEGRAD_BLOCKS_REFERENCE_TESTS(ReductionBlocksTorch, "blocks_reduction")

// argmax and argmin against torch for every axis (negative too), keepdim or not, and flattened;
// ties resolve to the first extreme element, as in torch.
TEST(ArgmaxTorch, EveryAxisAndFlat) {
  const auto names = blocks_case_names("blocks_index_results");
  ASSERT_GE(names.size(), 20u);
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const json& c = blocks_case("blocks_index_results", name);
    const json& args = c.at("args");
    const IndexArray expected = index_array_from_json(c.at("output"));
    const bool is_max = c.at("op") == "argmax";
    auto check = [&](const auto& x) {
      if (!args.contains("axis")) {
        EXPECT_EQ(is_max ? argmax(x) : argmin(x), expected);
        return;
      }
      const long axis = args.at("axis").get<long>();
      const bool keep = args.at("keepdims").get<bool>();
      EXPECT_EQ(is_max ? argmax(x, axis, keep) : argmin(x, axis, keep), expected);
    };
    check(Tensor<double>(array_from_json<double>(c.at("input"))));
    check(Tensor<float>(array_from_json<float>(c.at("input"))));
  }
}

TEST(Argmax, ReadsClassPredictions) {
  const auto logits = tensor<double>({{0.1, 2.0, -1.0}, {3.0, 0.0, 3.0}});
  EXPECT_EQ(argmax(logits, 1), (IndexArray{1, 0}));
  IndexArray column = {2, 1};
  column.reshape({2, 1});
  EXPECT_EQ(argmin(logits, -1, true), column);
  EXPECT_EQ(argmax(logits)(), 3);  // flat index of the first 3.0
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(argmax(tensor<double>({1.0, nan, 5.0}))(), 1);  // NaN is the maximum, as in torch
  EXPECT_EQ(argmin(tensor<double>({1.0, nan, -5.0}))(), 1);
  const std::size_t before = tape_size();
  (void)argmax(tensor<double>(xt::xarray<double>{1.0, 2.0}, true), 0);
  EXPECT_EQ(tape_size(), before);  // an index is not differentiable: nothing recorded
}

TEST(ReductionBlocksGradcheck, MinEveryAxisAndUpstream) {
  std::mt19937 rng(241);
  for (const Shape& shape : {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}}) {
    for (long axis = -static_cast<long>(shape.size()); axis < static_cast<long>(shape.size());
         ++axis)
      for (const bool keepdims : {false, true}) {
        SCOPED_TRACE(shape_str(shape) + " axis " + std::to_string(axis) +
                     (keepdims ? " keep" : ""));
        auto x = distinct(rng, shape);
        auto f = [=](const auto& in) { return min(in[0], axis, keepdims); };
        EXPECT_TRUE(gradcheck_passes(f, {x}));
        const Shape out = min(x, axis, keepdims).shape();
        EXPECT_TRUE(gradcheck_passes(weighted_sum(f, uniform(rng, out, -2.0, 2.0, false)), {x}));
      }
  }
}

// With ties the whole gradient goes to the first minimal element (torch's index).
TEST(ReductionBlocks, MinTiesRouteToTheFirst) {
  auto x = tensor<double>(xt::xarray<double>{{2.0, -1.0, -1.0}, {0.0, 4.0, 0.0}}, true);
  const auto m = min(x, 1);
  EXPECT_TRUE(all_close("min", m.value(), xt::xarray<double>{-1.0, 0.0}));
  sum(m * tensor<double>({3.0, 5.0})).backward();
  EXPECT_TRUE(all_close("grad", x.grad(), xt::xarray<double>{{0.0, 3.0, 0.0}, {5.0, 0.0, 0.0}}));
}

TEST(ReductionBlocksErrors, AxisAndEmptyNameTheOp) {
  auto x = zeros<double>({2, 3}).set_name("logits");
  EXPECT_TRUE(throws_invalid_argument([&] { min(x, 2); }, {"min", "axis 2", "(2, 3)", "logits"}));
  EXPECT_TRUE(
      throws_invalid_argument([&] { argmax(x, -3); }, {"argmax", "axis -3", "(2, 3)", "logits"}));
  EXPECT_TRUE(throws_invalid_argument([&] { argmin(x, 5, true); }, {"argmin", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [] {
        argmax(zeros<float>({2, 0}), 1);
      },
      {"argmax", "(2, 0)", "empty"}));
  EXPECT_TRUE(throws_invalid_argument([] { argmin(zeros<double>({0})); },
                                      {"argmin", "(0,)", "no elements"}));
  EXPECT_TRUE(throws_invalid_argument(
      [] {
        min(zeros<float>({0, 2}), 0);
      },
      {"min", "(0, 2)", "empty"}));
  EXPECT_TRUE(
      throws_invalid_argument([] { argmax(Tensor<double>(), 0); }, {"argmax", "undefined"}));
}

}  // namespace
}  // namespace tapegrad::test
