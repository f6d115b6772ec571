// Selecting and joining: masked_select (what the chapter's X_tile[~eye] does) and masked_fill;
// slices (narrow, slice), index_select, and cat and stack.
//
// Slicing and index_select read positions along one axis, so their backward writes grad back to
// those positions (adding where index_select read one position twice); cat's backward cuts grad
// into the inputs' pieces.
#pragma once

#include <initializer_list>
#include <limits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.h"
#include "ops/elementwise.h"  // scalar_t
#include "ops/index_array.h"

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

// torch.narrow(input, dim, start, length): positions start .. start + length - 1 along `dim`
// (start may be negative, counting from the end). Throws naming the op and the shape when the
// range does not fit. Rule: self: zeros(self.shape) with grad written at those positions.
template <class T>
Tensor<T> narrow(const Tensor<T>& a, long dim, long start, long length);

// a[..., start:end:step] along `dim` (aten::slice, what Python's slicing calls): start and end
// count from the end when negative and are clamped to the axis, as Python's slices are; step >= 1.
// slice(x, 1, 1, 3) is x[:, 1:3]; slice(x, 0, -2) is x[-2:]. Same rule as narrow.
template <class T>
Tensor<T> slice(const Tensor<T>& a, long dim, long start = 0,
                long end = std::numeric_limits<long>::max(), long step = 1);

// torch.index_select(input, dim, index): the positions `index` (a 1-D integer array, or 0-d for
// one position) along `dim`, in that order, repeats allowed. Throws naming the op for an index
// outside [0, extent). Rule: self: zeros(self.shape).index_add_(dim, index, grad)
template <class T>
Tensor<T> index_select(const Tensor<T>& a, long dim, const IndexArray& index);

// torch.cat(tensors, dim): joins tensors of equal shape except along `dim`. Throws naming the op,
// the tensor's place in the list, its name and both shapes when a shape differs elsewhere.
// Rule: tensors[i]: grad.narrow(dim, offset_i, size_i)
template <class T>
Tensor<T> cat(const std::vector<Tensor<T>>& tensors, long dim = 0);
template <class T>
Tensor<T> cat(std::initializer_list<Tensor<T>> tensors, long dim = 0) {
  return cat(std::vector<Tensor<T>>(tensors), dim);
}

// torch.stack(tensors, dim): tensors of one shape joined along a new axis `dim` (in
// [-dim - 1, dim]); cat of the tensors unsqueezed at `dim`, so the rule is cat's.
template <class T>
Tensor<T> stack(const std::vector<Tensor<T>>& tensors, long dim = 0);
template <class T>
Tensor<T> stack(std::initializer_list<Tensor<T>> tensors, long dim = 0) {
  return stack(std::vector<Tensor<T>>(tensors), dim);
}

// The complement of an identity pattern, !eye(n): true off the diagonal.
xt::xarray<bool> off_diagonal_mask(std::size_t n);

}  // namespace tapegrad
