// ops/elementwise.h, the blocks beyond the chapter: sin, cos, clamp, minimum, maximum, the
// comparisons (constant masks), where, zeros_like / ones_like and the dtype cast `to`.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "blocks_reference.h"
#include "ops/elementwise.h"
#include "ops/indexing.h"
#include "ops/kernels/shape.h"
#include "ops/shape.h"

namespace tapegrad::test {
namespace {

// --- PyTorch reference ----------------------------------------------------------------------

template <class T>
std::optional<T> optional_arg(const json& args, const char* key) {
  if (args.at(key).is_null()) return std::nullopt;
  return args.at(key).get<T>();
}

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const json& args = c.at("args");
  if (op == "sin") return sin(in[0]);
  if (op == "cos") return cos(in[0]);
  if (op == "clamp")
    return clamp(in[0], optional_arg<T>(args, "min"), optional_arg<T>(args, "max"));
  if (op == "minimum") return minimum(in[0], in[1]);
  if (op == "maximum") return maximum(in[0], in[1]);
  if (op == "where") return where(mask_from_json(args.at("condition")), in[0], in[1]);
  if (op == "where_scalar_other")
    return where(mask_from_json(args.at("condition")), in[0], args.at("scalar").get<T>());
  if (op == "to_float32_and_back") return to<T>(to<float>(in[0]));
  throw std::runtime_error("test_elementwise_blocks: no dispatch for op " + op);
}

TAPEGRAD_BLOCKS_REFERENCE_TESTS(ElementwiseBlocksTorch, "blocks_elementwise")

// The comparisons against torch's masks: broadcast against a row, and against a scalar.
TEST(ComparisonTorch, MasksMatch) {
  const auto names = blocks_case_names("blocks_compare");
  ASSERT_EQ(names.size(), 12u);
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const json& c = blocks_case("blocks_compare", name);
    const std::string op = c.at("op");
    const Tensor<double> a(array_from_json<double>(c.at("a")));
    const bool scalar = c.contains("scalar");
    const Tensor<double> b =
        scalar ? Tensor<double>() : Tensor<double>(array_from_json<double>(c.at("b")));
    const double s = scalar ? c.at("scalar").get<double>() : 0.0;
    xt::xarray<bool> m;
    if (op == "gt") m = scalar ? (a > s) : (a > b);
    if (op == "lt") m = scalar ? (a < s) : (a < b);
    if (op == "ge") m = scalar ? (a >= s) : (a >= b);
    if (op == "le") m = scalar ? (a <= s) : (a <= b);
    if (op == "eq") m = scalar ? (a == s) : (a == b);
    if (op == "ne") m = scalar ? (a != s) : (a != b);
    EXPECT_EQ(m, mask_from_json(c.at("output")));
    // The named function and the operator agree, and so does the scalar on the other side.
    if (op == "gt") {
      EXPECT_EQ(scalar ? gt(a, s) : gt(a, b), m);
    }
    if (op == "lt" && scalar) {
      EXPECT_EQ(s > a, m);
    }
    if (op == "ge" && scalar) {
      EXPECT_EQ(s <= a, m);
    }
  }
}

// --- comparisons are constants that where and masked_fill take -----------------------------

TEST(Comparison, MasksFeedWhereAndMaskedFill) {
  auto x = tensor<double>(xt::xarray<double>{{-1.5, 0.5}, {2.0, -0.25}}, true);
  const xt::xarray<bool> positive = x > 0.0;
  EXPECT_EQ(positive, (xt::xarray<bool>{{false, true}, {true, false}}));
  // relu written three ways: where(x > 0, x, 0), masked_fill(x, x <= 0, 0), relu.
  const auto r1 = where(x > 0.0, x, 0.0);
  const auto r2 = masked_fill(x, x <= 0.0, 0.0);
  const auto r3 = where(!positive, zeros_like(x), x);
  EXPECT_TRUE(all_close("where", r1.value(), relu(x).value()));
  EXPECT_TRUE(all_close("masked_fill", r2.value(), relu(x).value()));
  EXPECT_TRUE(all_close("where(!m)", r3.value(), relu(x).value()));
  sum(r1 * 3.0).backward();
  EXPECT_TRUE(all_close("grad", x.grad(), xt::xarray<double>{{0.0, 3.0}, {3.0, 0.0}}));
  // A comparison records nothing: it is not part of the graph.
  const std::size_t before = tape_size();
  (void)(x < 1.0);
  (void)ne(x, x);
  EXPECT_EQ(tape_size(), before);
}

TEST(Comparison, FloatAndBroadcastShapes) {
  const auto a = reshape(tensor<float>({1.0f, 2.0f, 3.0f}), {3, 1});
  const auto b = tensor<float>({2.0f, 3.0f});
  const xt::xarray<bool> m = a >= b;
  EXPECT_EQ(to_shape(m.shape()), (Shape{3, 2}));
  EXPECT_EQ(m, (xt::xarray<bool>{{false, false}, {true, false}, {true, true}}));
  xt::xarray<bool> second = {false, true, false};
  second.reshape({3, 1});
  EXPECT_EQ(eq(a, 2.0f), second);
}

