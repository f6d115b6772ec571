// Copying ops: repeat (tile) and repeat_interleave, with torch semantics.
//
// Both are "broadcast then reshape": repeat views a as (1, s0, 1, s1, ...) broadcast to
// (r0, s0, r1, s1, ...); repeat_interleave views a as (..., s_d, 1, ...) broadcast to
// (..., s_d, r, ...). So both backward rules are "reshape grad to that view, sum over the copies".
#pragma once

#include <optional>
#include <vector>

#include "autograd/tensor.h"

namespace tapegrad {

// torch.Tensor.repeat: tiles a; reps.size() >= a.dim(), missing leading axes count as 1.
// (3,) repeat {2, 2} -> (2, 6): [x, x] stacked twice.
template <class T>
Tensor<T> repeat(const Tensor<T>& a, const std::vector<std::size_t>& reps);

// torch.repeat_interleave: each element repeated `repeats` times along `axis`
// ([1, 2] -> [1, 1, 2, 2]); without an axis, a is flattened first and the result is 1-D.
template <class T>
Tensor<T> repeat_interleave(const Tensor<T>& a, std::size_t repeats,
                            std::optional<long> axis = std::nullopt);

}  // namespace tapegrad
