// The engine's contract (autograd/tape.h, autograd/tensor.h): what backward computes, how grads
// accumulate, grad mode, detach, and the errors backward raises.
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "autograd/tape.h"
#include "ops/elementwise.h"
#include "ops/reduction.h"
#include "throws_with.h"

using namespace tapegrad;

TEST(Tape, SquarePlusLinear) {
  auto x = scalar<double>(2.0, true);
  auto y = x * x + 3.0 * x;
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 7.0);
}

// d(x^2 + 3x)/dx = 2x + 3 elementwise, through a sum, at several points at once.
TEST(Tape, SquarePlusLinearElementwise) {
  auto x = tensor<double>({-1.5, 0.0, 2.0, 4.25}, true);
  sum(x * x + 3.0 * x).backward();
  const xt::xarray<double> expected = {0.0, 3.0, 7.0, 11.5};
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_DOUBLE_EQ(x.grad()(i), expected(i));
}

// --- accumulation ---------------------------------------------------------------------------

// x * x uses x as both inputs of one op: the two contributions (x and x) must add up to 2x, not
// overwrite each other.
TEST(Accumulation, SameTensorTwiceInOneOp) {
  auto x = scalar<double>(3.0, true);
  (x * x).backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 6.0);
}

// x feeds two branches that meet again: y = exp(x) * 2 + x / 4. Both paths contribute.
TEST(Accumulation, TensorUsedInTwoBranches) {
  auto x = scalar<double>(0.5, true);
  auto branch1 = exp(x) * 2.0;
  auto branch2 = x / 4.0;
  (branch1 + branch2).backward();
  EXPECT_NEAR(x.grad()(), 2.0 * std::exp(0.5) + 0.25, 1e-15);
}

// A diamond: h feeds two later ops. Both of their contributions must be in h's grad before h's own
// backward runs (the reverse tape order guarantees it), or x gets only part of the gradient.
TEST(Accumulation, DiamondThroughAnIntermediate) {
  auto x = scalar<double>(1.5, true);
  auto h = x * x;            // dh/dx = 2x
  auto y = h * 3.0 + h * h;  // dy/dh = 3 + 2h
  y.backward();
  const double hv = 1.5 * 1.5;
  EXPECT_DOUBLE_EQ(x.grad()(), (3.0 + 2.0 * hv) * 2.0 * 1.5);
}

// Leaves keep adding across backward calls (as in torch, which is how gradient accumulation over
// mini-batches works); zero_grad() resets them to zero.
TEST(Accumulation, LeavesAccumulateAcrossBackwardCallsUntilZeroGrad) {
  auto x = scalar<double>(2.0, true);
  (x * x).backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 4.0);
  (x * 5.0).backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 9.0);
  x.zero_grad();
  EXPECT_TRUE(x.has_grad());
  EXPECT_DOUBLE_EQ(x.grad()(), 0.0);
  (x * x).backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 4.0);
  x.clear_grad();
  EXPECT_FALSE(x.has_grad());
}

// Constants (requires_grad false) never receive a gradient.
TEST(Accumulation, ConstantsGetNoGrad) {
  auto x = scalar<double>(2.0, true);
  auto c = scalar<double>(3.0);
  (x * c).backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 3.0);
  EXPECT_FALSE(c.has_grad());
  EXPECT_THROW(c.grad(), std::logic_error);
}

// --- grad mode ------------------------------------------------------------------------------

TEST(NoGrad, RecordsNothing) {
  auto x = ones<double>({3}, true);
  const std::size_t before = tape_size();
  Tensor<double> y;
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    y = sum(exp(x * 2.0));
  }
  EXPECT_EQ(tape_size(), before);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.is_leaf());
  EXPECT_TRUE(throws_with<std::logic_error>([&] { y.backward(); }, "does not require grad"));
}

// Guards nest; each restores the mode it found, so a helper using NoGradGuard inside a no-grad
// region does not turn recording back on when it returns.
TEST(NoGrad, NestsAndRestores) {
  EXPECT_TRUE(grad_enabled());
  {
    NoGradGuard outer;
    {
      NoGradGuard inner;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled());
  }
  EXPECT_TRUE(grad_enabled());
  auto x = scalar<double>(1.0, true);
  EXPECT_TRUE((x * 2.0).requires_grad());
}

// The optimizer step of a training loop: ops on parameters under no-grad make plain leaves, so
// the updated parameter is not attached to the previous step's graph and can be marked trainable.
TEST(NoGrad, ParameterUpdateMakesAFreshLeaf) {
  auto w = scalar<double>(1.0, true);
  for (int step = 0; step < 3; ++step) {
    (w * w).backward();
    NoGradGuard guard;
    w = w - tensor<double>(w.grad()) * 0.25;
    EXPECT_TRUE(w.is_leaf());
    w.requires_grad_();
  }
  EXPECT_DOUBLE_EQ(w.item(), 0.125);  // w <- w - 0.25 * 2w = w / 2, three times
}

