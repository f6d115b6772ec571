// SGD with torch.optim.SGD's semantics, step by step against the update rule written out by hand:
//   g <- g + weight_decay * p
//   momentum: b <- g (first step), b <- momentum * b + (1 - dampening) * g (later steps)
//             g <- nesterov ? g + momentum * b : b
//   p <- p - lr * g
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "optim/sgd.h"
#include "tapegrad.h"

using namespace tapegrad;

namespace {

xt::xarray<double> array(const std::vector<double>& v) {
  xt::xarray<double> a = xt::zeros<double>({v.size()});
  for (std::size_t i = 0; i < v.size(); ++i) a(i) = v[i];
  return a;
}

// A parameter: a leaf that requires grad.
Tensor<double> param(const std::vector<double>& v) {
  return Tensor<double>(array(v), true);
}

// Gives p the gradient g (a fresh backward of sum(p * g)), replacing any previous one.
void set_grad(Tensor<double>& p, const std::vector<double>& g) {
  p.clear_grad();
  Tensor<double> c(array(g));
  sum(p * c).backward();
}

std::vector<double> values(const Tensor<double>& t) {
  return std::vector<double>(t.value().begin(), t.value().end());
}

void expect_near(const std::vector<double>& a, const std::vector<double>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-14) << "element " << i;
}

}  // namespace

// Plain SGD: p <- p - lr * g, for every parameter, and the update is not recorded (p stays a leaf).
TEST(Sgd, PlainStep) {
  auto p = param({1.0, 2.0}), q = param({-3.0});
  SGD<double> opt({p, q}, 0.1);
  set_grad(p, {0.5, -1.0});
  set_grad(q, {2.0});
  const std::size_t tape_before = tape_size();
  opt.step();
  expect_near(values(p), {1.0 - 0.05, 2.0 + 0.1});
  expect_near(values(q), {-3.0 - 0.2});
  EXPECT_TRUE(p.is_leaf());
  EXPECT_TRUE(p.requires_grad());
  EXPECT_EQ(tape_size(), tape_before);
  // The grad is left as it was (step does not zero it): a second step applies it again.
  opt.step();
  expect_near(values(p), {1.0 - 0.1, 2.0 + 0.2});
  EXPECT_DOUBLE_EQ(opt.lr(), 0.1);
  opt.set_lr(1.0);
  opt.step();
  expect_near(values(p), {1.0 - 0.6, 2.0 + 1.2});
}

// Momentum: the first step initialises the buffer with g itself (no dampening on step 1, as torch),
// later steps use b = momentum * b + (1 - dampening) * g.
TEST(Sgd, MomentumFirstStepUsesGradientAsBuffer) {
  for (double dampening : {0.0, 0.5}) {
    SCOPED_TRACE("dampening " + std::to_string(dampening));
    auto p = param({1.0});
    SGD<double> opt({p}, 0.1, 0.9, 0.0, dampening);
    EXPECT_FALSE(opt.has_momentum_buffer()[0]);
    set_grad(p, {2.0});
    opt.step();
    double b = 2.0, x = 1.0 - 0.1 * b;
    expect_near(values(p), {x});
    ASSERT_TRUE(opt.has_momentum_buffer()[0]);
    EXPECT_DOUBLE_EQ(opt.momentum_buffers()[0](0), 2.0);
    set_grad(p, {-1.0});
    opt.step();
    b = 0.9 * b + (1 - dampening) * -1.0;
    x -= 0.1 * b;
    expect_near(values(p), {x});
    set_grad(p, {0.25});
    opt.step();
    b = 0.9 * b + (1 - dampening) * 0.25;
    x -= 0.1 * b;
    expect_near(values(p), {x});
    EXPECT_NEAR(opt.momentum_buffers()[0](0), b, 1e-15);
  }
}

// Nesterov: the step direction is g + momentum * b (b updated first).
TEST(Sgd, Nesterov) {
  auto p = param({0.5, -0.5});
  SGD<double> opt({p}, 0.2, 0.8, 0.0, 0.0, /*nesterov=*/true);
  std::vector<double> x = {0.5, -0.5}, b = {0, 0};
  const std::vector<std::vector<double>> grads = {{1.0, -2.0}, {0.5, 0.5}, {-1.0, 3.0}};
  for (std::size_t s = 0; s < grads.size(); ++s) {
    set_grad(p, grads[s]);
    opt.step();
    for (std::size_t i = 0; i < 2; ++i) {
      b[i] = s == 0 ? grads[s][i] : 0.8 * b[i] + grads[s][i];
      x[i] -= 0.2 * (grads[s][i] + 0.8 * b[i]);
    }
    expect_near(values(p), x);
  }
}

