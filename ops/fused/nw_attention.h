// Fused Nadaraya-Watson attention: the chapter's Gaussian attention pooling, and the cross-entropy
// of its classification, for queries and keys of any dimension d, each one op, O(n + m) memory.
//
// For queries q (n, d), keys k (m, d), values v (m, C) and widths w of shape (1,) or (d,):
//   s_ij = sum_l ((q_il - k_jl) w_l)^2,   p_ij = softmax_j(-s_ij / 2),   f_i = sum_j p_ij v_j
// Vectors are the d = 1 and C = 1 cases: queries (n,) and keys (m,) are d = 1, and values (m,)
// give f (n,). With leave_one_out (n == m: the queries are the keys), key i is left out of row i:
// the chapter's training set-up without building the (n, n - 1) key and value copies.
//
// The same function as the composed ops softmax(-s / 2, 1) matmul v, and tested against them at
// every scale (tests/ops/fused/test_nw_attention_vs_composed.cpp), but the (n, m) matrices are
// never materialised, and each row visits only the keys whose weight does not underflow: as
// attention sharpens (w grows) the ops get faster. One-hot values of more than 16 classes (class
// probabilities) are summed into class bins: O(n m + n C), not O(n m C). The loops and the
// numerics: ops/kernels/nw_attention.h.
#pragma once

#include <cstdint>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.h"

namespace tapegrad {

// queries (n,) or (n, d), keys (m,) or (m, d), values (m,) or (m, C), w (1,) or (d,)
//   -> f (n,) for values (m,), else (n, C).
// Gradients flow to queries, keys, values and w.
template <class T>
Tensor<T> nw_attention_pool(const Tensor<T>& queries, const Tensor<T>& keys,
                            const Tensor<T>& values, const Tensor<T>& w,
                            bool leave_one_out = false);

// The cross-entropy of Nadaraya-Watson classification: with labels y (m,) of the keys (>= 0) and
// query_labels (n,),
//   L = -sum_i log p_i[query_labels_i],   p_i[c] = sum_{j: y_j = c} p_ij
// computed as logsumexp over the keys of row i's class minus logsumexp over all its keys: finite
// whenever a row has a key of its class (+inf when it has none), however far the class is.
// Gradients flow to queries, keys and w.
template <class T>
Tensor<T> nw_attention_cross_entropy(const Tensor<T>& queries, const Tensor<T>& keys,
                                     const std::vector<std::int64_t>& key_labels,
                                     const std::vector<std::int64_t>& query_labels,
                                     const Tensor<T>& w, bool leave_one_out = false);

// The attention matrix p (n, m) of the same model, materialised, without recording anything (for
// plots and the attention CSVs); with leave_one_out, p_ii = 0. w: 1 or d elements, or one number.
template <class T>
xt::xarray<T> nw_attention_weights(const xt::xarray<T>& queries, const xt::xarray<T>& keys,
                                   const xt::xarray<T>& w, bool leave_one_out = false);
template <class T>
xt::xarray<T> nw_attention_weights(const xt::xarray<T>& queries, const xt::xarray<T>& keys, T w,
                                   bool leave_one_out = false);

}  // namespace tapegrad
