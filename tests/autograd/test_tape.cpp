#include <gtest/gtest.h>

#include "autograd/tape.h"
#include "ops/elementwise.h"

using namespace tapegrad;

TEST(Tape, SquarePlusLinear) {
  auto x = scalar<double>(2.0, true);
  auto y = x * x + 3.0 * x;
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad()(), 7.0);
}