// Weight decay adds weight_decay * p to the gradient before momentum (L2 regularisation).
TEST(Sgd, WeightDecay) {
  auto p = param({2.0, -4.0});
  SGD<double> opt({p}, 0.1, 0.0, 0.05);
  set_grad(p, {1.0, 1.0});
  opt.step();
  expect_near(values(p), {2.0 - 0.1 * (1.0 + 0.05 * 2.0), -4.0 - 0.1 * (1.0 + 0.05 * -4.0)});

  // With momentum: the decayed gradient is what enters the buffer.
  auto q = param({1.0});
  SGD<double> mom({q}, 0.1, 0.9, 0.01);
  set_grad(q, {0.5});
  mom.step();
  double b = 0.5 + 0.01 * 1.0, x = 1.0 - 0.1 * b;
  expect_near(values(q), {x});
  set_grad(q, {0.5});
  mom.step();
  b = 0.9 * b + (0.5 + 0.01 * x);
  x -= 0.1 * b;
  expect_near(values(q), {x});
}

// A parameter no backward has reached has no grad: step leaves it (and its momentum buffer) alone,
// as torch skips p.grad is None.
TEST(Sgd, ParametersWithoutGradAreSkipped) {
  auto p = param({1.0}), q = param({5.0});
  SGD<double> opt({p, q}, 0.1, 0.9, 0.1);
  set_grad(p, {1.0});
  opt.step();
  EXPECT_DOUBLE_EQ(values(q)[0], 5.0);
  EXPECT_FALSE(q.has_grad());
  EXPECT_FALSE(opt.has_momentum_buffer()[1]);
  EXPECT_TRUE(opt.has_momentum_buffer()[0]);
  EXPECT_NE(values(p)[0], 1.0);
}

// zero_grad sets every grad to zeros (still defined, like set_to_none=False); a plain step is then
// a no-op, and the next backward accumulates from zero.
TEST(Sgd, ZeroGrad) {
  auto p = param({1.0, 2.0});
  SGD<double> opt({p}, 0.5);
  set_grad(p, {3.0, 4.0});
  opt.zero_grad();
  ASSERT_TRUE(p.has_grad());
  EXPECT_EQ(p.grad()(0), 0.0);
  EXPECT_EQ(p.grad()(1), 0.0);
  opt.step();
  expect_near(values(p), {1.0, 2.0});
  Tensor<double> c(xt::xarray<double>({1.0, -1.0}));
  sum(p * c).backward();
  sum(p * c).backward();  // leaves accumulate across backward calls
  EXPECT_DOUBLE_EQ(p.grad()(0), 2.0);
  opt.zero_grad();
  sum(p * c).backward();
  EXPECT_DOUBLE_EQ(p.grad()(0), 1.0);
  // zero_grad on a parameter never reached by backward is harmless.
  auto q = param({1.0});
  SGD<double> opt2({q}, 0.5);
  EXPECT_NO_THROW(opt2.zero_grad());
}

// Bad hyperparameters and parameters that cannot be optimised are rejected at construction.
TEST(Sgd, InvalidArgumentsThrow) {
  auto p = param({1.0});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(SGD<double>({p}, -0.1), std::invalid_argument);
  EXPECT_THROW(SGD<double>({p}, nan), std::invalid_argument);
  EXPECT_THROW(SGD<double>({p}, inf), std::invalid_argument);
  EXPECT_THROW(SGD<double>({p}, 0.1, -0.5), std::invalid_argument);
  EXPECT_THROW(SGD<double>({p}, 0.1, nan), std::invalid_argument);
  EXPECT_THROW(SGD<double>({p}, 0.1, 0.0, -0.01), std::invalid_argument);
  EXPECT_THROW(SGD<double>({p}, 0.1, 0.0, nan), std::invalid_argument);
  EXPECT_THROW(SGD<double>({p}, 0.1, 0.0, 0.0, 0.0, /*nesterov=*/true), std::invalid_argument);
  EXPECT_THROW(SGD<double>({p}, 0.1, 0.9, 0.0, 0.1, /*nesterov=*/true), std::invalid_argument);
  // Not a parameter: no requires_grad, a non-leaf, a null handle.
  Tensor<double> constant(xt::xarray<double>({1.0}));
  EXPECT_THROW(SGD<double>({constant}, 0.1), std::invalid_argument);
  Tensor<double> nonleaf = p * 2.0;
  EXPECT_THROW(SGD<double>({nonleaf}, 0.1), std::invalid_argument);
  EXPECT_THROW(SGD<double>({Tensor<double>()}, 0.1), std::invalid_argument);
  // Valid edge cases.
  EXPECT_NO_THROW(SGD<double>({p}, 0.0));
  EXPECT_NO_THROW(SGD<double>({}, 0.1));
  EXPECT_NO_THROW(SGD<double>({p}, 0.1, 0.9, 0.0, 0.0, true));
}

// float32 follows the same rule.
TEST(Sgd, Float32Step) {
  Tensor<float> p(xt::xarray<float>({1.0f, 2.0f}), true);
  SGD<float> opt({p}, 0.25f, 0.5f);
  Tensor<float> c(xt::xarray<float>({1.0f, -2.0f}));
  sum(p * c).backward();
  opt.step();
  EXPECT_FLOAT_EQ(p.value()(0), 0.75f);
  EXPECT_FLOAT_EQ(p.value()(1), 2.5f);
  opt.step();  // b = 0.5 b + g = 1.5 g
  EXPECT_FLOAT_EQ(p.value()(0), 0.75f - 0.375f);
  EXPECT_FLOAT_EQ(p.value()(1), 2.5f + 0.75f);
}
