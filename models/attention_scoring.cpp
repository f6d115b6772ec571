#include "models/attention_scoring.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "ops/elementwise.h"
#include "ops/indexing.h"
#include "ops/linalg.h"
#include "ops/reduction.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace tapegrad {

namespace {

std::string lens_str(const ValidLens& v) {
  return "valid_lens " + shape_str(to_shape(v.shape()));
}

// Throws unless q, k, v are 3-D with matching batch, k and v matching in their key count and (when
// same_depth) q and k matching in their feature size.
template <class T>
void check_qkv(const std::string& op, const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
               bool same_depth) {
  for (const Tensor<T>* t : {&q, &k, &v})
    if (!t->defined() || t->dim() != 3)
      throw std::invalid_argument(op + ": queries, keys and values must be 3-D (b, n, d), got " +
                                  (t->defined() ? describe(*t) : std::string("undefined")));
  const Shape qs = q.shape(), ks = k.shape(), vs = v.shape();
  const bool ok =
      qs[0] == ks[0] && ks[0] == vs[0] && ks[1] == vs[1] && (!same_depth || qs[2] == ks[2]);
  if (!ok)
    throw std::invalid_argument(op + ": queries " + shape_str(qs) + ", keys " + shape_str(ks) +
                                " and values " + shape_str(vs) + " do not fit together");
}

}  // namespace

template <class T>
xt::xarray<T> sequence_mask(const Shape& s, const ValidLens& valid_lens) {
  if (s.size() != 3)
    throw std::invalid_argument("masked_softmax: scores must be 3-D (b, q, k), got " +
                                shape_str(s));
  const Shape ls = to_shape(valid_lens.shape());
  const bool per_batch = ls == Shape{s[0]}, per_row = ls == Shape{s[0], s[1]};
  if (!per_batch && !per_row)
    throw std::invalid_argument("masked_softmax: " + lens_str(valid_lens) + " must be (" +
                                std::to_string(s[0]) + ",) or (" + std::to_string(s[0]) + ", " +
                                std::to_string(s[1]) + ") for scores " + shape_str(s));
  xt::xarray<T> mask = xt::zeros<T>(s);
  for (std::size_t i = 0; i < s[0]; ++i)
    for (std::size_t r = 0; r < s[1]; ++r) {
      const std::size_t len = per_batch ? valid_lens(i) : valid_lens(i, r);
      for (std::size_t j = 0; j < s[2] && j < len; ++j) mask(i, r, j) = T(1);
    }
  return mask;
}

template <class T>
Tensor<T> masked_softmax(const Tensor<T>& x, const ValidLens& valid_lens) {
  if (!x.defined()) throw std::invalid_argument("masked_softmax: x is undefined");
  const Shape s = x.shape();
  const xt::xarray<T> keep = sequence_mask<T>(s, valid_lens);  // (b, q, k): 1 valid, 0 masked
  // Masked entries are assigned, never multiplied, so whatever they hold (-2e6, inf, NaN) cannot
  // leak in: -inf in a row with a valid entry (weight exactly 0), 0 in a row with none (uniform).
  xt::xarray<bool> to_minus_inf = xt::zeros<bool>(s), to_zero = xt::zeros<bool>(s);
  for (std::size_t i = 0; i < s[0]; ++i)
    for (std::size_t r = 0; r < s[1]; ++r) {
      const bool empty_row = s[2] == 0 || keep(i, r, 0) == T(0);  // valid entries come first
      for (std::size_t j = 0; j < s[2]; ++j)
        if (keep(i, r, j) == T(0)) (empty_row ? to_zero : to_minus_inf)(i, r, j) = true;
    }
  const T minus_inf = -std::numeric_limits<T>::infinity();
  return softmax(masked_fill(masked_fill(x, to_minus_inf, minus_inf), to_zero, T(0)), -1);
}

template <class T>
Tensor<T> masked_softmax(const Tensor<T>& x) {
  if (!x.defined()) throw std::invalid_argument("masked_softmax: x is undefined");
  return softmax(x, -1);
}

