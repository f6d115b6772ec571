// A fused Gaussian attention-pooling op: the chapter's parametric model in one op, O(n + m) memory.
//
// For queries q (n,), keys k (m,), values v (m,) and a width w of shape (1,):
//   d_ij = q_i - k_j,   p_ij = softmax_j(-(d_ij w)^2 / 2),   f_i = sum_j p_ij v_j
// With leave_one_out (requires n == m: the queries are the keys), j = i is left out of row i: the
// chapter's training set-up without building the (n, n - 1) key/value copies.
//
// It computes the same function as the composed ops of NWKernelRegression::forward
//   softmax(gaussian_logits(repeat_interleave(q, m).reshape(n, m) - K, w), 1)  bmm  V
// (gaussian_logits below),
// and is tested against them at every scale (tests/reliability/test_one_truth.cpp), but it never
// materialises the (n, m) attention matrix, and it visits only the keys whose weight does not
// underflow to 0: as attention sharpens (w grows) it gets faster. The loops, the window and the
// numerics are in ops/kernels/attention.h.
#pragma once

#include <xtensor/xarray.hpp>

#include "autograd/tensor.h"

namespace tapegrad {

// The Gaussian attention logits for differences d = query - key, shape (n, m) (rows: queries,
// columns: keys), and a width w of one element (a parameter, or a constant such as 1 / sigma):
//   gaussian_logits(d, w)_ij = -(w^2 / 2) (d_ij^2 - nearest_i^2),   nearest_i = min_j |d_ij|
// computed as -(w^2 / 2) (|d_ij| - nearest_i) (|d_ij| + nearest_i). That is the chapter's
// -(d w)^2 / 2 plus the per-row constant (nearest_i w)^2 / 2, which a softmax over the row ignores,
// so softmax(gaussian_logits(d, w), 1) are the chapter's attention weights. Written this way
// nothing overflows (d^2 would, past |d| = 1.8e19 in float32), the nearest key's logit is exactly 0
// (a row never sums to 0, however far the query) and no cancellation loses digits.
template <class T>
Tensor<T> gaussian_logits(const Tensor<T>& d, const Tensor<T>& w);

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
