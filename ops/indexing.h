// Selecting elements: masked_select (what the chapter's X_tile[~eye] does) and masked_fill.
#pragma once

#include <xtensor/xarray.hpp>

#include "autograd/tensor.h"
#include "ops/elementwise.h"  // scalar_t

namespace tapegrad {

// torch.masked_select: the elements of a where mask is true, in row-major order, as a 1-D tensor.
// mask broadcasts with a. The chapter's leave-one-out keys are
//   reshape(masked_select(repeat(x, {n, 1}), !eye(n)), {n, n - 1}).
// Backward scatters grad back to the selected positions (zero elsewhere).
template <class T>
Tensor<T> masked_select(const Tensor<T>& a, const xt::xarray<bool>& mask);

// torch.masked_fill: a with every element where mask is true replaced by value (e.g. -inf before
// a softmax, to mask keys out). mask broadcasts with a; the result has the broadcast shape.
// Backward: grad where mask is false, 0 where it is true, summed back to a's shape.
template <class T>
Tensor<T> masked_fill(const Tensor<T>& a, const xt::xarray<bool>& mask, scalar_t<T> value);

// The complement of an identity pattern, !eye(n): true off the diagonal.
xt::xarray<bool> off_diagonal_mask(std::size_t n);

}  // namespace tapegrad
