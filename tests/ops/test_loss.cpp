// ops/loss.h: mse_loss with reduction "none", "mean" and "sum".
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "ops/loss.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

// --- PyTorch reference ----------------------------------------------------------------------

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  if (op == "mse_loss")
    return mse_loss(in[0], in[1], c.at("args").at("reduction").get<std::string>());
  throw std::runtime_error("test_loss: no dispatch for op " + op);
}

TAPEGRAD_TORCH_REFERENCE_TESTS(LossTorch, "loss")

TEST(MseLoss, ReductionsRelateAsTheyShould) {
  const auto pred = tensor<double>({{1.0, 2.0}, {3.0, 4.0}});
  const auto target = tensor<double>({{0.0, 2.0}, {5.0, 1.0}});
  EXPECT_TRUE(all_close("none", mse_loss(pred, target, "none").value(),
                        xt::xarray<double>({{1.0, 0.0}, {4.0, 9.0}})));
  EXPECT_DOUBLE_EQ(mse_loss(pred, target, "sum").item(), 14.0);
  EXPECT_DOUBLE_EQ(mse_loss(pred, target, "mean").item(), 3.5);
  EXPECT_DOUBLE_EQ(mse_loss(pred, target).item(), 3.5);  // "mean" is the default, as in torch
  EXPECT_EQ(mse_loss(pred, target).shape(), Shape{});
}

// --- gradcheck ------------------------------------------------------------------------------

TEST(LossGradcheck, EveryReductionAndShape) {
  std::mt19937 rng(81);
  for (const char* reduction : {"none", "mean", "sum"}) {
    for (const Shape& shape : {Shape{5}, Shape{3, 4}, Shape{2, 1, 3}, Shape{}}) {
      SCOPED_TRACE(std::string(reduction) + " on " + shape_str(shape));
      auto pred = uniform(rng, shape, -2.0, 2.0);
      auto target = uniform(rng, shape, -2.0, 2.0);
      EXPECT_TRUE(gradcheck_passes(
          [=](const auto& in) { return mse_loss(in[0], in[1], reduction); }, {pred, target}));
    }
  }
}

TEST(LossGradcheck, NonUniformUpstreamGradient) {
  std::mt19937 rng(82);
  auto pred = uniform(rng, {3, 4}, -2.0, 2.0);
  auto target = uniform(rng, {3, 4}, -2.0, 2.0);
  const auto w = uniform(rng, {3, 4}, -2.0, 2.0, false);
  EXPECT_TRUE(gradcheck_passes(
      weighted_sum([](const auto& in) { return mse_loss(in[0], in[1], "none"); }, w),
      {pred, target}));
  // A scalar loss scaled by a non-unit weight.
  const auto w0 = scalar<double>(-1.7);
  EXPECT_TRUE(gradcheck_passes(
      weighted_sum([](const auto& in) { return mse_loss(in[0], in[1], "mean"); }, w0),
      {pred, target}));
}

// --- errors ---------------------------------------------------------------------------------

// torch would broadcast (3, 4) against (4,) with only a warning; that is nearly always a bug in
// the caller (a missing unsqueeze), so tapegrad refuses and says which shapes met.
TEST(LossErrors, MismatchedShapesNameOpAndBothShapes) {
  const auto pred = zeros<double>({3, 4});
  EXPECT_TRUE(throws_invalid_argument([&] { mse_loss(pred, zeros<double>({4})); },
                                      {"mse_loss", "(3, 4)", "(4,)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        mse_loss(pred, zeros<double>({3, 1}));
      },
      {"mse_loss", "(3, 4)", "(3, 1)"}));
  EXPECT_TRUE(
      throws_invalid_argument([&] { mse_loss(pred, pred, "average"); }, {"mse_loss", "average"}));
}

}  // namespace
}  // namespace tapegrad::test
