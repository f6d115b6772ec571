// ops/repeat.h: repeat (torch.Tensor.repeat, i.e. tile) and repeat_interleave.
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "ops/repeat.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

// --- PyTorch reference ----------------------------------------------------------------------

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const json& args = c.at("args");
  if (op == "repeat") return repeat(in[0], args.at("reps").get<std::vector<std::size_t>>());
  if (op == "repeat_interleave") {
    const auto repeats = args.at("repeats").get<std::size_t>();
    if (!args.contains("axis")) return repeat_interleave(in[0], repeats);
    return repeat_interleave(in[0], repeats, args.at("axis").get<long>());
  }
  throw std::runtime_error("test_repeat: no dispatch for op " + op);
}

TAPEGRAD_TORCH_REFERENCE_TESTS(RepeatTorch, "repeat")

// repeat tiles whole blocks, repeat_interleave repeats each element in place: the two are easy to
// confuse, so their values on the same input are spelled out.
TEST(RepeatValues, TileVersusInterleave) {
  const auto x = tensor<double>({1.0, 2.0, 3.0});
  EXPECT_TRUE(all_close("repeat", repeat(x, {2}).value(),
                        xt::xarray<double>({1.0, 2.0, 3.0, 1.0, 2.0, 3.0})));
  EXPECT_TRUE(all_close("repeat_interleave", repeat_interleave(x, 2).value(),
                        xt::xarray<double>({1.0, 1.0, 2.0, 2.0, 3.0, 3.0})));
  // More reps than dims: (3,) is seen as (1, 3) and tiled to (2, 6).
  EXPECT_TRUE(all_close(
      "repeat {2, 2}", repeat(x, {2, 2}).value(),
      xt::xarray<double>({{1.0, 2.0, 3.0, 1.0, 2.0, 3.0}, {1.0, 2.0, 3.0, 1.0, 2.0, 3.0}})));
  const auto m = tensor<double>({{1.0, 2.0}, {3.0, 4.0}});
  EXPECT_TRUE(all_close("repeat_interleave axis 0", repeat_interleave(m, 2, 0L).value(),
                        xt::xarray<double>({{1.0, 2.0}, {1.0, 2.0}, {3.0, 4.0}, {3.0, 4.0}})));
  EXPECT_TRUE(all_close("repeat_interleave axis -1", repeat_interleave(m, 2, -1L).value(),
                        xt::xarray<double>({{1.0, 1.0, 2.0, 2.0}, {3.0, 3.0, 4.0, 4.0}})));
  EXPECT_EQ(repeat(zeros<double>({2, 3}), {2, 1, 3}).shape(), (Shape{2, 2, 9}));
}

// --- gradcheck ------------------------------------------------------------------------------

TEST(RepeatGradcheck, Repeat) {
  std::mt19937 rng(41);
  const std::vector<std::pair<Shape, std::vector<std::size_t>>> cases = {
      {{3}, {2}},          {{3}, {2, 2}},          {{2, 3}, {2, 1}}, {{2, 3}, {1, 3}},
      {{2, 3}, {2, 1, 3}}, {{2, 1, 3}, {1, 2, 1}}, {{}, {3}},        {{}, {2, 2}},
  };
  for (const auto& [shape, reps] : cases) {
    SCOPED_TRACE(shape_str(shape) + " repeat " + shape_str(reps));
    auto x = uniform(rng, shape, -1.0, 1.0);
    EXPECT_TRUE(
        gradcheck_passes([reps = reps](const auto& in) { return repeat(in[0], reps); }, {x}));
  }
}

TEST(RepeatGradcheck, RepeatInterleave) {
  std::mt19937 rng(42);
  const std::vector<std::pair<Shape, std::optional<long>>> cases = {
      {{3}, std::nullopt}, {{2, 3}, std::nullopt}, {{2, 3}, 0L},       {{2, 3}, 1L},
      {{2, 3, 2}, -1L},    {{2, 3, 2}, -2L},       {{}, std::nullopt},
  };
  for (const auto& [shape, axis] : cases) {
    SCOPED_TRACE(shape_str(shape) + (axis ? " axis " + std::to_string(*axis) : " flattened"));
    auto x = uniform(rng, shape, -1.0, 1.0);
    EXPECT_TRUE(gradcheck_passes(
        [axis = axis](const auto& in) { return repeat_interleave(in[0], 3, axis); }, {x}));
  }
}

// Every copy gets a different weight, so the backward must sum the right copies into each source
// element; a uniform seed would only check how many copies there are.
TEST(RepeatGradcheck, NonUniformUpstreamGradient) {
  std::mt19937 rng(43);
  auto x = uniform(rng, {2, 3}, -1.0, 1.0);
  const auto w_tile = uniform(rng, {2, 4, 9}, -2.0, 2.0, false);
  EXPECT_TRUE(gradcheck_passes(weighted_sum(
                                   [](const auto& in) {
                                     return repeat(in[0], {2, 2, 3});
                                   },
                                   w_tile),
                               {x}));
  const auto w_inter = uniform(rng, {2, 6}, -2.0, 2.0, false);
  EXPECT_TRUE(gradcheck_passes(
      weighted_sum([](const auto& in) { return repeat_interleave(in[0], 2, 1L); }, w_inter), {x}));
  const auto w_flat = uniform(rng, {12}, -2.0, 2.0, false);
  EXPECT_TRUE(gradcheck_passes(
      weighted_sum([](const auto& in) { return repeat_interleave(in[0], 2); }, w_flat), {x}));
}

// --- errors ---------------------------------------------------------------------------------

TEST(RepeatErrors, MessagesNameOpAndShapes) {
  const auto x = zeros<double>({2, 3});
  EXPECT_TRUE(throws_invalid_argument([&] { repeat(x, {2}); }, {"repeat", "(2, 3)", "(2,)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { repeat_interleave(x, 2, 2L); },
                                      {"repeat_interleave", "axis 2", "(2, 3)"}));
  EXPECT_TRUE(
      throws_invalid_argument([] { repeat(Tensor<float>(), {2}); }, {"repeat", "undefined"}));
}

}  // namespace
}  // namespace tapegrad::test
