// The Gaussian attention logits of the chapter's composed model (NWKernelRegression::forward),
// one hand-written op over the (n, m) matrix of query-key differences. The fused ops that never
// build that matrix are in ops/fused/nw_attention.h, included here for the callers of this header.
#pragma once

#include "autograd/tensor.h"
#include "ops/fused/nw_attention.h"

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

}  // namespace tapegrad
