// ops/indexing.h, the blocks beyond the chapter: narrow, slice, index_select, cat and stack.
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "blocks_reference.h"
#include "ops/indexing.h"
#include "ops/shape.h"

namespace tapegrad::test {
namespace {

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const json& a = c.at("args");
  if (op == "narrow")
    return narrow(in[0], a.at("dim").get<long>(), a.at("start").get<long>(),
                  a.at("length").get<long>());
  if (op == "slice") {
    // 2^62 stands for "to the end" (x[2:]), which the default end says.
    const long end = a.at("end").get<long>() >= (1L << 62) ? std::numeric_limits<long>::max()
                                                           : a.at("end").get<long>();
    if (a.at("step").get<long>() == 1 && end == std::numeric_limits<long>::max())
      return slice(in[0], a.at("dim").get<long>(), a.at("start").get<long>());
    return slice(in[0], a.at("dim").get<long>(), a.at("start").get<long>(), end,
                 a.at("step").get<long>());
  }
  if (op == "index_select")
    return index_select(in[0], a.at("dim").get<long>(), index_array_from_json(a.at("index")));
  if (op == "cat") return cat(in, a.at("dim").get<long>());
  if (op == "cat_twice") return cat({in[0], in[0]}, a.at("dim").get<long>());
  if (op == "stack") return stack(in, a.at("dim").get<long>());
  throw std::runtime_error("test_indexing_blocks: no dispatch for op " + op);
}

TAPEGRAD_BLOCKS_REFERENCE_TESTS(IndexingBlocksTorch, "blocks_indexing")

TEST(Slicing, PythonRules) {
  const auto x = reshape(arange<double>(0.0, 10.0), {2, 5});
  EXPECT_TRUE(
      all_close("x[:, 1:3]", slice(x, 1, 1, 3).value(), xt::xarray<double>{{1, 2}, {6, 7}}));
  EXPECT_TRUE(all_close("x[:, -2:]", slice(x, 1, -2).value(), xt::xarray<double>{{3, 4}, {8, 9}}));
  EXPECT_TRUE(all_close("x[:, ::2]", slice(x, -1, 0, 100, 2).value(),
                        xt::xarray<double>{{0, 2, 4}, {5, 7, 9}}));
  EXPECT_EQ(slice(x, 0, 5, 1).shape(), (Shape{0, 5}));  // an empty slice, as x[5:1]
  EXPECT_EQ(slice(x, 1, -100, -4).shape(), (Shape{2, 1}));
  EXPECT_TRUE(all_close("narrow", narrow(x, 1, -3, 2).value(), xt::xarray<double>{{2, 3}, {7, 8}}));
}

TEST(Joining, CatAndStackShapes) {
  const auto a = zeros<float>({2, 3}), b = ones<float>({2, 3});
  EXPECT_EQ(cat({a, b}, 0).shape(), (Shape{4, 3}));
  EXPECT_EQ(cat({a, b}, -1).shape(), (Shape{2, 6}));
  EXPECT_EQ(stack({a, b}).shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(stack({a, b}, 2).shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(stack({a, b}, -1).shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(stack(std::vector<Tensor<float>>{scalar<float>(1.f), scalar<float>(2.f)}).shape(),
            Shape{2});
  EXPECT_EQ(cat(std::vector<Tensor<float>>{a}, 1).value(), a.value());
}

// --- gradcheck over every dim and non-uniform upstream gradients ---------------------------

// Runs gradcheck of f on the inputs, plain and with a random weight on the output.
void check_both(std::mt19937& rng, const GradcheckFn& f, const std::vector<Tensor<double>>& in) {
  EXPECT_TRUE(gradcheck_passes(f, in));
  const Shape out = f(in).shape();
  EXPECT_TRUE(gradcheck_passes(weighted_sum(f, uniform(rng, out, -2.0, 2.0, false)), in));
}

TEST(IndexingBlocksGradcheck, NarrowSliceIndexSelectEveryDim) {
  std::mt19937 rng(251);
  const Shape shape = {3, 4, 5};
  for (long dim = -3; dim < 3; ++dim) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    const long len = static_cast<long>(shape[static_cast<std::size_t>((dim + 3) % 3)]);
    auto x = uniform(rng, shape, -1.0, 1.0);
    check_both(rng, [=](const auto& in) { return narrow(in[0], dim, 1, len - 2); }, {x});
    check_both(rng, [=](const auto& in) { return slice(in[0], dim, -len, len, 2); }, {x});
    const IndexArray index = {len - 1, 0, len - 1, 1};  // a repeat: its gradient adds up
    check_both(rng, [=](const auto& in) { return index_select(in[0], dim, index); }, {x});
  }
  auto v = uniform(rng, {4}, -1.0, 1.0);
  check_both(
      rng, [](const auto& in) { return index_select(in[0], 0, IndexArray(std::int64_t{2})); }, {v});
}

TEST(IndexingBlocksGradcheck, CatStackEveryDim) {
  std::mt19937 rng(252);
  for (long dim = -3; dim < 3; ++dim) {
    SCOPED_TRACE("cat dim " + std::to_string(dim));
    const std::size_t d = static_cast<std::size_t>((dim + 3) % 3);
    Shape sa = {2, 3, 4}, sb = sa;
    sb[d] = 1;
    auto a = uniform(rng, sa, -1.0, 1.0), b = uniform(rng, sb, -1.0, 1.0);
    auto c = uniform(rng, sa, -1.0, 1.0, /*requires_grad=*/false);
    check_both(rng, [=](const auto& in) { return cat({in[0], in[1], c, in[0]}, dim); }, {a, b});
  }
  for (long dim = -3; dim < 3; ++dim) {
    SCOPED_TRACE("stack dim " + std::to_string(dim));
    auto a = uniform(rng, {2, 3}, -1.0, 1.0), b = uniform(rng, {2, 3}, -1.0, 1.0);
    check_both(rng, [=](const auto& in) { return stack({in[0], in[1], in[0]}, dim); }, {a, b});
  }
}

// --- errors ---------------------------------------------------------------------------------

TEST(IndexingBlocksErrors, RangesAndShapesNameOpTensorsAndShapes) {
  auto x = zeros<double>({2, 3}).set_name("x");
  EXPECT_TRUE(
      throws_invalid_argument([&] { narrow(x, 1, 2, 2); }, {"narrow", "dim 1", "x (2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { narrow(x, 0, -3, 1); }, {"narrow", "x (2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { narrow(x, 2, 0, 1); }, {"narrow", "axis 2", "(2, 3)"}));
  EXPECT_TRUE(
      throws_invalid_argument([&] { slice(x, 1, 0, 2, 0); }, {"slice", "step", "x (2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        index_select(x, 1, IndexArray{0, 3});
      },
      {"index_select", "index 3", "dim 1", "x (2, 3)"}));
  EXPECT_TRUE(
      throws_invalid_argument([&] { index_select(x, 0, IndexArray{-1}); }, {"index_select", "-1"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        index_select(x, 0, IndexArray(xt::zeros<std::int64_t>({1, 1})));
      },
      {"index_select", "1-D", "(1, 1)"}));
  auto y = zeros<double>({3, 3}).set_name("y");
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        cat({x, y}, 1);
      },
      {"cat", "tensors[1] y (3, 3)", "tensors[0] x (2, 3)", "dim 1"}));
  EXPECT_TRUE(throws_invalid_argument([&] { cat({x, zeros<double>({6})}, 0); }, {"cat", "(6,)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { cat({x, y}, 2); }, {"cat", "axis 2", "x (2, 3)"}));
  EXPECT_TRUE(
      throws_invalid_argument([] { cat(std::vector<Tensor<double>>{}, 0); }, {"cat", "non-empty"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        stack({x, y});
      },
      {"stack", "tensors[1] y (3, 3)", "x (2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { stack({x, x}, 3); }, {"stack", "axis 3"}));
  EXPECT_TRUE(
      throws_invalid_argument([] { stack(std::vector<Tensor<float>>{}); }, {"stack", "non-empty"}));
}

}  // namespace
}  // namespace tapegrad::test
