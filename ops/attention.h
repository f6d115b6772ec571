// A fused Gaussian attention-pooling op: the chapter's parametric model in one op, O(n + m) memory.
//
// For queries q (n,), keys k (m,), values v (m,) and a width w of shape (1,):
//   d_ij = q_i - k_j,   p_ij = softmax_j(-(d_ij w)^2 / 2),   f_i = sum_j p_ij v_j
// With leave_one_out (requires n == m: the queries are the keys), j = i is left out of row i: the
// chapter's training set-up without building the (n, n - 1) key/value copies.
//
// It computes the same function as the composed ops of NWKernelRegression::forward
//   softmax(gaussian_logits(repeat_interleave(q, m).reshape(n, m) - K, w), 1)  bmm  V
// and is tested against them at every scale (tests/reliability/test_one_truth.cpp), but it never
// materialises the (n, m) attention matrix, and it visits only the keys whose weight does not
// underflow to 0: as attention sharpens (w grows) it gets faster. The loops, the window and the
// numerics are in ops/kernels/attention.h.
#pragma once

#include <xtensor/xarray.hpp>

#include "autograd/tensor.h"

namespace tapegrad {

template <class T>
Tensor<T> nw_attention_pool(const Tensor<T>& queries, const Tensor<T>& keys,
                            const Tensor<T>& values, const Tensor<T>& w,
                            bool leave_one_out = false);

// The attention matrix p (n, m) of the same model, materialised, without recording anything (for
// plots and the attention CSVs). With leave_one_out, p_ii = 0.
template <class T>
xt::xarray<T> nw_attention_weights(const xt::xarray<T>& queries, const xt::xarray<T>& keys, T w,
                                   bool leave_one_out = false);

}  // namespace tapegrad
