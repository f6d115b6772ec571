// softmax, log_softmax and logsumexp along one axis, numerically stable.
#pragma once

#include "autograd/tensor.h"

namespace tapegrad {

// y_k = exp(x_k - m) / sum_j exp(x_j - m), m = max_j x_j, along `axis` (torch dim).
// Subtracting m changes nothing mathematically and keeps every exp in [0, 1]: [1000, 0] gives
// [1, exp(-1000)] instead of inf / inf.
template <class T>
Tensor<T> softmax(const Tensor<T>& x, long axis);
// log y_k = x_k - m - log sum_j exp(x_j - m)
template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, long axis);

// torch.logsumexp(x, axis): log sum_j exp(x_j) along `axis`, which is removed from the shape
// ((2, 3, 4) over axis 1 -> (2, 4)). Computed stably as m + log sum_j exp(x_j - m), m = max_j x_j,
// so [1000, 0] gives 1000 (not inf) and [-1000, -1001] gives -999.69 (not -inf).
// -inf entries contribute exp(-inf) = 0: a masked entry is one set to -inf (masked_fill), and it
// gets gradient exactly 0 as long as its slice has one finite entry. Special slices, as PyTorch:
// all -inf (or empty) gives -inf (and a NaN gradient: there is nothing to differentiate), a +inf
// entry gives +inf, a NaN gives NaN.
// Rule: logsumexp: self: grad * exp(self - result)   (the softmax of the slice, times grad)
template <class T>
Tensor<T> logsumexp(const Tensor<T>& x, long axis);

}  // namespace tapegrad
