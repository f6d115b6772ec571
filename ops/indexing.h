// Selecting elements: masked_select (what the chapter's X_tile[~eye] does).
#pragma once

#include <xtensor/xarray.hpp>

#include "autograd/tensor.h"

namespace tapegrad {

// torch.masked_select: the elements of a where mask is true, in row-major order, as a 1-D tensor.
// mask broadcasts with a. The chapter's leave-one-out keys are
//   reshape(masked_select(repeat(x, {n, 1}), !eye(n)), {n, n - 1}).
// Backward scatters grad back to the selected positions (zero elsewhere).
template <class T>
Tensor<T> masked_select(const Tensor<T>& a, const xt::xarray<bool>& mask);

// The complement of an identity pattern, !eye(n): true off the diagonal.
xt::xarray<bool> off_diagonal_mask(std::size_t n);

}  // namespace tapegrad
