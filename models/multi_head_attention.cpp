#include "models/multi_head_attention.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/linalg.h"
#include "ops/shape.h"

namespace tapegrad {

namespace {

// The sizes the constructor is given, checked before any weight is drawn.
std::size_t checked_heads(std::size_t num_hiddens, std::size_t num_heads, double dropout) {
  if (num_hiddens == 0 || num_heads == 0 || num_hiddens % num_heads != 0)
    throw std::invalid_argument("MultiHeadAttention: num_heads " + std::to_string(num_heads) +
                                " must be >= 1 and divide num_hiddens " +
                                std::to_string(num_hiddens));
  if (!(dropout >= 0 && dropout <= 1))
    throw std::invalid_argument("MultiHeadAttention: dropout must be in [0, 1], got " +
                                std::to_string(dropout));
  return num_heads;
}

long as_long(std::size_t n) {
  return static_cast<long>(n);
}

}  // namespace

template <class T>
MultiHeadAttention<T>::MultiHeadAttention(std::size_t key_size, std::size_t query_size,
                                          std::size_t value_size, std::size_t num_hiddens,
                                          std::size_t num_heads, T dropout, Rng& rng, bool bias)
    : num_hiddens_(num_hiddens),
      num_heads_(checked_heads(num_hiddens, num_heads, static_cast<double>(dropout))),
      dropout_(dropout),
      W_q_(query_size, num_hiddens, bias, rng),
      W_k_(key_size, num_hiddens, bias, rng),
      W_v_(value_size, num_hiddens, bias, rng),
      W_o_(num_hiddens, num_hiddens, bias, rng) {}

template <class T>
MultiHeadAttention<T>::MultiHeadAttention(std::size_t num_hiddens, std::size_t num_heads, T dropout,
                                          Rng& rng, bool bias)
    : MultiHeadAttention(num_hiddens, num_hiddens, num_hiddens, num_hiddens, num_heads, dropout,
                         rng, bias) {}

template <class T>
Tensor<T> MultiHeadAttention<T>::transpose_qkv(const Tensor<T>& x) const {
  // (b, n, H) -> (b, n, h, H / h) -> (b, h, n, H / h) -> (b h, n, H / h)
  const Tensor<T> heads =
      reshape(x, {as_long(x.shape()[0]), as_long(x.shape()[1]), as_long(num_heads_), -1});
  const Tensor<T> by_head = permute(heads, {0, 2, 1, 3});
  return reshape(by_head, {-1, as_long(by_head.shape()[2]), as_long(by_head.shape()[3])});
}

template <class T>
Tensor<T> MultiHeadAttention<T>::transpose_output(const Tensor<T>& x) const {
  // (b h, n, H / h) -> (b, h, n, H / h) -> (b, n, h, H / h) -> (b, n, H)
  const Tensor<T> heads =
      reshape(x, {-1, as_long(num_heads_), as_long(x.shape()[1]), as_long(x.shape()[2])});
  const Tensor<T> by_query = permute(heads, {0, 2, 1, 3});
  return reshape(by_query, {as_long(by_query.shape()[0]), as_long(by_query.shape()[1]), -1});
}

template <class T>
Tensor<T> MultiHeadAttention<T>::forward_impl(const Tensor<T>& q, const Tensor<T>& k,
                                              const Tensor<T>& v, const ValidLens* valid_lens) {
  const auto ok = [](const Tensor<T>& t, std::size_t features) {
    return t.defined() && t.dim() == 3 && t.shape()[2] == features;
  };
  if (!ok(q, W_q_.in_features()) || !ok(k, W_k_.in_features()) || !ok(v, W_v_.in_features()) ||
      q.shape()[0] != k.shape()[0] || k.shape()[0] != v.shape()[0] || k.shape()[1] != v.shape()[1])
    throw std::invalid_argument(
        "MultiHeadAttention: queries " + (q.defined() ? describe(q) : "undefined") + ", keys " +
        (k.defined() ? describe(k) : "undefined") + " and values " +
        (v.defined() ? describe(v) : "undefined") + " must be (b, n_q, " +
        std::to_string(W_q_.in_features()) + "), (b, n_k, " + std::to_string(W_k_.in_features()) +
        ") and (b, n_k, " + std::to_string(W_v_.in_features()) + ")");
  const Tensor<T> Q = transpose_qkv(W_q_(q)), K = transpose_qkv(W_k_(k)),
                  V = transpose_qkv(W_v_(v));
  const T scale = T(1) / std::sqrt(static_cast<T>(Q.shape()[2]));
  // (b h, n_q, d) bmm (b h, d, n_k) -> (b h, n_q, n_k): DotProductAttention's scores
  const Tensor<T> scores = bmm(Q, transpose(K, 1, 2)) * scale;
  attention_weights_ = valid_lens
                           ? masked_softmax(scores, repeat_valid_lens(*valid_lens, num_heads_))
                           : masked_softmax(scores);
  const Tensor<T> heads = bmm(dropout(attention_weights_, dropout_, training_), V);
  return W_o_(transpose_output(heads));
}

template <class T>
Tensor<T> MultiHeadAttention<T>::forward(const Tensor<T>& q, const Tensor<T>& k,
                                         const Tensor<T>& v) {
  return forward_impl(q, k, v, nullptr);
}

template <class T>
Tensor<T> MultiHeadAttention<T>::forward(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                                         const ValidLens& valid_lens) {
  return forward_impl(q, k, v, &valid_lens);
}

template <class T>
std::vector<Tensor<T>> MultiHeadAttention<T>::parameters() const {
  std::vector<Tensor<T>> ps;
  for (const Linear<T>* l : {&W_q_, &W_k_, &W_v_, &W_o_})
    for (const auto& p : l->parameters()) ps.push_back(p);
  return ps;
}

ValidLens repeat_valid_lens(const ValidLens& valid_lens, std::size_t num_heads) {
  if (valid_lens.dimension() != 1 && valid_lens.dimension() != 2)
    throw std::invalid_argument("MultiHeadAttention: valid_lens must be (b,) or (b, n_q), got " +
                                shape_str(to_shape(valid_lens.shape())));
  Shape s = to_shape(valid_lens.shape());
  const std::size_t row = valid_lens.dimension() == 2 ? s[1] : 1;
  s[0] *= num_heads;
  ValidLens out = ValidLens::from_shape(s);
  for (std::size_t i = 0; i < valid_lens.shape()[0]; ++i)
    for (std::size_t h = 0; h < num_heads; ++h)
      std::copy_n(valid_lens.data() + i * row, row, out.data() + (i * num_heads + h) * row);
  return out;
}

template class MultiHeadAttention<float>;
template class MultiHeadAttention<double>;

}  // namespace tapegrad