// --- detach and requires_grad_ --------------------------------------------------------------

TEST(Detach, CutsTheGraph) {
  auto x = scalar<double>(3.0, true);
  auto h = x * x;
  auto d = h.detach();
  EXPECT_TRUE(d.is_leaf());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_DOUBLE_EQ(d.item(), 9.0);
  // y depends on x only through the detached copy (a constant) and the direct term.
  auto y = d * x;
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 9.0);  // not 3 * 9 = 27, which the attached h * x would give
  // The copy owns its values: changing it does not change h.
  d.mutable_value()() = 100.0;
  EXPECT_DOUBLE_EQ(h.item(), 9.0);
}

TEST(RequiresGrad, OnANonLeafThrows) {
  auto x = scalar<double>(1.0, true);
  auto y = x * 2.0;
  EXPECT_FALSE(y.is_leaf());
  EXPECT_TRUE(throws_with<std::logic_error>([&] { y.requires_grad_(false); }, "not a leaf"));
  // On a leaf it is allowed both ways.
  auto c = scalar<double>(1.0);
  c.requires_grad_();
  EXPECT_TRUE(c.requires_grad());
  c.requires_grad_(false);
  EXPECT_FALSE(c.requires_grad());
}

// --- backward's arguments -------------------------------------------------------------------

TEST(BackwardErrors, NonScalarWithoutGradThrowsInvalidArgument) {
  auto x = ones<double>({2, 3}, true);
  auto y = x * 2.0;
  EXPECT_TRUE(throws_with<std::invalid_argument>([&] { y.backward(); }, "(2, 3)"));
  // The explicit form works and computes a vector-Jacobian product.
  y.backward(xt::xarray<double>(xt::ones<double>({2, 3})));
  EXPECT_DOUBLE_EQ(x.grad()(1, 2), 2.0);
}

TEST(BackwardErrors, ExplicitGradOfWrongShapeThrows) {
  auto x = ones<double>({2, 3}, true);
  auto y = x * 2.0;
  const xt::xarray<double> g = xt::ones<double>({3, 2});
  EXPECT_TRUE(throws_with<std::invalid_argument>([&] { y.backward(g); }, "(3, 2)"));
  EXPECT_TRUE(throws_with<std::invalid_argument>([&] { y.backward(g); }, "(2, 3)"));
  // A failed call leaves the graph usable.
  y.backward(xt::xarray<double>(xt::ones<double>({2, 3})));
  EXPECT_DOUBLE_EQ(x.grad()(0, 0), 2.0);
}

TEST(BackwardErrors, OneElementTensorNeedsNoExplicitGrad) {
  auto x = ones<double>({1, 1}, true);
  (x * 4.0).backward();
  EXPECT_DOUBLE_EQ(x.grad()(0, 0), 4.0);
}

// --- retain_graph ---------------------------------------------------------------------------

TEST(RetainGraph, SecondBackwardThrowsMentioningRetainGraph) {
  auto x = scalar<double>(2.0, true);
  auto y = x * x;
  y.backward();
  EXPECT_TRUE(throws_with<std::logic_error>([&] { y.backward(); }, "retain_graph"));
}

// clear_tape() is not a second backward: the message says what happened.
TEST(ClearTape, BackwardAfterItSaysClearTape) {
  auto x = scalar<double>(2.0, true);
  auto y = x * x;
  clear_tape();
  EXPECT_TRUE(throws_with<std::logic_error>([&] { y.backward(); }, "clear_tape()"));
  try {
    y.backward();
  } catch (const std::logic_error& e) {
    EXPECT_EQ(std::string(e.what()).find("second time"), std::string::npos) << e.what();
  }
  // A new graph through y reaches the dropped graph too, and says so.
  auto z = y * 3.0 + x;
  EXPECT_TRUE(throws_with<std::logic_error>([&] { z.backward(); }, "clear_tape()"));
}

TEST(RetainGraph, KeepsTheGraphForASecondBackward) {
  auto x = scalar<double>(2.0, true);
  auto y = x * x * 3.0;
  y.backward(/*retain_graph=*/true);
  EXPECT_DOUBLE_EQ(x.grad()(), 12.0);
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 24.0);  // accumulated: twice the gradient
  EXPECT_TRUE(throws_with<std::logic_error>([&] { y.backward(); }, "retain_graph"));
}

// h's graph was freed by the first backward; a new graph that uses h cannot reach x through it.
// Silently treating h as a constant would hand x a wrong (partial) gradient, so it must throw.
TEST(RetainGraph, IntermediateOfAFreedGraphCannotBeBackpropagatedAgain) {
  auto x = scalar<double>(2.0, true);
  auto h = x * x;
  (h * 3.0).backward();
  auto z = h * 5.0 + x;
  EXPECT_TRUE(throws_with<std::logic_error>([&] { z.backward(); }, "retain_graph"));
}

