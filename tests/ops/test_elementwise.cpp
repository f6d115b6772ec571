// ops/elementwise.h: binary ops with broadcasting, scalar operands and operators, unary ops.
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/gradcheck_gtest.h"
#include "ops/elementwise.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

using Fn1 = std::function<Tensor<double>(const Tensor<double>&)>;

// --- PyTorch reference ----------------------------------------------------------------------

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const json& args = c.at("args");
  if (op == "add") return add(in[0], in[1]);
  if (op == "sub") return sub(in[0], in[1]);
  if (op == "mul") return mul(in[0], in[1]);
  if (op == "div") return div(in[0], in[1]);
  if (op.rfind("scalar_", 0) == 0) {  // the operators, with the scalar on either side
    const T s = args.at("scalar").get<T>();
    const Tensor<T>& x = in[0];
    if (op == "scalar_add") return x + s;
    if (op == "scalar_radd") return s + x;
    if (op == "scalar_sub") return x - s;
    if (op == "scalar_rsub") return s - x;
    if (op == "scalar_mul") return x * s;
    if (op == "scalar_rmul") return s * x;
    if (op == "scalar_div") return x / s;
    if (op == "scalar_rdiv") return s / x;
  }
  if (op == "neg") return -in[0];
  if (op == "pow") return pow(in[0], args.at("p").get<T>());
  if (op == "square") return square(in[0]);
  if (op == "sqrt") return sqrt(in[0]);
  if (op == "exp") return exp(in[0]);
  if (op == "log") return log(in[0]);
  if (op == "abs") return abs(in[0]);
  if (op == "relu") return relu(in[0]);
  if (op == "tanh") return tanh(in[0]);
  if (op == "sigmoid") return sigmoid(in[0]);
  throw std::runtime_error("test_elementwise: no dispatch for op " + op);
}

TAPEGRAD_TORCH_REFERENCE_TESTS(ElementwiseTorch, "elementwise")

// The operators are thin wrappers; this proves each one reaches the op it claims to (a swapped
// operand in `s - x` or `s / x` would still produce a plausible-looking number).
TEST(ElementwiseOperators, AgreeWithNamedOps) {
  std::mt19937 rng(11);
  const auto a = away_from_zero(rng, {2, 3}, 0.5, 2.0, false);
  const auto b = away_from_zero(rng, {3}, 0.5, 2.0, false);
  const double s = 1.75;
  const xt::xarray<double> ones = xt::ones<double>(a.value().shape());
  EXPECT_TRUE(all_close("a + b", (a + b).value(), add(a, b).value()));
  EXPECT_TRUE(all_close("a - b", (a - b).value(), sub(a, b).value()));
  EXPECT_TRUE(all_close("a * b", (a * b).value(), mul(a, b).value()));
  EXPECT_TRUE(all_close("a / b", (a / b).value(), div(a, b).value()));
  EXPECT_TRUE(all_close("-a", (-a).value(), xt::xarray<double>(-a.value())));
  EXPECT_TRUE(all_close("s - a", (s - a).value(), xt::xarray<double>(s - a.value())));
  EXPECT_TRUE(all_close("s / a", (s / a).value(), xt::xarray<double>(s / a.value())));
  EXPECT_TRUE(all_close("a / s", (a / s).value(), xt::xarray<double>(a.value() / s)));
  EXPECT_TRUE(all_close("s + a", (s + a).value(), xt::xarray<double>(a.value() + s * ones)));
}

// --- gradcheck ------------------------------------------------------------------------------

const std::vector<std::pair<
    std::string, std::function<Tensor<double>(const Tensor<double>&, const Tensor<double>&)>>>
    kBinary = {
        {"add", [](const auto& a, const auto& b) { return add(a, b); }},
        {"sub", [](const auto& a, const auto& b) { return sub(a, b); }},
        {"mul", [](const auto& a, const auto& b) { return mul(a, b); }},
        {"div", [](const auto& a, const auto& b) { return div(a, b); }},
};

// Broadcasting is where backward rules usually go wrong: the gradient of a stretched operand must
// be summed back over the stretched axes, including the axes broadcasting prepended.
TEST(ElementwiseGradcheck, BinaryOpsWithBroadcasting) {
  std::mt19937 rng(1);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3}, {2, 3}}, {{2, 3}, {3}}, {{4, 1, 3}, {2, 1}}, {{2, 1}, {4, 1, 3}}, {{2, 3}, {}},
      {{}, {2, 3}},     {{}, {}},      {{3, 1}, {1, 4}},
  };
  for (const auto& [name, op] : kBinary) {
    for (const auto& [sa, sb] : shapes) {
      SCOPED_TRACE(name + " " + shape_str(sa) + " with " + shape_str(sb));
      // Divisors stay away from 0 so that 1/b is smooth over the finite-difference step.
      auto a = away_from_zero(rng, sa, 0.3, 2.0);
      auto b = away_from_zero(rng, sb, 0.5, 2.0);
      EXPECT_TRUE(gradcheck_passes([op = op](const auto& in) { return op(in[0], in[1]); }, {a, b}));
    }
  }
}

