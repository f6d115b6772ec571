// gradcheck itself: it must pass correct backward rules, catch a wrong one with a useful message,
// and work for ops users write themselves with record().
#include <cmath>
#include <random>
#include <string>

#include <gtest/gtest.h>
#include <xtensor/xmath.hpp>

#include "autograd/gradcheck.h"
#include "autograd/gradcheck_gtest.h"
#include "autograd/tape.h"
#include "ops/elementwise.h"
#include "ops/reduction.h"

using namespace tapegrad;

namespace {

// --- writing your own op --------------------------------------------------------------------
//
// hypotenuse(a, b) = sqrt(a^2 + b^2), elementwise, for same-shape a and b. An op is three steps:
//   1. compute the forward value from the inputs' values;
//   2. record() it with its inputs and a backward closure;
//   3. in the closure, turn grad (d loss / d out) into each input's gradient, and hand it to
//      accumulate_grad (which adds it, so an input used several times gets every contribution).
// The closure may read the inputs' values and the output's value (out.value); it runs only if
// some input requires grad, and should skip inputs that do not.
Tensor<double> hypotenuse(const Tensor<double>& a, const Tensor<double>& b) {
  xt::xarray<double> r = xt::sqrt(a.value() * a.value() + b.value() * b.value());
  return record<double>(
      "hypotenuse", std::move(r), {a, b},
      [a, b](const xt::xarray<double>& grad, const Node<double>& out) {
        // d r / d a = a / r,   d r / d b = b / r
        if (a.requires_grad())
          accumulate_grad(a, xt::xarray<double>(grad * a.value() / out.value), "hypotenuse");
        if (b.requires_grad())
          accumulate_grad(b, xt::xarray<double>(grad * b.value() / out.value), "hypotenuse");
      });
}

// exp with a derivative off by a relative amount: grad * exp(x) * (1 + error).
Tensor<double> exp_off_by(const Tensor<double>& x, double error) {
  return record<double>("exp_off_by", xt::exp(x.value()), {x},
                        [x, error](const xt::xarray<double>& grad, const Node<double>& out) {
                          accumulate_grad(x, xt::xarray<double>(grad * out.value * (1.0 + error)),
                                          "exp_off_by");
                        });
}

// The negative control: sin with a deliberately wrong derivative (+sin instead of cos).
Tensor<double> sin_with_wrong_derivative(const Tensor<double>& x) {
  return record<double>(
      "bad_sin", xt::sin(x.value()), {x}, [x](const xt::xarray<double>& grad, const Node<double>&) {
        accumulate_grad(x, xt::xarray<double>(grad * xt::sin(x.value())), "bad_sin");
      });
}

TEST(Gradcheck, PassesOnACorrectComposition) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  xt::xarray<double> av = xt::zeros<double>({2, 3}), bv = xt::zeros<double>({3});
  for (auto& v : av) v = d(rng);
  for (auto& v : bv) v = d(rng);
  auto a = tensor<double>(av, true), b = tensor<double>(bv, true);
  const auto r = gradcheck([](const auto& in) { return tanh(in[0] * in[1]) + exp(in[1]); }, {a, b});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_LT(r.max_abs_error, 1e-7);
  EXPECT_NE(r.message.find("passed"), std::string::npos) << r.message;
}

TEST(Gradcheck, PassesOnACustomOpWrittenWithRecord) {
  auto a = tensor<double>({{0.5, -1.2}, {2.0, 0.3}}, true);
  auto b = tensor<double>({{1.5, 0.4}, {-0.7, -2.2}}, true);
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return hypotenuse(in[0], in[1]); }, {a, b}));
  // Used inside a larger expression, with one input twice.
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return sum(hypotenuse(in[0], in[1]) * in[0]); },
                               {a, b}));
  auto c = tensor<double>({3.0}, true), d = tensor<double>({4.0});
  EXPECT_DOUBLE_EQ(hypotenuse(c, d).item(), 5.0);
}

