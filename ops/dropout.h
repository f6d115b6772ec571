// Dropout (torch.nn.functional.dropout): in training, each element is zeroed with probability p
// and the survivors are scaled by 1 / (1 - p), so the expected output is the input.
//
// The keep-or-drop draws come from this thread's generator (autograd/random.h): one uniform per
// element in row-major order, dropped when u < p. After manual_seed(s) the same calls drop the
// same elements on every platform (PyTorch's generator is another one: its masks differ).
#pragma once

#include "autograd/tensor.h"
#include "ops/elementwise.h"  // scalar_t

namespace tapegrad {

// out = input * mask / (1 - p), mask ~ Bernoulli(1 - p) per element, when training and p > 0;
// input itself otherwise (eval mode, or p = 0), as torch returns it. p = 1 gives zeros. Throws
// naming the op unless 0 <= p <= 1.
// Rule: input: grad * mask / (1 - p)
template <class T>
Tensor<T> dropout(const Tensor<T>& input, scalar_t<T> p = 0.5, bool training = true);

}  // namespace tapegrad
