// Fused Gaussian attention pooling on vectors: the d-dimensional parametric Nadaraya-Watson model
// (models/nadaraya_watson_nd.h) in one op, O(n + m) memory: the (n, m) distance, logit and
// attention matrices are never materialised.
//
// For queries q (n, d), keys k (m, d), values v (m, C) and widths w of shape (1,) or (d,):
//   s_ij = sum_l ((q_il - k_jl) w_l)^2,   p_ij = softmax_j(-s_ij / 2),   f_i = sum_j p_ij v_j
// With leave_one_out (requires n == m: the queries are the keys), j = i is left out of row i.
//
// The same function as the composed ops
//   softmax(weighted_sq_distances(q, k, w) * (-1/2), 1)  matmul  v
// and tested against them; the loops and the numerics are in ops/kernels/attention_nd.h.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace tapegrad {

// queries (n, d), keys (m, d), values (m, C), w (1,) or (d,) -> (n, C).
// Gradients flow to queries, keys, values and w.
template <class T>
Tensor<T> nw_attention_pool_nd(const Tensor<T>& queries, const Tensor<T>& keys,
                               const Tensor<T>& values, const Tensor<T>& w,
                               bool leave_one_out = false);

// The cross-entropy of NW classification, fused: with labels y (m,) of the keys (0..C-1) and
// query_labels (n,),
//   L = -sum_i log p_i[query_labels_i],   p_i[c] = sum_{j: y_j = c} p_ij
// computed stably as logsumexp over the keys of class query_labels_i minus logsumexp over all keys
// (finite whenever a row has a key of its own class). Gradients flow to queries, keys and w.
template <class T>
Tensor<T> nw_cross_entropy_nd(const Tensor<T>& queries, const Tensor<T>& keys,
                              const std::vector<std::int64_t>& key_labels,
                              const std::vector<std::int64_t>& query_labels, const Tensor<T>& w,
                              bool leave_one_out = false);

}  // namespace tapegrad
