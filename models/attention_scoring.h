// Attention scoring functions (d2l, "Attention Scoring Functions"), built from the engine's ops:
// the section after the Nadaraya-Watson chapter, on the same tape.
//
// Shapes follow the book: queries (b, q, d_q), keys (b, k, d_k), values (b, k, d_v); scores and
// attention weights (b, q, k); outputs (b, q, d_v).
//
//   masked_softmax       softmax over the last axis, with the entries past each row's valid length
//                        given the logit -1e6 (so their weight is exactly 0)
//   DotProductAttention  scores = Q K^T / sqrt(d)
//   AdditiveAttention    scores = w_v . tanh(W_q q + W_k k)
//   gaussian_attention_pool  the chapter's Gaussian pooling for vector keys:
//                        softmax(-(w^2 / 2) ||q - k||^2) V. On the unit sphere ||q - k||^2 =
//                        2 - 2 q.k, so it is softmax(w^2 q.k) V: dot-product attention.
#pragma once

#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/random.h"
#include "autograd/tensor.h"
#include "models/linear.h"

namespace tapegrad {

// Valid lengths: shape (b,) (one length for every row of batch entry i) or (b, q) (one per row).
// A length larger than k counts as k (every entry valid), as d2l's comparison arange(k) < len does.
using ValidLens = xt::xarray<std::size_t>;

// The 0/1 mask (b, q, k) of d2l's _sequence_mask: mask[i, r, j] = 1 when j < valid length of
// (i, r). Throws std::invalid_argument (naming masked_softmax and the shapes) when valid_lens is
// neither (b,) nor (b, q).
template <class T>
xt::xarray<T> sequence_mask(const Shape& scores_shape, const ValidLens& valid_lens);

// d2l's masked_softmax on x (b, q, k): softmax over the last axis of
//   x' = masked_fill(x, masked entries, -inf)     rows with at least one valid entry
//   x' = masked_fill(x, every entry, 0)           rows with valid length 0
// Masked entries are assigned, not multiplied: whatever they hold (any number, inf, NaN) gets
// weight exactly 0 and gradient exactly 0. A row with valid length 0 is uniform, 1/k, as d2l's
// -1e6 fill and PyTorch give it (its gradient with respect to x is 0).
template <class T>
Tensor<T> masked_softmax(const Tensor<T>& x, const ValidLens& valid_lens);
// Without valid lengths: plain softmax over the last axis.
template <class T>
Tensor<T> masked_softmax(const Tensor<T>& x);

// Scaled dot-product attention: softmax(Q K^T / sqrt(d)) V, Q (b, q, d), K (b, k, d), V (b, k, v).
template <class T>
class DotProductAttention {
 public:
  Tensor<T> forward(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values);
  Tensor<T> forward(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values,
                    const ValidLens& valid_lens);
  // The weights of the last forward, (b, q, k).
  const Tensor<T>& attention_weights() const { return attention_weights_; }

 private:
  Tensor<T> forward_impl(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                         const ValidLens* valid_lens);
  Tensor<T> attention_weights_;
};

// Additive attention: score(q, k) = w_v^T tanh(W_q q + W_k k), with W_q (h, d_q), W_k (h, d_k),
// w_v (1, h), all Linear layers without bias, as in d2l.
//   features = W_q(Q).unsqueeze(2) + W_k(K).unsqueeze(1)    (b, q, 1, h) + (b, 1, k, h) -> (b, q,
//   k, h) scores   = w_v(tanh(features)).squeeze(-1)             (b, q, k)
template <class T>
class AdditiveAttention {
 public:
  AdditiveAttention(std::size_t key_size, std::size_t query_size, std::size_t num_hiddens,
                    Rng& rng);
  Tensor<T> forward(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values);
  Tensor<T> forward(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values,
                    const ValidLens& valid_lens);
  const Tensor<T>& attention_weights() const { return attention_weights_; }
  Linear<T>& W_k() { return W_k_; }
  Linear<T>& W_q() { return W_q_; }
  Linear<T>& w_v() { return w_v_; }
  std::vector<Tensor<T>> parameters() const;

 private:
  Tensor<T> forward_impl(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                         const ValidLens* valid_lens);
  Linear<T> W_k_, W_q_, w_v_;
  Tensor<T> attention_weights_;
};

// The chapter's Gaussian attention pooling for vector queries and keys, composed from ops:
//   logits = -(w^2 / 2) ||q_r - k_j||^2       (b, q, k), w of shape (1,)
//   out    = softmax(logits, -1) bmm V         (b, q, v)
// The attention weights are returned through *weights when it is not null.
template <class T>
Tensor<T> gaussian_attention_pool(const Tensor<T>& queries, const Tensor<T>& keys,
                                  const Tensor<T>& values, const Tensor<T>& w,
                                  Tensor<T>* weights = nullptr);

}  // namespace tapegrad
