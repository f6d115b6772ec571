// ops/softmax.h: softmax, log_softmax and logsumexp along any axis, and their numerical stability.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <xtensor/xview.hpp>

#include "autograd/gradcheck_gtest.h"
#include "ops/softmax.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

// --- PyTorch reference ----------------------------------------------------------------------

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  const long axis = c.at("args").at("axis").get<long>();
  if (op == "softmax") return softmax(in[0], axis);
  if (op == "log_softmax") return log_softmax(in[0], axis);
  throw std::runtime_error("test_softmax: no dispatch for op " + op);
}

TAPEGRAD_TORCH_REFERENCE_TESTS(SoftmaxTorch, "softmax")

// --- stability ------------------------------------------------------------------------------

template <class T>
bool all_finite(const xt::xarray<T>& a) {
  for (T v : a)
    if (!std::isfinite(v)) return false;
  return true;
}

// exp(1000) overflows and exp(-1000) underflows in both float and double, so the naive formula
// gives NaN (inf / inf) for [1000, 0] and NaN (0 / 0) for [-1000, -1001]. The max-shift must make
// both the values and the gradients finite and right, in float32 too.
template <class T>
void check_stable(const xt::xarray<T>& logits, const xt::xarray<double>& expected_softmax,
                  const xt::xarray<double>& expected_log_softmax) {
  const xt::xarray<T> seed = {T(-0.625), T(1.125)};  // a non-uniform upstream gradient
  for (bool log_form : {false, true}) {
    SCOPED_TRACE(log_form ? "log_softmax" : "softmax");
    auto x = tensor<T>(logits, true);
    auto y = log_form ? log_softmax(x, 0) : softmax(x, 0);
    EXPECT_TRUE(all_finite(y.value()));
    EXPECT_TRUE(all_close("value", y.value(), log_form ? expected_log_softmax : expected_softmax));
    y.backward(seed);
    ASSERT_TRUE(all_finite(x.grad()));
    // d/dx of sum(seed * y): softmax gives p * (seed - <seed, p>), log_softmax seed - p *
    // sum(seed).
    const xt::xarray<double> p = expected_softmax;
    const double s0 = -0.625, s1 = 1.125;
    const double dot = s0 * p(0) + s1 * p(1);
    const xt::xarray<double> expected_grad =
        log_form ? xt::xarray<double>({s0 - p(0) * (s0 + s1), s1 - p(1) * (s0 + s1)})
                 : xt::xarray<double>({p(0) * (s0 - dot), p(1) * (s1 - dot)});
    EXPECT_TRUE(all_close("grad", x.grad(), expected_grad));
  }
}

TEST(SoftmaxStability, LargeLogitsGiveFiniteValuesAndGradients) {
  const double tiny = std::exp(-1000.0);  // 0 in double, as torch gives
  const xt::xarray<double> sm = {1.0 - tiny, tiny};
  const xt::xarray<double> lsm = {0.0, -1000.0};
  check_stable<double>({1000.0, 0.0}, sm, lsm);
  check_stable<float>({1000.0f, 0.0f}, sm, lsm);
}

TEST(SoftmaxStability, VeryNegativeLogitsGiveFiniteValuesAndGradients) {
  const double p0 = 1.0 / (1.0 + std::exp(-1.0));  // softmax([0, -1]) after the shift
  const xt::xarray<double> sm = {p0, 1.0 - p0};
  const xt::xarray<double> lsm = {std::log(p0), std::log(1.0 - p0)};
  check_stable<double>({-1000.0, -1001.0}, sm, lsm);
  check_stable<float>({-1000.0f, -1001.0f}, sm, lsm);
}

TEST(Softmax, SlicesSumToOneAlongTheirAxis) {
  std::mt19937 rng(61);
  const auto x = uniform(rng, {2, 3, 4}, -3.0, 3.0, false);
  for (long axis : {0L, 1L, 2L, -1L, -2L}) {
    SCOPED_TRACE("axis " + std::to_string(axis));
    const auto s = sum(softmax(x, axis), {axis});
    EXPECT_TRUE(all_close("sum", s.value(), xt::xarray<double>(xt::ones<double>(s.shape()))));
  }
}

// Large enough for the OpenMP-parallel loops (>= 2^15 elements); the result must not depend on
// how slices are split across threads.
TEST(Softmax, ParallelPathMatchesSmallSlices) {
  std::mt19937 rng(62);
  auto x = uniform(rng, {64, 8, 64}, -4.0, 4.0);
  const auto w = uniform(rng, {64, 8, 64}, -1.0, 1.0, false);
  for (bool log_form : {false, true}) {
    SCOPED_TRACE(log_form ? "log_softmax" : "softmax");
    auto big = log_form ? log_softmax(x, 1) : softmax(x, 1);
    sum(mul(big, w)).backward();
    const xt::xarray<double> big_grad = x.grad();
    x.clear_grad();
    // Slice 0 of the leading axis on its own is small (512 elements): the serial loops.
    auto x0 = tensor<double>(xt::xarray<double>(xt::view(x.value(), 0)), true);
    auto w0 = tensor<double>(xt::xarray<double>(xt::view(w.value(), 0)));
    auto small = log_form ? log_softmax(x0, 0) : softmax(x0, 0);
    sum(mul(small, w0)).backward();
    EXPECT_TRUE(all_close("value", xt::xarray<double>(xt::view(big.value(), 0)), small.value()));
    EXPECT_TRUE(all_close("grad", xt::xarray<double>(xt::view(big_grad, 0)), x0.grad()));
  }
}

