// Loss functions.
#pragma once

#include <string>

#include "autograd/tensor.h"

namespace tapegrad {

// torch.nn.MSELoss: (pred - target)^2 elementwise, then reduced by `reduction`:
// "none" (same shape as pred), "mean" (default), or "sum". pred and target must have equal shapes
// (torch broadcasts with a warning; a silent broadcast here is nearly always a bug, so we throw).
// Built from ops: sub, square, mean/sum; so its backward is theirs:
//   pred: 2 * (pred - target) * grad [/ numel for "mean"]     target: the negative of that.
template <class T>
Tensor<T> mse_loss(const Tensor<T>& pred, const Tensor<T>& target,
                   const std::string& reduction = "mean");

}  // namespace tapegrad
