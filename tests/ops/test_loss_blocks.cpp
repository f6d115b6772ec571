// ops/loss.h, the classification losses: cross_entropy and nll_loss (class-index targets,
// reduction none / mean / sum, ignore_index) and binary_cross_entropy.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "blocks_reference.h"
#include "ops/loss.h"
#include "ops/softmax.h"

namespace tapegrad::test {
namespace {

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const json& a = c.at("args");
  const std::string reduction = a.at("reduction");
  if (op == "cross_entropy")
    return cross_entropy(in[0], index_array_from_json(a.at("target")), reduction,
                         a.at("ignore_index").get<std::int64_t>());
  if (op == "nll_loss")
    return nll_loss(in[0], index_array_from_json(a.at("target")), reduction,
                    a.at("ignore_index").get<std::int64_t>());
  if (op == "binary_cross_entropy") return binary_cross_entropy(in[0], in[1], reduction);
  throw std::runtime_error("test_loss_blocks: no dispatch for op " + op);
}

TAPEGRAD_BLOCKS_REFERENCE_TESTS(LossBlocksTorch, "blocks_loss")

TEST(CrossEntropy, ByHandAndDefaults) {
  const auto logits = tensor<double>({{0.0, std::log(3.0)}, {std::log(4.0), 0.0}});
  const IndexArray target = {1, 1};
  // p = [1/4, 3/4] and [4/5, 1/5]: losses -log(3/4) and -log(1/5)
  const xt::xarray<double> expected = {-std::log(0.75), -std::log(0.2)};
  EXPECT_TRUE(all_close("none", cross_entropy(logits, target, "none").value(), expected));
  EXPECT_NEAR(cross_entropy(logits, target).item(), (expected(0) + expected(1)) / 2, 1e-15);
  EXPECT_NEAR(cross_entropy(logits, target, "sum").item(), expected(0) + expected(1), 1e-15);
  // Ignoring the second sample: the mean is over the first alone.
  EXPECT_NEAR(cross_entropy(logits, IndexArray{1, 0}, "mean", 0).item(), expected(0), 1e-15);
  EXPECT_EQ(cross_entropy(logits, target).shape(), Shape{});
  // Every target ignored: 0 / 0, NaN, as torch.
  EXPECT_TRUE(std::isnan(cross_entropy(logits, IndexArray{-100, -100}).item()));
  // cross_entropy is nll_loss of log_softmax.
  EXPECT_NEAR(nll_loss(log_softmax(logits, 1), target).item(), cross_entropy(logits, target).item(),
              1e-15);
}

// Logits far beyond exp's range give exact, finite losses and gradients, in float too.
TEST(CrossEntropy, StableForHugeLogits) {
  auto x = tensor<float>(xt::xarray<float>{{3e4f, 0.0f, -3e4f}, {-1e30f, 1e30f, 0.0f}}, true);
  const auto loss = cross_entropy(x, IndexArray{2, 1}, "none");
  EXPECT_FLOAT_EQ(loss.value()(0), 6e4f);
  EXPECT_FLOAT_EQ(loss.value()(1), 0.0f);
  sum(loss).backward();
  EXPECT_TRUE(
      all_close("grad", x.grad(), xt::xarray<float>{{1.0f, 0.0f, -1.0f}, {0.0f, 0.0f, 0.0f}}));
}

TEST(BinaryCrossEntropy, ByHandAndClampedLogs) {
  const auto p = tensor<double>({0.25, 0.0, 1.0});
  const auto t = tensor<double>({1.0, 1.0, 1.0});
  const auto l = binary_cross_entropy(p, t, "none").value();
  EXPECT_NEAR(l(0), -std::log(0.25), 1e-15);
  EXPECT_EQ(l(1), 100.0);  // log(0) clamped to -100, as torch
  EXPECT_EQ(l(2), 0.0);
}

// --- gradcheck ------------------------------------------------------------------------------

TEST(LossBlocksGradcheck, CrossEntropyAndNllEveryShapeAndReduction) {
  std::mt19937 rng(261);
  struct Form {
    Shape input;
    IndexArray target;
  };
  const std::vector<Form> forms = {
      {{4, 3}, IndexArray{2, 0, 1, 2}},
      {{4, 3}, IndexArray{2, -100, 1, -100}},                  // ignored targets
      {{2, 3, 4}, IndexArray{{0, 2, 1, 1}, {2, -100, 0, 1}}},  // classes on axis 1 of (N, C, d)
      {{5}, IndexArray(std::int64_t{3})},                      // one sample
  };
  for (const auto& [shape, target] : forms)
    for (const char* reduction : {"none", "mean", "sum"}) {
      SCOPED_TRACE(shape_str(shape) + " " + reduction);
      auto x = uniform(rng, shape, -3.0, 3.0);
      auto ce = [target = target, reduction](const auto& in) {
        return cross_entropy(in[0], target, reduction);
      };
      auto nll = [target = target, reduction](const auto& in) {
        return nll_loss(in[0], target, reduction);
      };
      EXPECT_TRUE(gradcheck_passes(ce, {x}));
      EXPECT_TRUE(gradcheck_passes(nll, {x}));
      const Shape out = ce(std::vector<Tensor<double>>{x}).shape();
      const auto w = uniform(rng, out, -2.0, 2.0, false);
      EXPECT_TRUE(gradcheck_passes(weighted_sum(ce, w), {x}));
      EXPECT_TRUE(gradcheck_passes(weighted_sum(nll, w), {x}));
    }
}

TEST(LossBlocksGradcheck, BinaryCrossEntropyInputAndTarget) {
  std::mt19937 rng(262);
  for (const Shape& shape : {Shape{6}, Shape{2, 3, 2}, Shape{}})
    for (const char* reduction : {"none", "mean", "sum"}) {
      SCOPED_TRACE(shape_str(shape) + " " + reduction);
      auto p = uniform(rng, shape, 0.05, 0.95), t = uniform(rng, shape, 0.0, 1.0);
      auto f = [reduction](const auto& in) {
        return binary_cross_entropy(in[0], in[1], reduction);
      };
      EXPECT_TRUE(gradcheck_passes(f, {p, t}));
      const Shape out = f(std::vector<Tensor<double>>{p, t}).shape();
      EXPECT_TRUE(gradcheck_passes(weighted_sum(f, uniform(rng, out, -2.0, 2.0, false)), {p, t}));
    }
}

// --- errors ---------------------------------------------------------------------------------

TEST(LossBlocksErrors, ShapesTargetsAndArgumentsNameTheOp) {
  auto logits = zeros<double>({4, 3}).set_name("logits");
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        cross_entropy(logits, IndexArray{0, 1, 2});
      },
      {"cross_entropy", "target (3,)", "logits (4, 3)", "(4,)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        cross_entropy(logits, IndexArray{0, 1, 3, 0});
      },
      {"cross_entropy", "target 3", "3 classes", "logits (4, 3)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        nll_loss(logits, IndexArray{0, -1, 2, 0});
      },
      {"nll_loss", "target -1", "logits (4, 3)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        cross_entropy(logits, IndexArray{0, 1, 2, 0}, "avg");
      },
      {"cross_entropy", "reduction", "avg"}));
  EXPECT_TRUE(throws_invalid_argument(
      [] { cross_entropy(scalar<double>(1.0), IndexArray(std::int64_t{0})); },
      {"cross_entropy", "()"}));
  auto p = full<double>({2, 2}, 0.5).set_name("p");
  EXPECT_TRUE(throws_invalid_argument([&] { binary_cross_entropy(p, zeros<double>({4})); },
                                      {"binary_cross_entropy", "p (2, 2)", "(4,)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { binary_cross_entropy(p * 3.0, p); },
                                      {"binary_cross_entropy", "[0, 1]", "1.5"}));
  EXPECT_TRUE(throws_invalid_argument([&] { binary_cross_entropy(p, p, "mean "); },
                                      {"binary_cross_entropy", "reduction"}));
}

}  // namespace
}  // namespace tapegrad::test