// --- ones_like, zeros_like, to ------------------------------------------------------------------

TEST(Factories, OnesAndZerosLike) {
  const auto x = tensor<float>({{1.0f, 2.0f, 3.0f}, {4.0f, 5.0f, 6.0f}});
  const Tensor<float> o = ones_like(x), z = zeros_like(x, true);
  EXPECT_EQ(o.shape(), x.shape());
  EXPECT_TRUE(all_close("ones", o.value(), xt::xarray<float>(xt::ones<float>({2, 3}))));
  EXPECT_TRUE(all_close("zeros", z.value(), xt::xarray<float>(xt::zeros<float>({2, 3}))));
  EXPECT_FALSE(o.requires_grad());
  EXPECT_TRUE(z.requires_grad());
  EXPECT_TRUE(z.is_leaf());
  EXPECT_EQ(zeros_like(scalar<double>(4.0)).shape(), Shape{});
}

TEST(Cast, GradientsFlowBothWaysAndSameTypeIsIdentity) {
  auto x = tensor<double>(xt::xarray<double>{0.1, 1.0 / 3.0, 2.5}, true);
  const Tensor<float> f = to<float>(x);
  EXPECT_EQ(f.value()(1), 1.0f / 3.0f);
  sum(f * tensor<float>({1.0f, 2.0f, 4.0f})).backward();
  EXPECT_TRUE(all_close("grad", x.grad(), xt::xarray<double>{1.0, 2.0, 4.0}));
  EXPECT_TRUE(to<double>(x).same(x));  // torch returns self for a no-op .to()
  auto y = tensor<float>(xt::xarray<float>{0.5f, -1.5f}, true);
  sum(square(to<double>(y))).backward();
  EXPECT_TRUE(
      all_close("grad of a float through double", y.grad(), xt::xarray<float>{1.0f, -3.0f}));
  // A double computation checked by gradcheck through a float round trip: the rule is exact.
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return to<double>(to<float>(in[0])) * in[0]; },
                               {tensor<double>(xt::xarray<double>{0.5, -2.0, 8.0}, true)}, 1e-3,
                               1e-2, 1e-2));
  NoGradGuard no_grad;
  EXPECT_FALSE(to<float>(x).requires_grad());
}

// --- gradcheck ------------------------------------------------------------------------------

using Fn1 = std::function<Tensor<double>(const Tensor<double>&)>;

TEST(ElementwiseBlocksGradcheck, SinCosClamp) {
  std::mt19937 rng(231);
  // Values 0.05 away from the bounds -0.5 and 0.7: clamp's kinks are where finite differences fail.
  auto away_from_bounds = [&](const Shape& shape) {
    Tensor<double> x = uniform(rng, shape, -1.5, 1.5);
    for (auto& v : x.mutable_value())
      if (std::abs(v + 0.5) < 0.05 || std::abs(v - 0.7) < 0.05) v += 0.12;
    return x;
  };
  const std::vector<std::pair<std::string, Fn1>> ops = {
      {"sin", [](const auto& x) { return sin(x); }},
      {"cos", [](const auto& x) { return cos(x); }},
      {"clamp both", [](const auto& x) { return clamp(x, -0.5, 0.7); }},
      {"clamp min", [](const auto& x) { return clamp(x, -0.5); }},
      {"clamp max", [](const auto& x) { return clamp(x, std::nullopt, 0.7); }},
  };
  for (const auto& [name, f] : ops)
    for (const Shape& shape : {Shape{7}, Shape{2, 3, 4}, Shape{}}) {
      SCOPED_TRACE(name + " on " + shape_str(shape));
      auto x = away_from_bounds(shape);
      EXPECT_TRUE(gradcheck_passes([f = f](const auto& in) { return f(in[0]); }, {x}));
      const auto w = uniform(rng, shape, -2.0, 2.0, false);
      EXPECT_TRUE(
          gradcheck_passes(weighted_sum([f = f](const auto& in) { return f(in[0]); }, w), {x}));
    }
}

const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{2, 3}, {2, 3}},    {{2, 3}, {3}}, {{4, 1, 3}, {2, 1}},
    {{2, 1}, {4, 1, 3}}, {{2, 3}, {}},  {{}, {}}};

TEST(ElementwiseBlocksGradcheck, MinimumMaximumWithBroadcasting) {
  std::mt19937 rng(232);
  for (const bool is_max : {false, true})
    for (const auto& [sa, sb] : kBroadcastPairs) {
      SCOPED_TRACE(std::string(is_max ? "maximum " : "minimum ") + shape_str(sa) + " " +
                   shape_str(sb));
      auto a = uniform(rng, sa, -2.0, 2.0), b = uniform(rng, sb, -2.0, 2.0);
      auto f = [is_max](const auto& in) {
        return is_max ? maximum(in[0], in[1]) : minimum(in[0], in[1]);
      };
      EXPECT_TRUE(gradcheck_passes(f, {a, b}));
      const Shape out = broadcast_shapes("test", sa, sb);
      EXPECT_TRUE(gradcheck_passes(weighted_sum(f, uniform(rng, out, -2.0, 2.0, false)), {a, b}));
    }
}

