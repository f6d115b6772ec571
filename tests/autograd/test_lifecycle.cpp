// The tape's memory behaviour: which entries live how long, and the guarantees that let a
// training loop run forever and a 10^5-op chain backpropagate without recursion.
#include <algorithm>
#include <cmath>
#include <cstddef>

#include <gtest/gtest.h>

#include "autograd/tape.h"
#include "ops/elementwise.h"
#include "ops/reduction.h"

using namespace tapegrad;

#include "tests/sanitizer.h"

namespace {

// Sanitizer builds run the same loops ~20x slower; 10^4 iterations still cross the tape's sweep
// threshold (1024 entries) many times, which is what the loops are about.
#if defined(TAPEGRAD_UNDER_ASAN)
constexpr int kLoop = 10'000;
#else
constexpr int kLoop = 100'000;
#endif
constexpr std::size_t kBound = 2048;

// Each test starts from an empty tape so that entry counts are exact (a test binary run without
// ctest runs every test in one process, on one thread, with one tape).
class TapeLifecycle : public ::testing::Test {
 protected:
  void SetUp() override { clear_tape(); }
};

TEST_F(TapeLifecycle, OpsRecordOneEntryEachAndBackwardFreesThem) {
  auto x = tensor<double>({1.0, 2.0}, true);
  auto loss = sum(exp(x * 2.0) + x);
  EXPECT_EQ(tape_size(), 4u);  // mul, exp, add, sum
  loss.backward();
  EXPECT_EQ(tape_size(), 0u);
}

// Only the graph of the loss is freed; another live graph on the same tape is untouched and can
// still be backpropagated.
TEST_F(TapeLifecycle, BackwardFreesOnlyItsOwnGraph) {
  auto x = scalar<double>(2.0, true);
  auto other = x * 3.0;
  auto loss = x * x;
  EXPECT_EQ(tape_size(), 2u);
  loss.backward();
  EXPECT_EQ(tape_size(), 1u);
  other.backward();
  EXPECT_EQ(tape_size(), 0u);
  EXPECT_DOUBLE_EQ(x.grad()(), 4.0 + 3.0);
}

TEST_F(TapeLifecycle, RetainGraphKeepsEntriesUntilTheLastBackward) {
  auto x = scalar<double>(2.0, true);
  auto loss = exp(x * x);
  loss.backward(/*retain_graph=*/true);
  EXPECT_EQ(tape_size(), 2u);
  loss.backward();
  EXPECT_EQ(tape_size(), 0u);
}

TEST_F(TapeLifecycle, NothingIsRecordedWithoutARequiresGradInput) {
  auto x = tensor<double>({1.0, 2.0});
  auto y = sum(exp(x) * x);
  EXPECT_EQ(tape_size(), 0u);
  EXPECT_FALSE(y.requires_grad());
}

// A training loop: build a graph, backward, update the parameter under no-grad, repeat. Every
// iteration's graph is freed by its backward, so the tape never grows.
TEST_F(TapeLifecycle, TrainingLoopKeepsTheTapeBounded) {
  const xt::xarray<double> xv = {0.5, -1.0, 2.0};
  const auto x = tensor<double>(xv);
  auto w = tensor<double>({0.3, -0.2, 0.1}, true);
  const double lr = 1e-6;
  std::size_t peak = 0;
  for (int i = 0; i < kLoop; ++i) {
    auto loss = sum(square(w * x));
    loss.backward();
    peak = std::max(peak, tape_size());
    NoGradGuard guard;
    w.mutable_value() -= lr * w.grad();
    w.zero_grad();
  }
  EXPECT_LT(peak, kBound);
  EXPECT_EQ(tape_size(), 0u);
  // Gradient descent on sum((w x)^2): w_i <- w_i (1 - 2 lr x_i^2) each step.
  const xt::xarray<double> w0 = {0.3, -0.2, 0.1};
  for (std::size_t i = 0; i < 3; ++i) {
    const double expected = w0(i) * std::pow(1.0 - 2.0 * lr * xv(i) * xv(i), kLoop);
    EXPECT_NEAR(w.value()(i), expected, 1e-10) << "element " << i;
  }
}

// Graphs built and dropped without backward (an evaluation loop that forgot NoGradGuard) leave
// entries whose outputs nobody can reach; the tape sweeps them as it grows.
TEST_F(TapeLifecycle, DroppedGraphsAreSwept) {
  const auto x = tensor<double>({0.5, -1.0, 2.0});
  auto w = tensor<double>({0.3, -0.2, 0.1}, true);
  std::size_t peak = 0;
  for (int i = 0; i < kLoop; ++i) {
    auto loss = sum(square(w * x));  // dropped at the end of the iteration
    peak = std::max(peak, tape_size());
  }
  EXPECT_LT(peak, kBound);
}

// The sweep threshold follows the tape down as well as up: after a large graph has come and gone
// (here a kLoop-op chain, then its backward), dropped graphs are again swept at ~1024 entries, not
// allowed to pile up to twice the old peak.
TEST_F(TapeLifecycle, DroppedGraphsAreSweptAfterALargeGraph) {
  auto x = scalar<double>(1.0, true);
  {
    Tensor<double> y = x;
    for (int i = 0; i < kLoop; ++i) y = y * 1.0;
    y.backward();
  }
  ASSERT_EQ(tape_size(), 0u);
  std::size_t peak = 0;
  for (int i = 0; i < kLoop; ++i) {
    (void)exp(x * 2.0);
    peak = std::max(peak, tape_size());
  }
  EXPECT_LT(peak, kBound);
}

// Entries are swept only when nothing can reach their output: a kept handle keeps its whole
// graph (every entry on the way back to the leaves) alive and backpropagatable.
TEST_F(TapeLifecycle, SweepingSparesGraphsThatAreStillHeld) {
  auto x = scalar<double>(1.5, true);
  auto kept = exp(x * 2.0);  // two entries that must survive
  for (int i = 0; i < 5000; ++i) (void)(x * 3.0);
  EXPECT_LT(tape_size(), kBound);
  kept.backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 2.0 * std::exp(3.0));
}