// Only one operand requires grad: the other's rule must be skipped, not crash or write a grad.
TEST(ElementwiseGradcheck, OneOperandConstant) {
  std::mt19937 rng(2);
  for (const auto& [name, op] : kBinary) {
    SCOPED_TRACE(name);
    auto a = away_from_zero(rng, {2, 3});
    auto b = away_from_zero(rng, {3}, 0.5, 2.0, /*requires_grad=*/false);
    EXPECT_TRUE(gradcheck_passes([op = op](const auto& in) { return op(in[0], in[1]); }, {a, b}));
    EXPECT_TRUE(gradcheck_passes([op = op](const auto& in) { return op(in[1], in[0]); }, {a, b}));
    EXPECT_FALSE(b.has_grad());
  }
}

TEST(ElementwiseGradcheck, ScalarOperandsOnBothSides) {
  std::mt19937 rng(3);
  const double s = -1.3;
  const std::vector<std::pair<std::string, Fn1>> forms = {
      {"x + s", [=](const auto& x) { return x + s; }},
      {"s + x", [=](const auto& x) { return s + x; }},
      {"x - s", [=](const auto& x) { return x - s; }},
      {"s - x", [=](const auto& x) { return s - x; }},
      {"x * s", [=](const auto& x) { return x * s; }},
      {"s * x", [=](const auto& x) { return s * x; }},
      {"x / s", [=](const auto& x) { return x / s; }},
      {"s / x", [=](const auto& x) { return s / x; }},
  };
  for (const auto& [name, f] : forms) {
    for (const Shape& shape : {Shape{2, 3}, Shape{}}) {
      SCOPED_TRACE(name + " on " + shape_str(shape));
      auto x = away_from_zero(rng, shape, 0.5, 2.0);
      EXPECT_TRUE(gradcheck_passes([f = f](const auto& in) { return f(in[0]); }, {x}));
    }
  }
}

// Each unary op with an input from its smooth domain: (lo, hi) magnitudes, signed or positive.
struct Unary {
  std::string name;
  Fn1 f;
  bool positive;  // domain is x > 0
};

const std::vector<Unary>& unary_ops() {
  static const std::vector<Unary> ops = {
      {"neg", [](const auto& x) { return neg(x); }, false},
      {"pow 3", [](const auto& x) { return pow(x, 3.0); }, false},
      {"pow 2", [](const auto& x) { return pow(x, 2.0); }, false},
      {"pow 0", [](const auto& x) { return pow(x, 0.0); }, false},
      {"pow 0.5", [](const auto& x) { return pow(x, 0.5); }, true},
      {"pow -1.5", [](const auto& x) { return pow(x, -1.5); }, true},
      {"square", [](const auto& x) { return square(x); }, false},
      {"sqrt", [](const auto& x) { return sqrt(x); }, true},
      {"exp", [](const auto& x) { return exp(x); }, false},
      {"log", [](const auto& x) { return log(x); }, true},
      {"abs", [](const auto& x) { return abs(x); }, false},
      {"relu", [](const auto& x) { return relu(x); }, false},
      {"tanh", [](const auto& x) { return tanh(x); }, false},
      {"sigmoid", [](const auto& x) { return sigmoid(x); }, false},
  };
  return ops;
}

Tensor<double> unary_input(std::mt19937& rng, const Unary& u, const Shape& shape) {
  return u.positive ? uniform(rng, shape, 0.3, 2.5) : away_from_zero(rng, shape, 0.2, 2.0);
}

TEST(ElementwiseGradcheck, UnaryOps) {
  std::mt19937 rng(4);
  for (const auto& u : unary_ops()) {
    for (const Shape& shape : {Shape{5}, Shape{2, 3}, Shape{}}) {
      SCOPED_TRACE(u.name + " on " + shape_str(shape));
      auto x = unary_input(rng, u, shape);
      EXPECT_TRUE(gradcheck_passes([f = u.f](const auto& in) { return f(in[0]); }, {x}));
    }
  }
}

