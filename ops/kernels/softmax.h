// Softmax and log-softmax kernels: the loops behind ops/softmax.cpp and the nonparametric weights.
// (The fused attention op, ops/kernels/nw_attention.cpp, writes the same stable softmax out in its
// own loops over each row's keys, with the same fast_exp.)
//
// Every kernel computes, along one axis,
//   softmax:      y_k = exp(x_k - m) / sum_j exp(x_j - m),   m = max_j x_j
//   log_softmax:  y_k = (x_k - m) - log sum_j exp(x_j - m)
// with exp = kernels::fast_exp (ops/kernels/exp.h: argument-independent cost, flushes results
// below the smallest normal to 0). Subtracting m keeps every exp in [0, 1]; at least one term (the
// max) is exp(0) = 1, so the sum is in [1, len] and never 0 or inf for finite logits.
// Special rows, as PyTorch: a row with NaN gives NaN; a row of all -inf gives NaN everywhere
// (m = -inf and -inf - (-inf) is NaN; there is no distribution to return); a row with +inf gives
// NaN. A -inf logit among finite ones gets weight exactly 0 (a mask).
// The obvious xtensor expressions these kernels are tested against are in
// tests/ops/test_softmax_kernels.cpp.
#pragma once

#include <cstddef>

#include "ops/kernels/shape.h"

namespace tapegrad {
namespace kernels {

// One contiguous row: out[k] = softmax(logits)[k], k < len. out may be logits (in place).
// Instantiated for float and double.
template <class T>
void softmax_row(const T* logits, T* out, std::size_t len);

// One contiguous row of log_softmax, and its backward grad_in[k] = grad[k] - exp(y[k]) sum_j
// grad[j].
template <class T>
void log_softmax_row(const T* logits, T* out, std::size_t len);
template <class T>
void log_softmax_row_backward(const T* y, const T* grad, T* grad_in, std::size_t len);

// The same over a whole row-major array seen as (outer, len, inner) around the softmax axis
// (ops/kernels/shape.h). Rows (inner == 1) or blocks of `inner` columns are independent and split
// across threads above kParallelGrain elements.
template <class T>
void softmax(const T* x, T* y, const AxisSplit& s);
template <class T>
void softmax_backward(const T* y, const T* grad, T* grad_in, const AxisSplit& s);
template <class T>
void log_softmax(const T* x, T* y, const AxisSplit& s);
template <class T>
void log_softmax_backward(const T* y, const T* grad, T* grad_in, const AxisSplit& s);

}  // namespace kernels
}  // namespace tapegrad