// Backward is a loop over the tape, not a recursion over the graph: a 10^5-deep chain needs no
// stack. (A recursive implementation overflows an 8 MB stack at a few 10^4 frames.)
TEST_F(TapeLifecycle, LongChainBackpropagatesWithoutRecursion) {
  const double c = 1.0000001;
  auto x = scalar<double>(1.0, true);
  Tensor<double> y = x;
  for (int i = 0; i < kLoop; ++i) y = y * c;
  EXPECT_EQ(tape_size(), static_cast<std::size_t>(kLoop));
  y.backward();
  const double expected = std::pow(c, kLoop);  // d(x c^n)/dx
  EXPECT_NEAR(x.grad()(), expected, 1e-9 * expected);
  EXPECT_NEAR(y.item(), expected, 1e-9 * expected);
  EXPECT_EQ(tape_size(), 0u);
}

// The same tensor added 10^5 times: its gradient is the sum of 10^5 contributions.
TEST_F(TapeLifecycle, LongChainAccumulatesIntoASharedInput) {
  auto b = scalar<double>(0.5, true);
  auto y = scalar<double>(0.0);
  for (int i = 0; i < kLoop; ++i) y = y + b;
  y.backward();
  EXPECT_DOUBLE_EQ(b.grad()(), static_cast<double>(kLoop));
}

// Dropping a long chain without backward must not free it recursively either: the nodes hold no
// pointers to each other, and the dead entries go at the next sweep (or clear_tape) in a loop.
TEST_F(TapeLifecycle, DroppingALongChainDoesNotRecurse) {
  auto x = scalar<double>(1.0, true);
  {
    Tensor<double> y = x;
    for (int i = 0; i < kLoop; ++i) y = y + 1.0;
    EXPECT_EQ(tape_size(), static_cast<std::size_t>(kLoop));
  }  // the only handle to the end of the chain is gone; the tape holds the rest
  // Keep recording dead entries until the tape sweeps; the chain goes with them.
  int extra = 0;
  while (tape_size() >= static_cast<std::size_t>(kLoop) && extra < 4 * kLoop) {
    (void)(x * 2.0);
    ++extra;
  }
  EXPECT_LT(tape_size(), kBound);

  // And once more through clear_tape().
  {
    Tensor<double> y = x;
    for (int i = 0; i < kLoop; ++i) y = y * 1.0;
  }
  clear_tape();
  EXPECT_EQ(tape_size(), 0u);
}

// clear_tape() turns every recorded graph into constants: backward through one is an error, not a
// silent partial gradient.
TEST_F(TapeLifecycle, ClearTapeFreesEveryGraph) {
  auto x = scalar<double>(2.0, true);
  auto y = x * x;
  clear_tape();
  EXPECT_EQ(tape_size(), 0u);
  EXPECT_THROW(y.backward(), std::logic_error);
}

}  // namespace
