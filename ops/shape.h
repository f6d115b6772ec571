// Shape ops: reshape, flatten, unsqueeze, squeeze, transpose, permute.
//
// They move or relabel elements without changing them, so each backward applies the inverse
// movement to grad: reshape back, or the inverse permutation.
#pragma once

#include <vector>

#include "autograd/tensor.h"

namespace tapegrad {

// New shape with the same number of elements; one extent may be -1 (inferred), as in torch.
template <class T>
Tensor<T> reshape(const Tensor<T>& a, const std::vector<long>& shape);
template <class T>
Tensor<T> flatten(const Tensor<T>& a);  // reshape(a, {-1})
// Inserts an axis of extent 1 at `axis` (in [-dim-1, dim]).
template <class T>
Tensor<T> unsqueeze(const Tensor<T>& a, long axis);
// Removes `axis`, which must have extent 1 (torch silently keeps it; we say so instead).
template <class T>
Tensor<T> squeeze(const Tensor<T>& a, long axis);
// Removes every axis of extent 1.
template <class T>
Tensor<T> squeeze(const Tensor<T>& a);
// Swaps two axes (a.transpose(d0, d1)); for 2-D, transpose(a, 0, 1) is the matrix transpose.
template <class T>
Tensor<T> transpose(const Tensor<T>& a, long axis0, long axis1);
// Reorders all axes: out.shape[i] = a.shape[dims[i]].
template <class T>
Tensor<T> permute(const Tensor<T>& a, const std::vector<long>& dims);

}  // namespace tapegrad
