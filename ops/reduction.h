// Reductions: sum, mean, max, min, and argmax / argmin (integer results, no gradient).
//
// Axes follow torch: negative counts from the end, duplicates are an error, an empty list means
// every axis, keepdims keeps each
// reduced axis as extent 1. Backward of a reduction broadcasts grad back over the reduced axes.
#pragma once

#include <vector>

#include "autograd/tensor.h"
#include "ops/index_array.h"

namespace tapegrad {

// Sum of all elements, shape ().
template <class T>
Tensor<T> sum(const Tensor<T>& a);
// Sum over `axes`; e.g. (2, 3, 4) over {1} -> (2, 4), or (2, 1, 4) with keepdims.
template <class T>
Tensor<T> sum(const Tensor<T>& a, const std::vector<long>& axes, bool keepdims = false);
template <class T>
Tensor<T> mean(const Tensor<T>& a);
template <class T>
Tensor<T> mean(const Tensor<T>& a, const std::vector<long>& axes, bool keepdims = false);
// Maximum along one axis (torch.max(a, dim).values). The gradient goes to the first maximal element
// of each slice, as torch routes it to the index it returns.
template <class T>
Tensor<T> max(const Tensor<T>& a, long axis, bool keepdims = false);
// Minimum along one axis (torch.min(a, dim).values); the gradient goes to the first minimal element.
// NaN counts as the extreme value in both, as torch propagates it.
template <class T>
Tensor<T> min(const Tensor<T>& a, long axis, bool keepdims = false);

// torch.argmax(a, dim, keepdim) / torch.argmin: the position along `axis` of the first maximal
// (minimal) element of each slice, as an integer array of the reduced shape. Throws naming the op
// for an empty axis.
template <class T>
IndexArray argmax(const Tensor<T>& a, long axis, bool keepdims = false);
template <class T>
IndexArray argmin(const Tensor<T>& a, long axis, bool keepdims = false);
// torch.argmax(a) / torch.argmin(a): the flat (row-major) index of the first maximal (minimal)
// element, a 0-d integer array. Throws for an empty tensor.
template <class T>
IndexArray argmax(const Tensor<T>& a);
template <class T>
IndexArray argmin(const Tensor<T>& a);

}  // namespace tapegrad
