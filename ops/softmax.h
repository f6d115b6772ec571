// softmax and log_softmax along one axis, numerically stable.
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

}  // namespace tapegrad