TEST(ElementwiseGradcheck, NonUniformUpstreamGradient) {
  std::mt19937 rng(5);
  const auto w = uniform(rng, {3, 4}, -2.0, 2.0, false);
  for (const auto& u : unary_ops()) {
    SCOPED_TRACE(u.name);
    auto x = unary_input(rng, u, {3, 4});
    EXPECT_TRUE(
        gradcheck_passes(weighted_sum([f = u.f](const auto& in) { return f(in[0]); }, w), {x}));
  }
  for (const auto& [name, op] : kBinary) {
    SCOPED_TRACE(name);
    auto a = away_from_zero(rng, {3, 1}, 0.3, 2.0);
    auto b = away_from_zero(rng, {4}, 0.5, 2.0);
    EXPECT_TRUE(gradcheck_passes(
        weighted_sum([op = op](const auto& in) { return op(in[0], in[1]); }, w), {a, b}));
  }
}

// A tensor used as both operands gets both contributions: d(x*x)/dx = 2x, d(x/x)/dx = 0.
TEST(ElementwiseGradcheck, SameTensorAsBothOperands) {
  std::mt19937 rng(6);
  for (const auto& [name, op] : kBinary) {
    SCOPED_TRACE(name);
    auto x = away_from_zero(rng, {2, 2}, 0.5, 2.0);
    EXPECT_TRUE(gradcheck_passes([op = op](const auto& in) { return op(in[0], in[0]); }, {x}));
  }
}

// --- errors ---------------------------------------------------------------------------------

// A shape mistake must be reported where it is made, with the op and both shapes, so the user can
// find the offending line without a debugger.
TEST(ElementwiseErrors, IncompatibleShapesNameOpAndBothShapes) {
  const auto a = zeros<double>({2, 3});
  const auto b = zeros<double>({4});
  for (const auto& [name, op] : kBinary) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(throws_invalid_argument([&, op = op] { op(a, b); }, {name, "(2, 3)", "(4,)"}));
  }
  EXPECT_TRUE(throws_invalid_argument([&] { (void)(a + b); }, {"add", "(2, 3)", "(4,)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { (void)(b - a); }, {"sub", "(4,)", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { (void)(a * b); }, {"mul", "(2, 3)", "(4,)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { (void)(a / b); }, {"div", "(2, 3)", "(4,)"}));
  const auto c = zeros<float>({4, 1, 3});
  const auto d = zeros<float>({2, 2});
  EXPECT_TRUE(throws_invalid_argument([&] { mul(c, d); }, {"mul", "(4, 1, 3)", "(2, 2)"}));
}

TEST(ElementwiseErrors, UndefinedTensorIsRejected) {
  EXPECT_TRUE(throws_invalid_argument([] { exp(Tensor<double>()); }, {"exp", "undefined"}));
  EXPECT_TRUE(throws_invalid_argument([] { add(Tensor<double>(), ones<double>({2})); }, {"add"}));
}

// The outer-product broadcast (a column against a row, x_query[:, None] - x_train[None, :]) has its
// own loop in kernels/elementwise.h: it agrees with xtensor's broadcasting both ways round, for
// (n, 1) with (1, m) and with (m,), at a size that goes parallel, and passes gradcheck.
TEST(ElementwiseOuter, ColumnAgainstRowMatchesXtensor) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-2, 2);
  auto random = [&](const Shape& shape) {
    xt::xarray<double> v = xt::zeros<double>(shape);
    for (auto& e : v) e = u(rng);
    return Tensor<double>(v, true);
  };
  for (auto [n, m] : {std::pair<std::size_t, std::size_t>{3, 4}, {300, 257}}) {
    const auto col = random({n, 1}), row = random({1, m}), flat = random({m});
    const xt::xarray<double> want = col.value() - row.value();
    EXPECT_TRUE(xt::allclose((col - row).value(), want, 0.0, 0.0)) << n << "x" << m;
    const xt::xarray<double> want_flat = flat.value() * col.value();
    EXPECT_TRUE(xt::allclose((flat * col).value(), want_flat, 0.0, 0.0)) << n << "x" << m;
  }
  auto sub_op = [](const std::vector<Tensor<double>>& in) { return in[0] - in[1]; };
  auto div_op = [](const std::vector<Tensor<double>>& in) { return in[1] / in[0]; };
  EXPECT_TRUE(gradcheck_passes(sub_op, {random({3, 1}), random({1, 4})}));
  EXPECT_TRUE(gradcheck_passes(div_op, {random({2, 3, 1}), random({3})}));
}

}  // namespace
}  // namespace tapegrad::test
