// Attention pooling for kernel regression (d2l, "Attention Pooling: Nadaraya-Watson Kernel
// Regression", and the 2nd edition's "Attention Pooling by Similarity"): queries q attend to keys
// x_j and pool values v_j, in any dimension d; the chapter's 1-D model is the case d = 1.
//
//   average pooling   f(q) = (1/m) sum_j v_j
//   Nadaraya-Watson   f(q) = sum_j alpha(q, x_j) v_j,  alpha(q, x_j) = K(q - x_j) / sum_l K(q - x_l)
//   parametric        f(q) = sum_j softmax_j(-||(q - x_j) w||^2 / 2) v_j,  w learned
//
// Shapes: inputs (m,) are the book's, d = 1; inputs (m, d) are vectors. Values (m,) give outputs
// (n,); values (m, C) give (n, C): C = 1 for regression, C classes for one-hot labels (the
// outputs are then class probabilities). w is (1,), one width shared by every coordinate, or (d,).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace tapegrad {

// f(q) = mean(values) for each of n_query queries: values (m,) -> (n_query,).
template <class T>
Tensor<T> average_pooling(const Tensor<T>& values, std::size_t n_query);

// Kernels of the 2nd edition, applied to u = ||q - x|| / sigma (sigma the width):
//   gaussian     exp(-u^2 / 2)            boxcar        1 if u < 1, else 0
//   constant     1                         epanechikov   max(0, 1 - u)
enum class Kernel { Gaussian, Boxcar, Constant, Epanechikov };
Kernel kernel_from_string(const std::string& name);  // throws std::invalid_argument if unknown
std::string to_string(Kernel k);
double kernel_value(Kernel k, double u);

// A row of zeros (boxcar or epanechikov, no training input within sigma) has weights 0/0. Nearest:
// all weight on its nearest input (the kernel's limit as it shrinks). Throw: std::domain_error.
enum class EmptyRow { Nearest, Throw };

template <class T>
struct NWResult {
  Tensor<T> y_hat, weights;    // (n,) or (n, C) as the values; (n, m), rows summing to 1
  std::size_t empty_rows = 0;  // queries that fell back to their nearest training input
};

// Nonparametric pooling: x_train (m,) or (m, d), values (m,) or (m, C), x_query (n,) or (n, d).
// Gaussian weights: softmax(nw_logits(x_query, x_train, 1 / sigma)), from ops; the others:
// K(||q - x|| / sigma) normalised per row (plain loops). y_hat = weights matmul values.
template <class T>
NWResult<T> nadaraya_watson(const Tensor<T>& x_train, const Tensor<T>& values,
                            const Tensor<T>& x_query, Kernel kernel, T sigma = T(1),
                            EmptyRow empty = EmptyRow::Nearest);

// One width for every coordinate (w of shape (1,)) or one per coordinate (w of shape (d,)).
enum class Widths { Shared, PerCoordinate };
Widths widths_from_string(const std::string& name);  // "shared" | "per-coordinate"; else throws
std::string to_string(Widths widths);

// The Gaussian attention logits, composed from ops (the algebra is in nadaraya_watson.cpp):
//   l_ij = -||(q_i - k_ij) w||^2 / 2 + ||(q_i - x*_i) w||^2 / 2
// queries (n, d), keys (n, m, d) (each query its own) or (m, d) (shared), w (1,) or (d,) -> (n, m).
// x*_i, query i's nearest key, is a constant: the shift is one number per row, so softmax(l) is
// the book's softmax(-||(q - k) w||^2 / 2), as is every gradient through it. The nearest key's
// logit is exactly 0: a row never underflows to all zeros, however far the query.
template <class T>
Tensor<T> nw_logits(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& w);

// Keys and values for training, as the chapter builds them (X_tile[~eye].reshape(n, n - 1)): with
// leave_one_out, row i holds every pair but (x_i, v_i): x_train (n,) or (n, d) -> keys (n, n - 1)
// or (n, n - 1, d), values (n,) or (n, C) likewise. Without it every row holds all n pairs, which
// lets w grow without bound: the model learns to copy v_i (docs/chapter.md).
template <class T>
std::pair<Tensor<T>, Tensor<T>> training_keys_values(const Tensor<T>& x_train,
                                                     const Tensor<T>& values,
                                                     bool leave_one_out = true);