// --- gradcheck ------------------------------------------------------------------------------

TEST(SoftmaxGradcheck, EveryAxisOf3D) {
  std::mt19937 rng(63);
  for (long axis : {0L, 1L, 2L, -1L, -3L}) {
    SCOPED_TRACE("axis " + std::to_string(axis));
    auto x = uniform(rng, {2, 3, 4}, -2.0, 2.0);
    EXPECT_TRUE(gradcheck_passes([=](const auto& in) { return softmax(in[0], axis); }, {x}));
    EXPECT_TRUE(gradcheck_passes([=](const auto& in) { return log_softmax(in[0], axis); }, {x}));
  }
  auto v = uniform(rng, {5}, -2.0, 2.0);
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return softmax(in[0], 0); }, {v}));
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return log_softmax(in[0], -1); }, {v}));
}

// With a uniform upstream gradient softmax's backward is identically zero (the outputs sum to 1),
// so only a non-uniform one tests it at all.
TEST(SoftmaxGradcheck, NonUniformUpstreamGradient) {
  std::mt19937 rng(64);
  auto x = uniform(rng, {3, 4}, -2.0, 2.0);
  const auto w = uniform(rng, {3, 4}, -2.0, 2.0, false);
  for (long axis : {0L, 1L}) {
    SCOPED_TRACE("axis " + std::to_string(axis));
    EXPECT_TRUE(gradcheck_passes(
        weighted_sum([=](const auto& in) { return softmax(in[0], axis); }, w), {x}));
    EXPECT_TRUE(gradcheck_passes(
        weighted_sum([=](const auto& in) { return log_softmax(in[0], axis); }, w), {x}));
  }
  // Logits hundreds apart: still the right (tiny) derivatives.
  auto far = tensor<double>({{300.0, 0.5, -200.0}, {-500.0, -499.0, -501.5}}, true);
  const auto w2 = uniform(rng, {2, 3}, -2.0, 2.0, false);
  EXPECT_TRUE(
      gradcheck_passes(weighted_sum([](const auto& in) { return softmax(in[0], 1); }, w2), {far}));
  EXPECT_TRUE(gradcheck_passes(
      weighted_sum([](const auto& in) { return log_softmax(in[0], 1); }, w2), {far}));
}

// --- errors ---------------------------------------------------------------------------------

TEST(SoftmaxErrors, BadAxisNamesOpAxisAndShape) {
  const auto x = zeros<double>({2, 3, 4});
  EXPECT_TRUE(throws_invalid_argument([&] { softmax(x, 3); }, {"softmax", "axis 3", "(2, 3, 4)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { log_softmax(x, -4); },
                                      {"log_softmax", "axis -4", "(2, 3, 4)"}));
  EXPECT_TRUE(throws_invalid_argument([] { softmax(scalar<float>(1.0f), 0); }, {"softmax", "()"}));
}

// --- logsumexp ------------------------------------------------------------------------------

// The logsumexp cases of tests/reference/nd_reference.json (tests/reference/make_nd_reference.py):
// torch.logsumexp's values and gradients for a non-uniform upstream G, in float64 and float32.
const json& nd_reference() {
  static const json j = load_reference("nd_reference.json");
  return j;
}

template <class T>
void check_logsumexp_case(const json& c) {
  SCOPED_TRACE(std::string("element type ") + (std::is_same_v<T, double> ? "double" : "float"));
  xt::xarray<T> xv = array_from_json<T>(c.at("x"));
  if (c.contains("minus_inf"))
    for (std::size_t e : c.at("minus_inf").get<std::vector<std::size_t>>())
      xv.data()[e] = -std::numeric_limits<T>::infinity();
  auto x = tensor<T>(xv, true);
  const long axis = c.at("axis").get<long>();
  const auto y = logsumexp(x, axis);
  EXPECT_TRUE(all_close("forward", y.value(), array_from_json<double>(c.at("out"))));
  y.backward(array_from_json<T>(c.at("G")));
  ASSERT_TRUE(all_finite(x.grad()));
  EXPECT_TRUE(all_close("gradient", x.grad(), array_from_json<double>(c.at("grad_x"))));
}

TEST(LogsumexpTorch, ForwardAndGradients) {
  ASSERT_TRUE(nd_reference().is_object()) << "cannot read " << reference_path("nd_reference.json");
  const json& cases = nd_reference().at("logsumexp");
  ASSERT_GE(cases.size(), 7u);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("logsumexp case " + std::to_string(i));
    check_logsumexp_case<double>(cases[i]);
    check_logsumexp_case<float>(cases[i]);
  }
}

