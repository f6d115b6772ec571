// gradcheck as a GoogleTest assertion:
//   EXPECT_TRUE(tapegrad::gradcheck_passes(f, {x, y}));
// prints the input, element, output and both values when it fails.
#pragma once

#include <gtest/gtest.h>

#include "autograd/gradcheck.h"

namespace tapegrad {

inline ::testing::AssertionResult gradcheck_passes(const GradcheckFn& f,
                                                   const std::vector<Tensor<double>>& inputs,
                                                   double eps = 1e-6, double atol = 1e-5,
                                                   double rtol = 1e-3) {
  const GradcheckResult r = gradcheck(f, inputs, eps, atol, rtol);
  if (r.ok) return ::testing::AssertionSuccess() << r.message;
  return ::testing::AssertionFailure() << r.message;
}

}  // namespace tapegrad
