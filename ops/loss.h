// Loss functions.
#pragma once

#include <cstdint>
#include <string>

#include "autograd/tensor.h"
#include "ops/index_array.h"

namespace tapegrad {

// torch.nn.MSELoss: (pred - target)^2 elementwise, then reduced by `reduction`:
// "none" (same shape as pred), "mean" (default), or "sum". pred and target must have equal shapes
// (torch broadcasts with a warning; a silent broadcast here is nearly always a bug, so we throw).
// Built from ops: sub, square, mean/sum; so its backward is theirs:
//   pred: 2 * (pred - target) * grad [/ numel for "mean"]     target: the negative of that.
template <class T>
Tensor<T> mse_loss(const Tensor<T>& pred, const Tensor<T>& target,
                   const std::string& reduction = "mean");

// torch.nn.functional.nll_loss(input, target, ignore_index, reduction): input holds
// log-probabilities with the classes on axis 1, (N, C) or (N, C, d1, ..., dk), or (C,) for one
// sample; target holds class indices of input's shape without the class axis ((N,), (N, d1, ...),
// or 0-d). Each element's loss is -input[n, target[n]]; a target equal to ignore_index gives 0 and
// does not count. reduction "none" (target's shape), "mean" (default: the sum over the counted
// targets divided by their number; NaN when every target is ignored, as in torch) or "sum".
// Throws naming the op for a target outside [0, C) other than ignore_index, and for shapes that do
// not fit. Rule: self: -grad at each counted target's position (/ count for "mean"), 0 elsewhere.
template <class T>
Tensor<T> nll_loss(const Tensor<T>& input, const IndexArray& target,
                   const std::string& reduction = "mean", std::int64_t ignore_index = -100);

// torch.nn.functional.cross_entropy(input, target, ignore_index, reduction) with class-index
// targets: nll_loss(log_softmax(input, class axis), target, ...), the shapes and arguments of
// nll_loss with input holding logits. Stable for logits of any size: log_softmax subtracts each
// row's maximum, so logits of 1e4 or -1e4 give the exact loss, not inf or NaN.
// Rule: input: (softmax(input) - onehot(target)) * grad (/ count for "mean"), 0 for ignored rows.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& input, const IndexArray& target,
                        const std::string& reduction = "mean", std::int64_t ignore_index = -100);

// torch.nn.functional.binary_cross_entropy(input, target, reduction): input holds probabilities
// in [0, 1], target the same shape (values in [0, 1]); the loss per element is
//   -(target log(input) + (1 - target) log(1 - input)),  each log clamped to >= -100 as torch does
// (so input 0 or 1 gives a finite loss). Throws naming the op for other shapes or an input outside
// [0, 1]. Rules (torch's): input: grad * (input - target) / max(input (1 - input), 1e-12)
//                          target: grad * (log(1 - input) - log(input))
template <class T>
Tensor<T> binary_cross_entropy(const Tensor<T>& input, const Tensor<T>& target,
                               const std::string& reduction = "mean");

}  // namespace tapegrad
