// ops/shape.h: reshape (with -1), flatten, unsqueeze, squeeze, transpose, permute.
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "ops/shape.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

// --- PyTorch reference ----------------------------------------------------------------------

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const json& args = c.at("args");
  if (op == "reshape") return reshape(in[0], longs(args, "shape"));
  if (op == "flatten") return flatten(in[0]);
  if (op == "unsqueeze") return unsqueeze(in[0], args.at("axis").get<long>());
  if (op == "squeeze")
    return args.contains("axis") ? squeeze(in[0], args.at("axis").get<long>()) : squeeze(in[0]);
  if (op == "transpose")
    return transpose(in[0], args.at("axis0").get<long>(), args.at("axis1").get<long>());
  if (op == "permute") return permute(in[0], longs(args, "dims"));
  throw std::runtime_error("test_shape: no dispatch for op " + op);
}

TAPEGRAD_TORCH_REFERENCE_TESTS(ShapeTorch, "shape")

TEST(ShapeOps, ResultingShapes) {
  const auto x = zeros<double>({2, 3, 4});
  EXPECT_EQ(reshape(x, {4, -1}).shape(), (Shape{4, 6}));
  EXPECT_EQ(reshape(x, {-1, 2, 2}).shape(), (Shape{6, 2, 2}));
  EXPECT_EQ(flatten(x).shape(), Shape{24});
  EXPECT_EQ(reshape(ones<double>({1}), {}).shape(), Shape{});
  EXPECT_EQ(unsqueeze(x, 0).shape(), (Shape{1, 2, 3, 4}));
  EXPECT_EQ(unsqueeze(x, 3).shape(), (Shape{2, 3, 4, 1}));
  EXPECT_EQ(unsqueeze(x, -1).shape(), (Shape{2, 3, 4, 1}));
  EXPECT_EQ(unsqueeze(x, -4).shape(), (Shape{1, 2, 3, 4}));
  EXPECT_EQ(squeeze(zeros<double>({1, 3, 1})).shape(), Shape{3});
  EXPECT_EQ(squeeze(zeros<double>({1, 3, 1}), -1).shape(), (Shape{1, 3}));
  EXPECT_EQ(squeeze(zeros<double>({1, 1})).shape(), Shape{});
  EXPECT_EQ(transpose(x, 0, 2).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(transpose(x, -1, 1).shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(permute(x, {1, 2, 0}).shape(), (Shape{3, 4, 2}));
}

// --- gradcheck ------------------------------------------------------------------------------

TEST(ShapeGradcheck, EveryOp) {
  std::mt19937 rng(31);
  auto x = uniform(rng, {2, 3, 4}, -1.0, 1.0);
  const std::vector<std::pair<std::string, GradcheckFn>> cases = {
      {"reshape 4,-1",
       [](const auto& in) {
         return reshape(in[0], {4, -1});
       }},
      {"reshape -1,2,3",
       [](const auto& in) {
         return reshape(in[0], {-1, 2, 3});
       }},
      {"flatten", [](const auto& in) { return flatten(in[0]); }},
      {"unsqueeze 1", [](const auto& in) { return unsqueeze(in[0], 1); }},
      {"unsqueeze -1", [](const auto& in) { return unsqueeze(in[0], -1); }},
      {"squeeze", [](const auto& in) { return squeeze(unsqueeze(in[0], 0)); }},
      {"squeeze -2", [](const auto& in) { return squeeze(unsqueeze(in[0], 2), -2); }},
      {"transpose 0,2", [](const auto& in) { return transpose(in[0], 0, 2); }},
      {"transpose -1,-2", [](const auto& in) { return transpose(in[0], -1, -2); }},
      {"permute 2,0,1",
       [](const auto& in) {
         return permute(in[0], {2, 0, 1});
       }},
      {"permute 1,2,0",
       [](const auto& in) {
         return permute(in[0], {1, 2, 0});
       }},
  };
  for (const auto& [name, f] : cases) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(gradcheck_passes(f, {x}));
  }
  auto s = uniform(rng, {}, -1.0, 1.0);
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return reshape(in[0], {1, 1}); }, {s}));
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return unsqueeze(in[0], 0); }, {s}));
}

// A permutation's backward must apply the *inverse* permutation. For a 3-cycle like (2, 0, 1) the
// inverse is (1, 2, 0), a different permutation; with a uniform seed that mistake still yields the
// right gradient, so a non-uniform upstream gradient is what catches it.
TEST(ShapeGradcheck, NonUniformUpstreamGradient) {
  std::mt19937 rng(32);
  auto x = uniform(rng, {2, 3, 4}, -1.0, 1.0);
  const auto w = uniform(rng, {4, 2, 3}, -2.0, 2.0, false);
  EXPECT_TRUE(gradcheck_passes(weighted_sum(
                                   [](const auto& in) {
                                     return permute(in[0], {2, 0, 1});
                                   },
                                   w),
                               {x}));
  EXPECT_TRUE(gradcheck_passes(weighted_sum(
                                   [](const auto& in) {
                                     return reshape(in[0], {4, 2, -1});
                                   },
                                   w),
                               {x}));
  const auto w2 = uniform(rng, {4, 3, 2}, -2.0, 2.0, false);
  EXPECT_TRUE(gradcheck_passes(
      weighted_sum([](const auto& in) { return transpose(in[0], 0, -1); }, w2), {x}));
}

// --- errors ---------------------------------------------------------------------------------

TEST(ShapeErrors, MessagesNameOpAndShapes) {
  const auto x = zeros<double>({2, 3});
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        reshape(x, {4, 2});
      },
      {"reshape", "(2, 3)", "(4, 2)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        reshape(x, {4, -1});
      },
      {"reshape", "(2, 3)", "(4, -1)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { reshape(x, {-1, -1}); }, {"reshape", "(2, 3)", "-1"}));
  EXPECT_TRUE(throws_invalid_argument([&] { unsqueeze(x, 3); }, {"unsqueeze", "axis 3", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { squeeze(x, 0); }, {"squeeze", "(2, 3)", "not 1"}));
  EXPECT_TRUE(throws_invalid_argument([&] { transpose(x, 0, 2); }, {"transpose", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { permute(x, {0}); }, {"permute", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { permute(x, {1, 1}); }, {"permute", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([] { flatten(Tensor<float>()); }, {"flatten", "undefined"}));
}

}  // namespace
}  // namespace tapegrad::test
