// Nadaraya-Watson on vectors and on classes (d2l 2nd edition, "Attention Pooling by Similarity"):
// inputs x in R^d, Euclidean distances, one shared width or one width per coordinate, and
// classification by pooling one-hot values into class probabilities.
//
//   inputs      queries Q (n, d), training inputs X (m, d), values V (m, C)
//               (regression: C = 1, V = y; classification: V = onehot(labels), C classes)
//   distances   s_ij = sum_k ((q_ik - x_jk) w_k)^2       w: (1,) shared or (d,) per coordinate
//   attention   alpha_ij = softmax_j(-s_ij / 2)
//   estimate    f_i = sum_j alpha_ij v_j                 (n, C); class probabilities for one-hot V
//
// For d = 1 and a shared w this is exactly the chapter's model (models/nadaraya_watson.h), which
// the program keeps using for d = 1 regression so that its numbers do not move.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"
#include "models/nadaraya_watson.h"
#include "ops/softmax.h"

namespace tapegrad {

// One width for every coordinate (w of shape (1,)) or one per coordinate (w of shape (d,)).
enum class Widths { Shared, PerCoordinate };
Widths widths_from_string(const std::string& name);  // "shared" | "per-coordinate"; else throws
std::string to_string(Widths widths);

// The pairwise weighted squared distances, from ops (unsqueeze, sub, mul, square, sum over the
// last axis):
//   queries (n, d), keys (n, m, d) or (m, d) (shared by every query), w (1,) or (d,)
//   -> s (n, m),  s_ij = sum_k ((q_ik - keys_ijk) w_k)^2
// Throws std::invalid_argument naming the shapes when d or w's length disagree.
template <class T>
Tensor<T> weighted_sq_distances(const Tensor<T>& queries, const Tensor<T>& keys,
                                const Tensor<T>& w);

// torch.nn.functional.one_hot: labels 0..C-1 (n,) -> (n, C) of the dtype. Throws on a label
// outside 0..C-1.
template <class T>
Tensor<T> one_hot(const std::vector<std::int64_t>& labels, std::size_t num_classes);

// Keys and values for training on (n, d) inputs and (n, C) values: with leave_one_out, row i holds
// every pair but (x_i, v_i): keys (n, n - 1, d), values (n, n - 1, C); without it, (n, n, d) and
// (n, n, C). The d-dimensional form of training_keys_values.
template <class T>
std::pair<Tensor<T>, Tensor<T>> training_keys_values_nd(const Tensor<T>& x_train,
                                                        const Tensor<T>& values,
                                                        bool leave_one_out = true);

// The labels of those keys, for nw_cross_entropy: labels (n,) -> key_labels (n, n - 1) with
// leave_one_out (row i: every label but labels[i], in order), else (n, n) (every row is labels).
// The same layout as training_keys_values_nd's keys, so key_labels_ij is the label of key j of
// row i. (An addition to the declared API.)
xt::xarray<std::int64_t> training_key_labels(const std::vector<std::int64_t>& labels,
                                             bool leave_one_out = true);

// The Gaussian attention logits -s_ij / 2 shifted by each row's nearest key x*_i (the key of
// smallest s_ij; the first of equally near ones):
//   l_ij = -(s_ij - s_i*) / 2 = -1/2 sum_k w_k^2 (x*_ik - keys_ijk) (2 q_ik - keys_ijk - x*_ik)
// queries (n, d), keys (n, m, d) or (m, d), w (1,) or (d,) -> (n, m). softmax over a row ignores
// the row's constant s_i* / 2, so softmax(l, 1) = softmax(-s / 2, 1) and every gradient through the
// softmax (or through the cross-entropy, a difference of two log-sum-exps of one row) is the same;
// x* enters as a constant, whose own gradient would be a per-row constant too. Built from ops as a
// product of two differences, l never forms the squares: the nearest key's logit is exactly 0 (a
// row never sums to 0), nothing overflows for queries far from every key, and the logits of the
// keys that matter are not lost in the rounding of a large s (the 1-D model's gaussian_logits,
// ops/attention.h, is the same idea).
template <class T>
Tensor<T> nearest_shifted_logits(const Tensor<T>& queries, const Tensor<T>& keys,
                                 const Tensor<T>& w);

// The parametric model on vectors: w of shape (1,) or (d,), every coordinate starting at w_init.
// Its logits are nearest_shifted_logits: a query far from every key gets its weight on the
// nearest key(s), finite, as in the 1-D model.
template <class T>
class NWKernelRegressionND {
 public:
  NWKernelRegressionND(std::size_t d, Widths widths, T w_init);