// gradcheck is only worth trusting if it fails when it should. The message must point at the
// culprit: which input, which element, and the two disagreeing values.
TEST(Gradcheck, CatchesAWrongBackwardAndSaysWhere) {
  auto x = tensor<double>({0.3, -1.2, 2.0}, true);
  x.set_name("x");
  const GradcheckResult r =
      gradcheck([](const auto& in) { return sin_with_wrong_derivative(in[0]); }, {x});
  ASSERT_FALSE(r.ok);
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_NE(r.message.find("input 0 'x'"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("element (0,)"), std::string::npos) << r.message;

  // The first element checked is x[0] = 0.3: analytical says sin(0.3), the truth is cos(0.3).
  const std::string ana = "analytical ", num = " vs numerical ";
  const auto at_ana = r.message.find(ana), at_num = r.message.find(num);
  ASSERT_NE(at_ana, std::string::npos) << r.message;
  ASSERT_NE(at_num, std::string::npos) << r.message;
  EXPECT_NEAR(std::stod(r.message.substr(at_ana + ana.size())), std::sin(0.3), 1e-8) << r.message;
  EXPECT_NEAR(std::stod(r.message.substr(at_num + num.size())), std::cos(0.3), 1e-6) << r.message;

  // Through the gtest wrapper the same message becomes the assertion's failure text.
  const ::testing::AssertionResult ar =
      gradcheck_passes([](const auto& in) { return sin_with_wrong_derivative(in[0]); }, {x});
  EXPECT_FALSE(ar);
  EXPECT_NE(std::string(ar.message()).find("analytical"), std::string::npos);
}

// A wrong rule on the second input of a two-input op is attributed to that input.
TEST(Gradcheck, NamesTheSecondInputWhenItIsTheWrongOne) {
  auto a = tensor<double>({0.5, 1.0}, true);
  auto b = tensor<double>({0.8, -0.4}, true);
  b.set_name("b");
  const auto r =
      gradcheck([](const auto& in) { return in[0] + sin_with_wrong_derivative(in[1]); }, {a, b});
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.message.find("input 1 'b'"), std::string::npos) << r.message;
}

// gradcheck uses the inputs' grads as scratch space; the caller's accumulated grads must survive.
TEST(Gradcheck, LeavesTheInputsGradsAsFound) {
  auto a = tensor<double>({1.0, 2.0}, true);
  auto b = tensor<double>({3.0, 4.0}, true);
  (sum(a) * 5.0).backward();  // a.grad = [5, 5]; b has none
  ASSERT_TRUE(gradcheck_passes([](const auto& in) { return in[0] * in[1]; }, {a, b}));
  EXPECT_EQ(a.grad(), xt::xarray<double>({5.0, 5.0}));
  EXPECT_FALSE(b.has_grad());
}

TEST(Gradcheck, RefusesWhenThereIsNothingToCheck) {
  auto c = tensor<double>({1.0, 2.0});
  const auto r = gradcheck([](const auto& in) { return in[0] * 2.0; }, {c});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("no input requires grad"), std::string::npos) << r.message;
}

}  // namespace

// gradcheck's tolerances are what they say (atol 1e-5, rtol 1e-3): gradients wrong by 1e-2 or
// 3e-3 relative fail at the defaults, 1e-4 passes there but fails once rtol is 1e-5, and exact
// ones pass. A gradcheck made looser (or one that ignores the analytical side) fails this test.
TEST(Gradcheck, RejectsGradientsWrongByASmallRelativeAmount) {
  auto x = tensor<double>(xt::xarray<double>{0.3, -1.2, 2.0, 0.05}, true);
  auto check = [&](double error, double rtol) {
    return gradcheck([error](const auto& in) { return exp_off_by(in[0], error); }, {x}, 1e-6, 1e-5,
                     rtol);
  };
  EXPECT_FALSE(check(1e-2, 1e-3).ok);
  EXPECT_FALSE(check(-1e-2, 1e-3).ok);
  EXPECT_FALSE(check(3e-3, 1e-3).ok);
  EXPECT_TRUE(check(1e-4, 1e-3).ok);
  EXPECT_FALSE(check(1e-4, 1e-5).ok);
  EXPECT_TRUE(check(0.0, 1e-5).ok);
  // The defaults themselves, as users call it.
  EXPECT_FALSE(gradcheck([](const auto& in) { return exp_off_by(in[0], 1e-2); }, {x}).ok);
  EXPECT_FALSE(gradcheck([](const auto& in) { return exp_off_by(in[0], 3e-3); }, {x}).ok);
  EXPECT_TRUE(gradcheck([](const auto& in) { return exp_off_by(in[0], 0.0); }, {x}).ok);
}
