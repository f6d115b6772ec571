// Per-thread tapes: independent models train on different threads without sharing (or locking)
// anything, and a graph can only be backpropagated on the thread that recorded it.
#include <exception>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "autograd/tape.h"
#include "ops/elementwise.h"
#include "ops/linalg.h"
#include "ops/loss.h"
#include "ops/reduction.h"

using namespace tapegrad;

namespace {

struct Trained {
  xt::xarray<double> w, b;
  double loss = 0;
  std::size_t tape_after = 0;
};

// A tiny linear-tanh regression, trained by plain gradient descent. Deterministic for a given
// `scale`, so a run on any thread must reproduce a sequential run bit for bit.
Trained train(double scale, int steps = 300) {
  const auto x = tensor<double>({{0.5, -1.0}, {1.5, 0.25}, {-0.75, 2.0}, {1.0, 1.0}});
  const auto y = tensor<double>(xt::xarray<double>({0.2, -0.4, 0.9, 0.1}) * scale);
  auto w = tensor<double>({0.1, -0.3}, true);
  auto b = scalar<double>(0.05, true);
  Trained r;
  for (int step = 0; step < steps; ++step) {
    auto loss = mse_loss(tanh(matmul(x, w) + b), y);
    loss.backward();
    r.loss = loss.item();
    NoGradGuard guard;
    w.mutable_value() -= 0.1 * w.grad();
    b.mutable_value() -= 0.1 * b.grad();
    w.zero_grad();
    b.zero_grad();
  }
  r.w = w.value();
  r.b = b.value();
  r.tape_after = tape_size();
  return r;
}

TEST(Threads, ConcurrentTrainingMatchesSequential) {
  const Trained seq1 = train(1.0), seq2 = train(-0.5);
  Trained par1, par2;
  std::exception_ptr err1, err2;
  std::thread t1([&] {
    try {
      par1 = train(1.0);
    } catch (...) {
      err1 = std::current_exception();
    }
  });
  std::thread t2([&] {
    try {
      par2 = train(-0.5);
    } catch (...) {
      err2 = std::current_exception();
    }
  });
  t1.join();
  t2.join();
  ASSERT_FALSE(err1) << "thread 1 threw";
  ASSERT_FALSE(err2) << "thread 2 threw";
  EXPECT_EQ(par1.w, seq1.w);
  EXPECT_EQ(par1.b, seq1.b);
  EXPECT_EQ(par1.loss, seq1.loss);
  EXPECT_EQ(par2.w, seq2.w);
  EXPECT_EQ(par2.b, seq2.b);
  EXPECT_EQ(par2.loss, seq2.loss);
  EXPECT_NE(par1.w, par2.w);  // the two models really are different
  EXPECT_EQ(par1.tape_after, 0u);
  EXPECT_EQ(par2.tape_after, 0u);
  EXPECT_LT(seq1.loss, train(1.0, 1).loss);  // and training did something
}

// The recording thread keeps its tape alive (it waits on `done`) while this thread tries to
// backpropagate its graph: the tape is thread_local, so this must fail loudly, not race.
TEST(Threads, BackwardOfAnotherThreadsGraphThrows) {
  std::promise<Tensor<double>> recorded;
  std::promise<void> done;
  auto x = scalar<double>(2.0, true);
  std::thread recorder([&] {
    recorded.set_value(x * x);
    done.get_future().wait();
  });
  Tensor<double> y = recorded.get_future().get();
  EXPECT_TRUE(y.requires_grad());
  try {
    y.backward();
    ADD_FAILURE() << "backward on a graph recorded by another thread did not throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("another thread"), std::string::npos) << e.what();
  }
  done.set_value();
  recorder.join();
  EXPECT_FALSE(x.has_grad());
}

// The recording thread has exited, and a new thread (which may well be given the dead thread's
// stack and thread-local storage, hence a tape at the same address) tries the backward, after
// recording a graph of its own whose first entry has the same position as the dead graph's. It
// must be refused, not run the new thread's unrelated entries and silently leave x without a grad.
TEST(Threads, BackwardOfAFinishedThreadsGraphThrows) {
  auto x = scalar<double>(2.0, true);
  for (int attempt = 0; attempt < 4; ++attempt) {
    Tensor<double> y;
    std::thread([&] { y = x * x; }).join();
    std::string outcome;
    std::thread([&] {
      auto unrelated = x * 3.0;
      try {
        y.backward();
        outcome = x.has_grad() ? "backward ran" : "backward ran and x has no grad";
      } catch (const std::logic_error& e) {
        outcome = e.what();
      }
    }).join();
    EXPECT_NE(outcome.find("another thread"), std::string::npos) << outcome;
  }
}

// Grad mode is per thread too: a NoGradGuard here does not stop another thread recording.
TEST(Threads, GradModeIsPerThread) {
  NoGradGuard guard;
  bool other_enabled = false, other_recorded = false;
  std::thread t([&] {
    other_enabled = grad_enabled();
    auto x = scalar<double>(1.0, true);
    other_recorded = (x * 2.0).requires_grad();
  });
  t.join();
  EXPECT_FALSE(grad_enabled());
  EXPECT_TRUE(other_enabled);
  EXPECT_TRUE(other_recorded);
}

}  // namespace