  // queries (n, d), keys (n, m, d), values (n, m, C) -> (n, C):
  //   logits = weighted_sq_distances(queries, keys, w) * (-1/2)       (n, m)
  //            (through nearest_shifted_logits: the same up to a per-row constant)
  //   attention = softmax(logits, 1)                                  (n, m)
  //   out = bmm(attention.unsqueeze(1), values).reshape(n, C)        (n, 1, C) -> (n, C)
  // logits() and attention_weights() of this call are kept (the cross-entropy loss needs the
  // logits; the plots need the weights).
  Tensor<T> forward(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values);

  // Prediction: every query sees every training pair. queries (n, d), x_train (m, d),
  // values (m, C) -> (n, C), through matmul(attention (n, m), values (m, C)). Keeps logits() and
  // attention_weights() too, now (n, m) with m the training pairs.
  Tensor<T> predict(const Tensor<T>& queries, const Tensor<T>& x_train, const Tensor<T>& values);

  Tensor<T>& w() { return w_; }
  std::vector<Tensor<T>> parameters() { return {w_}; }
  const Tensor<T>& logits() const { return logits_; }                        // (n, m)
  const Tensor<T>& attention_weights() const { return attention_weights_; }  // (n, m)

 private:
  Tensor<T> w_;
  Tensor<T> logits_, attention_weights_;
};

// logsumexp(x, axis) (torch.logsumexp, stable, -inf entries contribute nothing) is an op in
// ops/softmax.h, included above.

// Classification losses of NW class probabilities.
//
// Cross-entropy from the attention logits (n, m), stably: for query i with label y_i,
//   log p_i[y_i] = logsumexp_{j: key_labels_ij = y_i} logits_ij - logsumexp_j logits_ij
//   L = -sum_i log p_i[y_i]
// key_labels (n, m) is the label of key j in row i (the leave-one-out layout of the logits).
// Finite whenever every row has a key of its own class; a row without one throws
// std::invalid_argument naming the row and its label (p would be 0, the loss inf). Built from ops
// (masked_fill with -inf, logsumexp, sub, sum), so keys of other classes get gradient exactly 0
// through the numerator. Use it with model.logits() after forward, and
// training_key_labels(labels, leave_one_out) for key_labels.
template <class T>
Tensor<T> nw_cross_entropy(const Tensor<T>& logits, const xt::xarray<std::int64_t>& key_labels,
                           const std::vector<std::int64_t>& labels);

// Squared loss of class probabilities p (n, C) against one-hot targets (n, C):
//   L = 1/2 sum_i ||p_i - target_i||^2
template <class T>
Tensor<T> squared_loss(const Tensor<T>& p, const Tensor<T>& target);

// Nonparametric pooling on vectors: x_train (m, d), values (m, C), x_query (n, d).
//   gaussian: alpha_ij = softmax_j(-||q_i - x_j||^2 / (2 sigma^2))
//   others:   K(u) of models/nadaraya_watson.h with u = ||q_i - x_j|| / sigma, normalised per row;
//             an empty row (compact kernel) falls back to the nearest input or throws, per `empty`.
// Returns y_hat (n, C) and weights (n, m).
template <class T>
NWResult<T> nadaraya_watson_nd(const Tensor<T>& x_train, const Tensor<T>& values,
                               const Tensor<T>& x_query, Kernel kernel, T sigma = T(1),
                               EmptyRow empty = EmptyRow::Nearest);

// Predicted labels: argmax over each row of p (n, C), ties to the smallest label.
template <class T>
std::vector<std::int64_t> argmax_labels(const xt::xarray<T>& p);

}  // namespace tapegrad