// --- non-leaf grads -------------------------------------------------------------------------

// Non-leaf gradients are scratch space, released as soon as backward is past them; retain_grad()
// opts a tensor in to keeping its own (for inspection), as in torch.
TEST(NonLeafGrad, ReleasedUnlessRetained) {
  auto x = tensor<double>({1.0, 2.0}, true);
  auto h = x * 3.0;
  auto kept = x * 2.0;
  kept.retain_grad();
  auto loss = sum(h * kept);
  loss.backward();
  EXPECT_FALSE(h.has_grad());
  EXPECT_FALSE(loss.has_grad());
  ASSERT_TRUE(kept.has_grad());
  EXPECT_DOUBLE_EQ(kept.grad()(0), 3.0);  // d loss / d kept = h = 3x
  EXPECT_DOUBLE_EQ(kept.grad()(1), 6.0);
  EXPECT_TRUE(throws_with<std::logic_error>([&] { h.grad(); }, "retain_grad"));
  EXPECT_DOUBLE_EQ(x.grad()(1), 2.0 * 6.0 * 2.0);  // d(6 x^2)/dx = 12 x
}

TEST(NonLeafGrad, RetainedLossGradIsTheSeed) {
  auto x = scalar<double>(1.0, true);
  auto y = x * 2.0;
  y.retain_grad();
  y.backward(xt::xarray<double>(0.5));
  EXPECT_DOUBLE_EQ(y.grad()(), 0.5);
  EXPECT_DOUBLE_EQ(x.grad()(), 1.0);
}

// --- the seed of backward(grad) -------------------------------------------------------------

// backward(y, g) lends g to the pass: the loss's backward closure receives g itself (the same
// array, not a copy), lvalue or not, and g is left as it was.
TEST(BackwardSeed, TheSeedIsBorrowedNotCopied) {
  auto x = tensor<double>({1.0, 2.0, 3.0}, true);
  const double* seen = nullptr;
  Tensor<double> y =
      record<double>("probe", x.value() * 2.0, {x},
                     [x, &seen](const xt::xarray<double>& grad, const Node<double>&) {
                       seen = grad.data();
                       accumulate_grad(x, xt::xarray<double>(grad * 2.0), "probe");
                     });
  const xt::xarray<double> g = {0.5, 1.0, 2.0};
  y.backward(g);
  EXPECT_EQ(seen, g.data());
  EXPECT_DOUBLE_EQ(x.grad()(2), 4.0);
  EXPECT_DOUBLE_EQ(g(2), 2.0);
  EXPECT_FALSE(y.has_grad());  // nothing kept on the non-leaf loss

  // A loss that retains its grad keeps a copy: its .grad outlives the call.
  auto h = tensor<double>({1.0, 2.0, 3.0}, true);
  auto z = h * 2.0;
  z.retain_grad();
  z.backward(g);
  EXPECT_NE(z.grad().data(), g.data());
  EXPECT_DOUBLE_EQ(z.grad()(2), 2.0);
  EXPECT_DOUBLE_EQ(h.grad()(2), 4.0);
}

// An lvalue gradient is copied once and left as it was: the caller may reuse it.
TEST(BackwardSeed, LvalueGradientIsCopiedAndKept) {
  auto x = tensor<double>({1.0, 2.0}, true);
  auto y = x * 3.0;
  y.retain_grad();
  const xt::xarray<double> g = {1.0, -1.0};
  y.backward(g);
  EXPECT_NE(y.grad().data(), g.data());
  EXPECT_DOUBLE_EQ(g(1), -1.0);
  EXPECT_DOUBLE_EQ(x.grad()(1), -3.0);
}

// A leaf "loss" is its own gradient.
TEST(NonLeafGrad, BackwardOnALeaf) {
  auto x = scalar<double>(5.0, true);
  x.backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 1.0);
}

// --- misc -----------------------------------------------------------------------------------

TEST(TensorHandle, CopiesShareTheNode) {
  auto a = scalar<double>(1.0, true);
  Tensor<double> b = a;
  EXPECT_TRUE(a.same(b));
  (b * 2.0).backward();
  EXPECT_DOUBLE_EQ(a.grad()(), 2.0);
  EXPECT_THROW(Tensor<double>().value(), std::logic_error);
}

TEST(TensorHandle, ShapeStrings) {
  EXPECT_EQ(shape_str({}), "()");
  EXPECT_EQ(shape_str({4}), "(4,)");
  EXPECT_EQ(shape_str({2, 3}), "(2, 3)");
  auto t = zeros<double>({2, 3});
  t.set_name("weights");
  EXPECT_EQ(describe(t), "weights (2, 3)");
}