// Keys and values for prediction, as the chapter builds them: each of n_query rows holds all m
// pairs (x_train.repeat((n_query, 1)), and the same for values).
template <class T>
std::pair<Tensor<T>, Tensor<T>> query_keys_values(const Tensor<T>& x_train, const Tensor<T>& values,
                                                  std::size_t n_query);

// The largest class count: one-hot values are dense (n, C); labels below 2^24 are exact in float32.
constexpr std::size_t kMaxClasses = std::size_t(1) << 24;

// torch.nn.functional.one_hot: labels in 0..num_classes-1 (n,) -> (n, num_classes). Throws
// std::invalid_argument for num_classes outside 1..kMaxClasses or a label out of range.
template <class T>
Tensor<T> one_hot(const std::vector<std::int64_t>& labels, std::size_t num_classes);

// The labels of training_keys_values' keys, for nw_cross_entropy: labels (n,) -> (n, n - 1) with
// leave_one_out (row i: every label but labels[i], in order), else (n, n).
xt::xarray<std::int64_t> training_key_labels(const std::vector<std::int64_t>& labels,
                                             bool leave_one_out = true);

// L = 1/2 sum ||p - target||^2 over every element; p and target of one shape.
template <class T>
Tensor<T> squared_loss(const Tensor<T>& p, const Tensor<T>& target);

// The cross-entropy of the class probabilities p_i[c] = sum_{j: key_labels_ij = c} softmax_j(l_i)
// from the logits l (n, m) (model.logits() after forward), stably:
//   L = -sum_i log p_i[y_i] = sum_i (logsumexp_j l_ij - logsumexp_{j: key_labels_ij = y_i} l_ij)
// key_labels (n, m), labels y (n,). A row without a key of its own class throws (p = 0, L = inf).
template <class T>
Tensor<T> nw_cross_entropy(const Tensor<T>& logits, const xt::xarray<std::int64_t>& key_labels,
                           const std::vector<std::int64_t>& labels);

// The class of largest probability in each row of p (n, C), ties to the smallest label.
template <class T>
std::vector<std::int64_t> argmax_labels(const xt::xarray<T>& p);

// The chapter's parametric attention pooling, for inputs of dimension d, learning w.
template <class T>
class NWKernelRegression {
 public:
  // The book's model: d = 1, one width w = (w_init).
  explicit NWKernelRegression(T w_init);
  // d coordinates, w of shape (1,) or (d,), every coordinate starting at w_init.
  NWKernelRegression(std::size_t d, Widths widths, T w_init);

  // Each query with its own keys and values (the chapter's training layout):
  //   queries (n,),   keys (n, m),    values (n, m)     -> (n,)    the book's shapes: d = 1
  //   queries (n, d), keys (n, m, d), values (n, m, C)  -> (n, C)
  //   logits = nw_logits(queries, keys, w)                    (n, m)
  //   attention_weights = softmax(logits, 1)                  (n, m)
  //   out = bmm(attention_weights.unsqueeze(1), values)       (n, 1, C) -> (n, C) or (n,)
  Tensor<T> forward(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values);
  Tensor<T> operator()(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v) {
    return forward(q, k, v);
  }

  // Every query sees every training pair: queries (n,) or (n, d), x_train (m,) or (m, d), values
  // (m,) or (m, C) -> (n,) or (n, C), through matmul(attention_weights (n, m), values).
  Tensor<T> predict(const Tensor<T>& queries, const Tensor<T>& x_train, const Tensor<T>& values);

  // predict through the fused op, O(n + m) memory (with leave_one_out, queries are x_train and
  // query i skips pair i); logits() and attention_weights() are not kept.
  Tensor<T> forward_fused(const Tensor<T>& queries, const Tensor<T>& x_train,
                          const Tensor<T>& values, bool leave_one_out);

  std::size_t d() const { return d_; }
  Tensor<T>& w() { return w_; }
  std::vector<Tensor<T>> parameters() { return {w_}; }
  // The last forward's or predict's logits and weights (n, m), for the cross-entropy and the plots.
  const Tensor<T>& logits() const { return logits_; }
  const Tensor<T>& attention_weights() const { return attention_weights_; }

 private:
  void check_d(const std::string& op, const Tensor<T>& x, const char* name) const;
  std::size_t d_;
  Tensor<T> w_, logits_, attention_weights_;
};

}  // namespace tapegrad
