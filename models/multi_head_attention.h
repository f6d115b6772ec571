// Multi-head attention (d2l, "Multi-Head Attention"), composed from the engine's ops: num_heads
// scaled dot-product attentions side by side, each on its own slice of learned projections.
//
//   queries (b, n_q, query_size), keys (b, n_k, key_size), values (b, n_k, value_size)
//   Q = W_q(queries), K = W_k(keys), V = W_v(values)            (b, n, num_hiddens), no bias
//   transpose_qkv: (b, n, num_hiddens) -> (b * num_heads, n, num_hiddens / num_heads)
//       (reshape to (b, n, h, d), permute to (b, h, n, d), reshape): head j of batch entry i is
//       row i * num_heads + j
//   weights = masked_softmax(Q K^T / sqrt(d), valid lengths repeated num_heads times per entry)
//   out = dropout(weights) V                                    (b * num_heads, n_q, d)
//   transpose_output: the inverse, to (b, n_q, num_hiddens); result W_o(out)  (b, n_q, num_hiddens)
//
// The attention is DotProductAttention's (models/attention.h) with d2l's dropout on the
// attention weights, written out here because that class has no dropout. Dropout is active in
// training mode (the default, as torch modules start) and off after eval(); its masks come from
// the manual_seed generator (ops/dropout.h).
#pragma once

#include <cstddef>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"
#include "models/attention_scoring.h"  // ValidLens, masked_softmax
#include "models/linear.h"

namespace tapegrad {

template <class T>
class MultiHeadAttention {
 public:
  // d2l 1st edition's MultiHeadAttention(key_size, query_size, value_size, num_hiddens,
  // num_heads, dropout, bias): the four Linear maps drawn from rng in the order W_q, W_k, W_v, W_o.
  // Throws std::invalid_argument naming MultiHeadAttention when num_heads does not divide
  // num_hiddens, a size is 0 or dropout is outside [0, 1].
  MultiHeadAttention(std::size_t key_size, std::size_t query_size, std::size_t value_size,
                     std::size_t num_hiddens, std::size_t num_heads, T dropout, Rng& rng,
                     bool bias = false);
  // Inputs of num_hiddens features (the 2nd edition's LazyLinear sees that in the book's example).
  MultiHeadAttention(std::size_t num_hiddens, std::size_t num_heads, T dropout, Rng& rng,
                     bool bias = false);

  // (b, n_q, query_size), (b, n_k, key_size), (b, n_k, value_size) -> (b, n_q, num_hiddens).
  // valid_lens (b,) or (b, n_q) as masked_softmax takes them. Shape errors name
  // MultiHeadAttention and the three shapes.
  Tensor<T> forward(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values);
  Tensor<T> forward(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values,
                    const ValidLens& valid_lens);

  // The heads' attention weights of the last forward, (b * num_heads, n_q, n_k), before dropout.
  const Tensor<T>& attention_weights() const { return attention_weights_; }

  Tensor<T> transpose_qkv(const Tensor<T>& x) const;     // (b, n, H) -> (b h, n, H / h)
  Tensor<T> transpose_output(const Tensor<T>& x) const;  // (b h, n, H / h) -> (b, n, H)

  Linear<T>& W_q() { return W_q_; }
  Linear<T>& W_k() { return W_k_; }
  Linear<T>& W_v() { return W_v_; }
  Linear<T>& W_o() { return W_o_; }
  std::vector<Tensor<T>> parameters() const;  // W_q, W_k, W_v, W_o (each weight, then its bias)
  std::size_t num_heads() const { return num_heads_; }
  std::size_t num_hiddens() const { return num_hiddens_; }

  void train(bool on = true) { training_ = on; }
  void eval() { training_ = false; }
  bool training() const { return training_; }

 private:
  Tensor<T> forward_impl(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                         const ValidLens* valid_lens);

  std::size_t num_hiddens_, num_heads_;
  T dropout_;
  Linear<T> W_q_, W_k_, W_v_, W_o_;
  bool training_ = true;
  Tensor<T> attention_weights_;
};

// d2l: valid lengths repeated for every head, torch.repeat_interleave(valid_lens, num_heads, 0):
// (b,) -> (b h,), (b, n) -> (b h, n).
ValidLens repeat_valid_lens(const ValidLens& valid_lens, std::size_t num_heads);

}  // namespace tapegrad