// Ties split the gradient in halves, as torch does; the values are exact.
TEST(ElementwiseBlocks, MinimumMaximumTiesSplitTheGradient) {
  auto a = tensor<double>(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  auto b = tensor<double>(xt::xarray<double>{1.0, 5.0, -3.0}, true);
  sum(maximum(a, b) * tensor<double>({2.0, 4.0, 8.0})).backward();
  EXPECT_TRUE(all_close("a", a.grad(), xt::xarray<double>{1.0, 0.0, 8.0}));
  EXPECT_TRUE(all_close("b", b.grad(), xt::xarray<double>{1.0, 4.0, 0.0}));
}

TEST(ElementwiseBlocksGradcheck, WhereWithBroadcasting) {
  std::mt19937 rng(233);
  std::bernoulli_distribution coin(0.5);
  const std::vector<std::tuple<Shape, Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}, {3, 4}}, {{4}, {3, 4}, {3, 4}}, {{3, 1}, {1, 4}, {3, 1}},
      {{2, 3, 1}, {3, 4}, {}},  {{}, {2, 2}, {2}},     {{3, 4}, {}, {}}};
  for (const auto& [sc, si, so] : shapes) {
    SCOPED_TRACE(shape_str(sc) + " " + shape_str(si) + " " + shape_str(so));
    xt::xarray<bool> cond = xt::zeros<bool>(sc);
    for (auto&& v : cond) v = coin(rng);
    auto input = uniform(rng, si, -1.0, 1.0), other = uniform(rng, so, -1.0, 1.0);
    auto f = [cond](const auto& in) { return where(cond, in[0], in[1]); };
    EXPECT_TRUE(gradcheck_passes(f, {input, other}));
    const Shape out = broadcast_shapes("test", sc, broadcast_shapes("test", si, so));
    EXPECT_TRUE(
        gradcheck_passes(weighted_sum(f, uniform(rng, out, -2.0, 2.0, false)), {input, other}));
    EXPECT_TRUE(
        gradcheck_passes([cond](const auto& in) { return where(cond, 1.5, in[0]); }, {other}));
  }
}

// --- errors ---------------------------------------------------------------------------------

TEST(ElementwiseBlocksErrors, ShapesAndNamesInMessages) {
  auto a = zeros<double>({2, 3}).set_name("scores");
  const auto b = zeros<double>({4});
  EXPECT_TRUE(
      throws_invalid_argument([&] { minimum(a, b); }, {"minimum", "(2, 3)", "(4,)", "scores"}));
  EXPECT_TRUE(throws_invalid_argument([&] { maximum(b, a); }, {"maximum", "(2, 3)", "(4,)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { (void)(a > b); }, {"gt", "(2, 3)", "(4,)", "scores"}));
  EXPECT_TRUE(throws_invalid_argument([&] { (void)(a == b); }, {"eq", "(2, 3)", "(4,)"}));
  const xt::xarray<bool> bad_mask = xt::ones<bool>({5});
  EXPECT_TRUE(throws_invalid_argument([&] { where(bad_mask, a, a); },
                                      {"where", "(5,)", "(2, 3)", "scores"}));
  EXPECT_TRUE(throws_invalid_argument([&] { where(xt::xarray<bool>(xt::ones<bool>({3})), a, b); },
                                      {"where", "(2, 3)", "(4,)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { clamp(a, std::nullopt, std::nullopt); },
                                      {"clamp", "scores (2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([] { sin(Tensor<float>()); }, {"sin", "undefined"}));
  EXPECT_TRUE(throws_invalid_argument([] { to<float>(Tensor<double>()); }, {"to", "undefined"}));
  EXPECT_TRUE(throws_invalid_argument([] { ones_like(Tensor<double>()); }, {"ones_like"}));
}

// NaN propagates through clamp, minimum and maximum, as in torch.
TEST(ElementwiseBlocks, NaNPropagatesAndClampMinAboveMaxGivesMax) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto x = tensor<double>({nan, -3.0, 3.0});
  const auto y = clamp(x, -1.0, 1.0).value();
  EXPECT_TRUE(std::isnan(y(0)));
  EXPECT_EQ(y(1), -1.0);
  EXPECT_EQ(y(2), 1.0);
  EXPECT_EQ(clamp(x, 2.0, 1.0).value()(1), 1.0);
  const auto one = tensor<double>({1.0, nan});
  const auto other = tensor<double>({nan, 1.0});
  for (const auto& r : {maximum(one, other), minimum(one, other), maximum(other, one)})
    EXPECT_TRUE(std::isnan(r.value()(0)) && std::isnan(r.value()(1)));
}

}  // namespace
}  // namespace tapegrad::test