// Masked entries (-inf) get gradient exactly 0 and no NaN, as long as their slice has a finite
// entry; a slice with one finite entry x has logsumexp x and gradient 1 there.
TEST(Logsumexp, MinusInfEntriesGetZeroGradient) {
  const double inf = std::numeric_limits<double>::infinity();
  auto x = tensor<double>({{-inf, 2.0, -inf}, {0.5, -inf, 1.5}}, true);
  const auto y = logsumexp(x, 1);
  EXPECT_EQ(y.value()(0), 2.0);
  EXPECT_NEAR(y.value()(1), std::log(std::exp(0.5) + std::exp(1.5)), 1e-15);
  y.backward(xt::xarray<double>({0.75, -2.0}));
  const xt::xarray<double> g = x.grad();
  ASSERT_TRUE(all_finite(g));
  EXPECT_EQ(g(0, 0), 0.0);
  EXPECT_EQ(g(0, 1), 0.75);
  EXPECT_EQ(g(0, 2), 0.0);
  EXPECT_EQ(g(1, 1), 0.0);
  EXPECT_NEAR(g(1, 0) + g(1, 2), -2.0, 1e-15);  // the softmax of the slice sums to 1
}

// Special slices, as torch.logsumexp: all -inf -> -inf, a +inf entry -> +inf, NaN -> NaN; and the
// stable form where the naive one overflows or underflows (float32 too).
TEST(Logsumexp, SpecialSlicesAndStability) {
  const double inf = std::numeric_limits<double>::infinity();
  const auto y = logsumexp(tensor<double>({{-inf, -inf}, {inf, 0.0}, {NAN, 0.0}}), 1);
  EXPECT_EQ(y.value()(0), -inf);
  EXPECT_EQ(y.value()(1), inf);
  EXPECT_TRUE(std::isnan(y.value()(2)));
  const auto big = logsumexp(tensor<float>({1000.0f, 1000.0f}), 0);
  EXPECT_NEAR(big.value()(), 1000.0 + std::log(2.0), 1e-4);
  const auto tiny = logsumexp(tensor<float>({-1000.0f, -1000.0f}), 0);
  EXPECT_NEAR(tiny.value()(), -1000.0 + std::log(2.0), 1e-4);
  // A zero-length axis sums nothing: log 0 = -inf, as torch.
  const auto empty = logsumexp(zeros<double>({2, 0}), 1);
  ASSERT_EQ(empty.shape(), (Shape{2}));
  EXPECT_EQ(empty.value()(0), -inf);
}

TEST(LogsumexpGradcheck, EveryAxisAndNonUniformUpstream) {
  std::mt19937 rng(65);
  for (long axis : {0L, 1L, 2L, -1L, -3L}) {
    SCOPED_TRACE("axis " + std::to_string(axis));
    auto x = uniform(rng, {2, 3, 4}, -2.0, 2.0);
    EXPECT_TRUE(gradcheck_passes([=](const auto& in) { return logsumexp(in[0], axis); }, {x}));
    Shape reduced = {2, 3, 4};
    reduced.erase(reduced.begin() + (axis < 0 ? axis + 3 : axis));
    const auto w = uniform(rng, reduced, -2.0, 2.0, false);
    EXPECT_TRUE(gradcheck_passes(
        weighted_sum([=](const auto& in) { return logsumexp(in[0], axis); }, w), {x}));
  }
  auto v = uniform(rng, {5}, -2.0, 2.0);
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return logsumexp(in[0], 0); }, {v}));
  // Logits hundreds apart.
  auto far = tensor<double>({{300.0, 0.5, -200.0}, {-500.0, -499.0, -501.5}}, true);
  const auto w2 = uniform(rng, {2}, -2.0, 2.0, false);
  EXPECT_TRUE(gradcheck_passes(weighted_sum([](const auto& in) { return logsumexp(in[0], 1); }, w2),
                               {far}));
}

// Negative control: gradcheck must reject a logsumexp whose backward is off (here, a function whose
// forward is logsumexp but whose recorded gradient is the softmax without grad's weighting by 2).
TEST(LogsumexpGradcheck, RejectsAWrongRule) {
  std::mt19937 rng(66);
  auto x = uniform(rng, {3, 4}, -2.0, 2.0);
  // 2 * logsumexp(x) computed with the rule applied once: value 2 lse, gradient only softmax.
  const GradcheckFn wrong = [](const std::vector<Tensor<double>>& in) {
    const Tensor<double> y = logsumexp(in[0], 1);
    return y + tensor<double>(xt::xarray<double>(y.value()));  // second term is a constant
  };
  EXPECT_FALSE(gradcheck(wrong, {x}).ok);
}

TEST(LogsumexpErrors, BadAxisNamesOpAxisAndShape) {
  const auto x = zeros<double>({2, 3, 4});
  EXPECT_TRUE(
      throws_invalid_argument([&] { logsumexp(x, 3); }, {"logsumexp", "axis 3", "(2, 3, 4)"}));
  EXPECT_TRUE(
      throws_invalid_argument([] { logsumexp(scalar<double>(1.0), 0); }, {"logsumexp", "()"}));
}

}  // namespace
}  // namespace tapegrad::test
