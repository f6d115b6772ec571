// ops/indexing.h: masked_select, masked_fill and off_diagonal_mask, the chapter's leave-one-out
// keys built from them, and the eye factory.
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "ops/elementwise.h"
#include "ops/indexing.h"
#include "ops/reduction.h"
#include "ops/repeat.h"
#include "ops/shape.h"
#include "ops/softmax.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

// The keys of the chapter's Nadaraya-Watson model: row i holds every x_j with j != i.
//   X_tile = x.repeat((n, 1)); keys = X_tile[~eye(n)].reshape((n, n - 1))
template <class T>
Tensor<T> leave_one_out_keys(const Tensor<T>& x) {
  const std::size_t n = x.size();
  return reshape(masked_select(repeat(x, {n, 1}), off_diagonal_mask(n)),
                 {static_cast<long>(n), static_cast<long>(n) - 1});
}

// --- PyTorch reference ----------------------------------------------------------------------

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const json& args = c.at("args");
  if (op == "masked_select") return masked_select(in[0], mask_from_json(args.at("mask")));
  if (op == "masked_fill")
    return masked_fill(in[0], mask_from_json(args.at("mask")), args.at("value").get<double>());
  if (op == "leave_one_out_keys") return leave_one_out_keys(in[0]);
  if (op == "eye") return eye<T>(args.at("n").get<std::size_t>(), args.at("m").get<std::size_t>());
  throw std::runtime_error("test_indexing: no dispatch for op " + op);
}

TAPEGRAD_TORCH_REFERENCE_TESTS(IndexingTorch, "indexing")

TEST(Indexing, LeaveOneOutKeysDropTheDiagonal) {
  const auto x = tensor<double>({10.0, 20.0, 30.0});
  const xt::xarray<double> expected = {{20.0, 30.0}, {10.0, 30.0}, {10.0, 20.0}};
  EXPECT_TRUE(all_close("keys", leave_one_out_keys(x).value(), expected));
}

TEST(Indexing, OffDiagonalMaskAndEye) {
  const xt::xarray<bool> expected = {{false, true, true}, {true, false, true}, {true, true, false}};
  EXPECT_EQ(off_diagonal_mask(3), expected);
  EXPECT_TRUE(all_close("eye(2)", eye<double>(2).value(), xt::xarray<double>({{1, 0}, {0, 1}})));
  EXPECT_EQ(eye<float>(2, 3).shape(), (Shape{2, 3}));
  EXPECT_FALSE(eye<double>(3).requires_grad());
}

// An all-false mask selects nothing: a (0,) result whose backward gives a zero gradient.
TEST(Indexing, EmptySelection) {
  auto x = ones<double>({2, 2}, true);
  auto y = masked_select(x, xt::xarray<bool>(xt::zeros<bool>({2, 2})));
  EXPECT_EQ(y.shape(), Shape{0});
  sum(y).backward();
  EXPECT_TRUE(all_close("grad", x.grad(), xt::xarray<double>(xt::zeros<double>({2, 2}))));
}

// --- gradcheck ------------------------------------------------------------------------------

TEST(IndexingGradcheck, MaskedSelect) {
  std::mt19937 rng(51);
  std::bernoulli_distribution coin(0.5);
  auto random_mask = [&](const Shape& shape) {
    xt::xarray<bool> m = xt::zeros<bool>(shape);
    for (auto&& b : m) b = coin(rng);
    return m;
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 1}, {3, 4}}, {{2, 1, 3}, {4, 1}}, {{}, {5}},
  };
  for (const auto& [xs, ms] : shapes) {
    SCOPED_TRACE(shape_str(xs) + " with mask " + shape_str(ms));
    auto x = uniform(rng, xs, -1.0, 1.0);
    const xt::xarray<bool> mask = random_mask(ms);
    EXPECT_TRUE(gradcheck_passes([&](const auto& in) { return masked_select(in[0], mask); }, {x}));
  }
}

TEST(IndexingGradcheck, MaskedFill) {
  std::mt19937 rng(53);
  std::bernoulli_distribution coin(0.5);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}},    {{3, 4}, {4}}, {{3, 1}, {3, 4}},
      {{2, 1, 3}, {4, 1}}, {{}, {5}},     {{2, 3}, {}},
  };
  for (const auto& [xs, ms] : shapes) {
    SCOPED_TRACE(shape_str(xs) + " with mask " + shape_str(ms));
    auto x = uniform(rng, xs, -1.0, 1.0);
    xt::xarray<bool> mask = xt::zeros<bool>(ms);
    for (auto&& b : mask) b = coin(rng);
    EXPECT_TRUE(
        gradcheck_passes([&](const auto& in) { return masked_fill(in[0], mask, 3.5); }, {x}));
  }
}

// masked_fill(-inf) before softmax: masked keys get weight exactly 0, and gradient 0.
TEST(Indexing, MaskedFillMinusInfinityMasksASoftmax) {
  auto scores = tensor<double>(xt::xarray<double>{{1.0, 2.0, 3.0}}, true);
  const xt::xarray<bool> mask = {false, true, false};
  const auto w = softmax(masked_fill(scores, mask, -std::numeric_limits<double>::infinity()), 1);
  EXPECT_EQ(w.value()(0, 1), 0.0);
  EXPECT_NEAR(w.value()(0, 0) + w.value()(0, 2), 1.0, 1e-15);
  sum(mul(w, tensor<double>(xt::xarray<double>{{1.0, 5.0, 2.0}}))).backward();
  EXPECT_EQ(scores.grad()(0, 1), 0.0);
}

// In the chapter, x appears n - 1 times among the keys; each appearance carries its own weight,
// and the gradient of x_j must collect exactly the weights of the positions holding x_j.
TEST(IndexingGradcheck, LeaveOneOutKeysWithNonUniformUpstream) {
  std::mt19937 rng(52);
  for (std::size_t n : {2u, 4u, 6u}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    auto x = uniform(rng, {n}, -2.0, 2.0);
    const auto w = uniform(rng, {n, n - 1}, -2.0, 2.0, false);
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return leave_one_out_keys(in[0]); }, {x}));
    EXPECT_TRUE(gradcheck_passes(
        weighted_sum([](const auto& in) { return leave_one_out_keys(in[0]); }, w), {x}));
  }
}

// --- errors ---------------------------------------------------------------------------------

TEST(IndexingErrors, MaskShapeMismatchNamesOpAndBothShapes) {
  const auto x = zeros<double>({2, 4});
  EXPECT_TRUE(
      throws_invalid_argument([&] { masked_select(x, xt::xarray<bool>(xt::ones<bool>({3}))); },
                              {"masked_select", "(2, 4)", "(3,)"}));
  EXPECT_TRUE(throws_invalid_argument([] { masked_select(Tensor<float>(), off_diagonal_mask(2)); },
                                      {"masked_select"}));
}

TEST(IndexingErrors, MaskedFillShapeMismatchNamesOpShapesAndName) {
  auto x = zeros<double>({2, 4});
  x.set_name("scores");
  EXPECT_TRUE(
      throws_invalid_argument([&] { masked_fill(x, xt::xarray<bool>(xt::ones<bool>({3})), 0.0); },
                              {"masked_fill", "(2, 4)", "(3,)", "scores"}));
  EXPECT_TRUE(throws_invalid_argument(
      [] { masked_fill(Tensor<float>(), off_diagonal_mask(2), 0.0f); }, {"masked_fill"}));
}

}  // namespace
}  // namespace tapegrad::test