template <class T>
Tensor<T> DotProductAttention<T>::forward_impl(const Tensor<T>& q, const Tensor<T>& k,
                                               const Tensor<T>& v, const ValidLens* valid_lens) {
  check_qkv("DotProductAttention", q, k, v, true);
  const T scale = T(1) / std::sqrt(static_cast<T>(q.shape()[2]));
  // (b, q, d) bmm (b, d, k) -> (b, q, k), scaled by 1 / sqrt(d) so the scores' variance does not
  // grow with d for unit-variance queries and keys.
  const Tensor<T> scores = bmm(q, transpose(k, 1, 2)) * scale;
  attention_weights_ = valid_lens ? masked_softmax(scores, *valid_lens) : masked_softmax(scores);
  return bmm(attention_weights_, v);  // (b, q, k) bmm (b, k, v) -> (b, q, v)
}

template <class T>
Tensor<T> DotProductAttention<T>::forward(const Tensor<T>& q, const Tensor<T>& k,
                                          const Tensor<T>& v) {
  return forward_impl(q, k, v, nullptr);
}

template <class T>
Tensor<T> DotProductAttention<T>::forward(const Tensor<T>& q, const Tensor<T>& k,
                                          const Tensor<T>& v, const ValidLens& valid_lens) {
  return forward_impl(q, k, v, &valid_lens);
}

template <class T>
AdditiveAttention<T>::AdditiveAttention(std::size_t key_size, std::size_t query_size,
                                        std::size_t num_hiddens, Rng& rng)
    : W_k_(key_size, num_hiddens, false, rng),
      W_q_(query_size, num_hiddens, false, rng),
      w_v_(num_hiddens, 1, false, rng) {}

template <class T>
Tensor<T> AdditiveAttention<T>::forward_impl(const Tensor<T>& q, const Tensor<T>& k,
                                             const Tensor<T>& v, const ValidLens* valid_lens) {
  check_qkv("AdditiveAttention", q, k, v, false);
  // (b, q, 1, h) + (b, 1, k, h) -> (b, q, k, h): every query's projection beside every key's.
  const Tensor<T> features = tanh(unsqueeze(W_q_(q), 2) + unsqueeze(W_k_(k), 1));
  const Tensor<T> scores = squeeze(w_v_(features), -1);  // (b, q, k, 1) -> (b, q, k)
  attention_weights_ = valid_lens ? masked_softmax(scores, *valid_lens) : masked_softmax(scores);
  return bmm(attention_weights_, v);
}

template <class T>
Tensor<T> AdditiveAttention<T>::forward(const Tensor<T>& q, const Tensor<T>& k,
                                        const Tensor<T>& v) {
  return forward_impl(q, k, v, nullptr);
}

template <class T>
Tensor<T> AdditiveAttention<T>::forward(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                                        const ValidLens& valid_lens) {
  return forward_impl(q, k, v, &valid_lens);
}

template <class T>
std::vector<Tensor<T>> AdditiveAttention<T>::parameters() const {
  return {W_q_.parameters()[0], W_k_.parameters()[0], w_v_.parameters()[0]};
}

template <class T>
Tensor<T> gaussian_attention_pool(const Tensor<T>& queries, const Tensor<T>& keys,
                                  const Tensor<T>& values, const Tensor<T>& w, Tensor<T>* weights) {
  check_qkv("gaussian_attention_pool", queries, keys, values, true);
  // (b, q, 1, d) - (b, 1, k, d) -> (b, q, k, d), squared and summed over d -> (b, q, k)
  const Tensor<T> dist2 = sum(square(unsqueeze(queries, 2) - unsqueeze(keys, 1)), {3});
  const Tensor<T> p = softmax(dist2 * (w * w) * T(-0.5), -1);
  if (weights) *weights = p;
  return bmm(p, values);
}

#define TAPEGRAD_INSTANTIATE(T)                                                                    \
  template xt::xarray<T> sequence_mask<T>(const Shape&, const ValidLens&);                         \
  template Tensor<T> masked_softmax(const Tensor<T>&, const ValidLens&);                           \
  template Tensor<T> masked_softmax(const Tensor<T>&);                                             \
  template class DotProductAttention<T>;                                                           \
  template class AdditiveAttention<T>;                                                             \
  template Tensor<T> gaussian_attention_pool(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                             const Tensor<T>&, Tensor<T>*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
