// PyTorch habits (README "PyTorch habits"): one include with the optimizer, random tensors that are
// the same on every platform for a seed, printing, and type deduction / xtensor interop.
// Only tapegrad.h is included, as a user would.
#include <cmath>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "tapegrad.h"

using namespace tapegrad;

namespace {

std::vector<double> values_of(const Tensor<double>& t) {
  return std::vector<double>(t.value().begin(), t.value().end());
}

std::string str(const Tensor<double>& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

}  // namespace

// --- the optimizer is in tapegrad.h, and the README's training loop trains --------------------
TEST(Habits, TrainingLoopFromTheReadme) {
  manual_seed(0);
  Tensor<double> x = randn({64, 1});
  Tensor<double> y = x * 3.0 + 0.5;  // the line to recover
  Tensor<double> w = zeros({1, 1}, true), b = zeros({1}, true);
  SGD<double> opt({w, b}, /*lr=*/0.1);
  double first = 0, last = 0;
  for (int epoch = 0; epoch < 100; ++epoch) {
    Tensor<double> loss = mse_loss(matmul(x, w) + b, y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    (epoch == 0 ? first : last) = loss.item();
  }
  EXPECT_LT(last, 1e-6 * first);
  EXPECT_NEAR(w.value()(0, 0), 3.0, 1e-3);
  EXPECT_NEAR(b.value()(0), 0.5, 1e-3);
}

// --- random tensors ----------------------------------------------------------------------------
TEST(Random, SameSeedSameNumbers) {
  manual_seed(123);
  auto a = randn({2, 3});
  auto r = rand({4});
  manual_seed(123);
  auto b = randn({2, 3});
  auto s = rand({4});
  static_assert(std::is_same_v<decltype(a), Tensor<double>>, "randn defaults to double");
  EXPECT_EQ(values_of(a), values_of(b));
  EXPECT_EQ(values_of(r), values_of(s));
  manual_seed(124);
  EXPECT_NE(values_of(randn({2, 3})), values_of(a));
}

// The stream is the standard-fixed std::mt19937_64 turned into numbers by our own formulas, so
// every platform gives these numbers (no std::*_distribution involved).
TEST(Random, FormulasOverTheStandardEngine) {
  manual_seed(7);
  auto u = rand({3});
  auto n = randn({2});
  std::mt19937_64 gen(7);
  auto uniform = [&] { return static_cast<double>(gen() >> 11) * 0x1.0p-53; };
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(u.value()(i), uniform());
  for (std::size_t i = 0; i < 2; ++i) {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    EXPECT_DOUBLE_EQ(n.value()(i), std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
  }
  // Row-major, one draw per element: a (2, 3) tensor is the first six numbers of a (6,) one.
  manual_seed(9);
  auto m = randn({2, 3});
  manual_seed(9);
  EXPECT_EQ(values_of(m), values_of(randn({6})));
}

TEST(Random, NormalAndUniformMoments) {
  manual_seed(1);
  auto n = randn({20000});
  auto u = rand({20000});
  const double mean = xt::mean(n.value())(), var = xt::variance(n.value())();
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(var, 1.0, 0.03);
  EXPECT_NEAR(xt::mean(u.value())(), 0.5, 0.01);
  EXPECT_GE(xt::amin(u.value())(), 0.0);
  EXPECT_LT(xt::amax(u.value())(), 1.0);
}

TEST(Random, RequiresGradAndFloat) {
  manual_seed(3);
  auto w = randn<float>({3}, true);
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
  manual_seed(3);
  auto d = randn({3});
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(w.value()(i), static_cast<float>(d.value()(i)));
}

TEST(Random, RandintRangeAndErrors) {
  manual_seed(5);
  auto k = randint(-2, 3, {1000});
  std::vector<int> seen(5, 0);
  for (double v : k.value()) {
    ASSERT_EQ(v, std::floor(v));
    ASSERT_GE(v, -2.0);
    ASSERT_LT(v, 3.0);
    ++seen[static_cast<int>(v) + 2];
  }
  for (int c : seen) EXPECT_GT(c, 150);  // each of the 5 values about 200 times
  EXPECT_THROW(randint(3, 3, {2}), std::invalid_argument);
}

// One generator per thread: another thread's draws do not move this thread's stream, and a new
// thread starts from default_seed.
TEST(Random, PerThread) {
  manual_seed(11);
  const auto a = values_of(rand({2}));
  std::vector<double> other_first, fresh_first;
  std::thread t([&] {
    fresh_first = values_of(rand({1}));
    manual_seed(99);
    other_first = values_of(rand({100}));
  });
  t.join();
  const auto b = values_of(rand({2}));
  manual_seed(11);
  EXPECT_EQ(values_of(rand({4})), (std::vector<double>{a[0], a[1], b[0], b[1]}));
  manual_seed(default_seed);
  EXPECT_EQ(fresh_first, values_of(rand({1})));
}

// --- printing ----------------------------------------------------------------------------------
TEST(Print, ScalarVectorMatrix) {
  EXPECT_EQ(str(scalar<double>(3.5)),
            "tensor(3.5000, shape=(), dtype=float64, requires_grad=false)");
  EXPECT_EQ(str(tensor({1.0, 2.0, -3.0}, true)),
            "tensor([ 1.,  2., -3.], shape=(3,), dtype=float64, requires_grad=true)");
  auto w = tensor({{0.5, -1.25}, {2.0, 10.0}}, true);
  w.set_name("w");
  EXPECT_EQ(str(w),
            "tensor([[ 0.5000, -1.2500],\n"
            "        [ 2.0000, 10.0000]], shape=(2, 2), dtype=float64, requires_grad=true, "
            "name=\"w\")");
  std::ostringstream f;
  f << zeros<float>({2});
  EXPECT_EQ(f.str(), "tensor([0., 0.], shape=(2,), dtype=float32, requires_grad=false)");
}

TEST(Print, ThreeAndFourDimensions) {
  auto t3 = tensor(xt::xarray<double>(xt::reshape_view(xt::arange<double>(8), {2, 2, 2})));
  EXPECT_EQ(str(t3),
            "tensor([[[0., 1.],\n"
            "         [2., 3.]],\n"
            "\n"
            "        [[4., 5.],\n"
            "         [6., 7.]]], shape=(2, 2, 2), dtype=float64, requires_grad=false)");
  auto t4 = tensor(xt::xarray<double>(xt::reshape_view(xt::arange<double>(16), {2, 2, 2, 2})));
  EXPECT_EQ(str(t4),
            "tensor([[[[ 0.,  1.],\n"
            "          [ 2.,  3.]],\n"
            "\n"
            "         [[ 4.,  5.],\n"
            "          [ 6.,  7.]]],\n"
            "\n"
            "\n"
            "        [[[ 8.,  9.],\n"
            "          [10., 11.]],\n"
            "\n"
            "         [[12., 13.],\n"
            "          [14., 15.]]]], shape=(2, 2, 2, 2), dtype=float64, requires_grad=false)");
}

TEST(Print, SummarisedPastAThousandElements) {
  const std::string s = str(arange<double>(0, 2000));
  EXPECT_EQ(s,
            "tensor([   0.,    1.,    2.,  ..., 1997., 1998., 1999.], shape=(2000,), "
            "dtype=float64, requires_grad=false)");
  const std::string m = str(zeros({40, 40}));
  EXPECT_NE(m.find("...,\n"), std::string::npos)
      << m;  // a row "..." between the first 3 and last 3
  EXPECT_LT(m.size(), 400u);
}

TEST(Print, WrapsLongRowsAndUsesScientificForWideRanges) {
  EXPECT_EQ(str(tensor({1e-5, 1.0})),
            "tensor([1.0000e-05, 1.0000e+00], shape=(2,), dtype=float64, requires_grad=false)");
  const std::string s = str(arange<double>(0, 50) * 0.5);
  for (std::size_t start = 0, end; (end = s.find('\n', start)) != std::string::npos;
       start = end + 1)
    EXPECT_LE(end - start, 80u) << s;
  EXPECT_NE(s.find('\n'), std::string::npos);
}

TEST(Print, GradFnNamesTheOpUntilBackwardFreesIt) {
  auto x = tensor({1.0, 2.0}, true);
  auto p = softmax(x, 0);
  EXPECT_NE(str(p).find("requires_grad=true, grad_fn=<softmax>)"), std::string::npos) << str(p);
  auto loss = sum(p * x);
  EXPECT_NE(str(loss).find("grad_fn=<sum>"), std::string::npos);
  loss.backward();
  EXPECT_NE(str(loss).find("grad_fn=<freed>"), std::string::npos);
  EXPECT_EQ(str(x).find("grad_fn"), std::string::npos);  // a leaf has none
}

TEST(Print, XtensorValuesPrintWithoutExtraIncludes) {
  std::ostringstream os;
  os << tensor({1.0, 2.0}).value();
  EXPECT_EQ(os.str(), "{ 1.,  2.}");
}

// --- type deduction and xtensor interop --------------------------------------------------------
TEST(Deduction, TensorFromValuesAndDoubleDefaults) {
  auto v = tensor({1.0, 2.0});
  auto m = tensor({{1.0f, 2.0f, 3.0f}, {4.0f, 5.0f, 6.0f}});
  auto z = zeros({2, 3});
  auto o = ones({4}, true);
  static_assert(std::is_same_v<decltype(v), Tensor<double>>, "deduced from the values");
  static_assert(std::is_same_v<decltype(m), Tensor<float>>, "deduced from the values");
  static_assert(std::is_same_v<decltype(z), Tensor<double>>, "zeros defaults to double");
  static_assert(std::is_same_v<decltype(zeros<float>({2})), Tensor<float>>, "explicit float");
  EXPECT_EQ(m.shape(), (Shape{2, 3}));
  EXPECT_EQ(m.value()(1, 0), 4.0f);
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_TRUE(o.requires_grad());
  EXPECT_THROW(tensor({{1.0, 2.0}, {3.0}}), std::invalid_argument);
}

TEST(Deduction, XarrayOperandIsAConstant) {
  auto x = tensor({1.0, 2.0, 3.0}, true);
  xt::xarray<double> xs{2.0, 3.0, 4.0};
  const xt::xarray<double> ones_{1.0, 1.0, 1.0};
  Tensor<double> y = x * xs + ones_;                  // a Tensor, not an xtensor expression
  Tensor<double> z = (xs - x) / xs + (xs + 1.0) * x;  // either side, any xtensor expression
  EXPECT_EQ(values_of(y), (std::vector<double>{3.0, 7.0, 13.0}));
  sum(y + z).backward();
  // d/dx [x xs + 1 + (xs - x)/xs + (xs + 1) x] = xs - 1/xs + xs + 1
  for (std::size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(x.grad()(i), 2 * xs(i) + 1.0 - 1.0 / xs(i));
}

// Sizes as separate arguments, as torch writes them, and shapes read from .shape() (std::size_t)
// passed straight to reshape: no narrowing warning (this file builds with -Werror).
TEST(Habits, TorchStyleSizesAndSizeTShapes) {
  manual_seed(3);
  const Tensor<double> a = randn(2, 3);
  manual_seed(3);
  const Tensor<double> b = randn({2, 3});
  EXPECT_EQ(a.value(), b.value());
  EXPECT_EQ(rand<float>(4).shape(), (Shape{4}));
  EXPECT_EQ(zeros(2, 3).shape(), (Shape{2, 3}));
  EXPECT_EQ(ones<float>(std::size_t{5}).shape(), (Shape{5}));
  EXPECT_THROW(zeros(2, -1), std::invalid_argument);

  const std::size_t n = a.shape()[0];
  EXPECT_EQ(reshape(a, {n, -1}).shape(), (Shape{2, 3}));
  EXPECT_EQ(reshape(a, a.shape()).shape(), (Shape{2, 3}));
  EXPECT_EQ(reshape(a, std::vector<long>{3, 2}).shape(), (Shape{3, 2}));
  EXPECT_EQ(reshape(sum(a), {}).shape(), Shape{});
  EXPECT_THROW(reshape(a, {std::size_t(-1), 1}), std::length_error);
}
