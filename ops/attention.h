// A fused Gaussian attention-pooling op: the chapter's parametric model in one pass, O(n + m)
// memory.
//
// For queries q (n,), keys k (m,), values v (m,) and a scalar width w (shape (1,)):
//   d_ij = q_i - k_j,   s_ij = -(d_ij w)^2 / 2,   p_ij = softmax_j(s_ij),   f_i = sum_j p_ij v_j
// With leave_one_out (requires n == m: the queries are the keys), j = i is excluded from row i,
// which is exactly the chapter's training set-up without building the (n, n - 1) key/value copies.
//
// This computes the same function as the composed ops
//   softmax(-square((repeat_interleave(q, m).reshape(n, m) - K) * w) / 2, 1)  bmm  V
// (NWKernelRegression::forward), but never materialises the (n, m) attention matrix.
//
// Forward, per row i (independent rows: OpenMP over i):
//   pass 1: mu_i = min_j d_ij^2, so max_j s_ij = -w^2 mu_i / 2 (the stable-softmax shift, no
//           running-max rescaling needed);
//   pass 2: e_ij = exp(s_ij - max_j s_ij) and the row sums
//           Z = sum e,  F = sum e v,  A = sum e d^2,  B = sum e v d^2,  C = sum e d,  D = sum e v
//           d.
//   f_i = F / Z. The other sums are what the backward of w and q needs, saved per row (O(n)).
//
// Backward. With g_i = dL/df_i and dp_ij = p_ij (v_j - f_i) the derivative of f_i w.r.t. s_ij:
//   w: sum_i g_i sum_j p_ij (v_j - f_i) (-w d_ij^2)  =  -w sum_i g_i (B_i - f_i A_i) / Z_i
//   q: g_i sum_j p_ij (v_j - f_i) (-w^2 d_ij)       =  -w^2 g_i (D_i - f_i C_i) / Z_i
//   k: sum_i g_i p_ij (v_j - f_i) (w^2 d_ij)         (a second pass over the pairs, only if needed)
//   v: sum_i g_i p_ij                                 (same pass)
// so training w costs one exp per (query, key) pair, forward and backward together.
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
