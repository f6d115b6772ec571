// Attention pooling for kernel regression (d2l, "Attention Pooling: Nadaraya-Watson Kernel
// Regression"): queries x attend to keys x_i and pool values y_i.
//
//   average pooling          f(x) = (1/n) sum_i y_i
//   Nadaraya-Watson          f(x) = sum_i alpha(x, x_i) y_i,
//                            alpha(x, x_i) = K(x - x_i) / sum_j K(x - x_j)
//   parametric (learned w)   f(x) = sum_i softmax_i(-((x - x_i) w)^2 / 2) y_i
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "autograd/tensor.h"

namespace tapegrad {

// f(x) = mean(y_train) for every one of n_query queries, shape (n_query,).
template <class T>
Tensor<T> average_pooling(const Tensor<T>& y_train, std::size_t n_query);

// Kernels of the 2nd edition, applied to u = d / sigma (d = query - key, sigma the width):
//   gaussian     exp(-u^2 / 2)            boxcar        1 if |u| < 1, else 0
//   constant     1                         epanechikov   max(0, 1 - |u|)
enum class Kernel { Gaussian, Boxcar, Constant, Epanechikov };
Kernel kernel_from_string(
    const std::string& name);  // throws std::invalid_argument on unknown names
std::string to_string(Kernel k);
double kernel_value(Kernel k, double u);

// What to do with a query whose kernel row is all zero (a compact kernel, boxcar or epanechikov,
// with no training input within sigma of the query): the weights 0/0 are undefined.
//   Nearest: give all weight to the nearest training input (the limit of shrinking the kernel).
//   Throw:   throw std::domain_error naming the query.
enum class EmptyRow { Nearest, Throw };

// Kernel weights from distances dist (n_query, n_train) >= 0 for the compact and constant kernels:
// K(dist / sigma) normalised per row. A row whose kernel values are all 0 (no training input within
// sigma) falls back to its nearest training input (the first of equally near ones; empty_rows
// counts them) or throws std::domain_error "op: query <query_name(q)> has no training input ...",
// as `empty` says. Shared by nadaraya_watson and nadaraya_watson_nd (plain loops: not
// differentiated).
template <class T>
xt::xarray<T> compact_kernel_weights(const xt::xarray<T>& dist, Kernel kernel, T sigma,
                                     EmptyRow empty, std::size_t& empty_rows, const std::string& op,
                                     const std::function<std::string(std::size_t)>& query_name);

template <class T>
struct NWResult {
  Tensor<T> y_hat;             // (n_query,)
  Tensor<T> weights;           // (n_query, n_train), rows sum to 1
  std::size_t empty_rows = 0;  // queries that fell back to the nearest training input
};

// Nonparametric Nadaraya-Watson estimates and attention weights for queries x_query.
// The gaussian rows are softmax(gaussian_logits(d, 1 / sigma)) (ops/attention.h) and y_hat =
// weights matmul y_train: finite for queries far from every key.
template <class T>
NWResult<T> nadaraya_watson(const Tensor<T>& x_train, const Tensor<T>& y_train,
                            const Tensor<T>& x_query, Kernel kernel, T sigma = T(1),
                            EmptyRow empty = EmptyRow::Nearest);

// Keys and values for training. With leave_one_out (the chapter's choice), row i holds every
// training pair except (x_i, y_i): shape (n, n - 1), built as the chapter does,
// X_tile[~eye].reshape(n, n - 1). Without it, row i holds all n pairs, including x_i's own, which
// lets w grow without bound: the model learns to copy y_i (see docs/chapter.md).
template <class T>
std::pair<Tensor<T>, Tensor<T>> training_keys_values(const Tensor<T>& x_train,
                                                     const Tensor<T>& y_train,
                                                     bool leave_one_out = true);

// Keys and values for prediction: every query sees all n_train pairs, shape (n_query, n_train).
template <class T>
std::pair<Tensor<T>, Tensor<T>> query_keys_values(const Tensor<T>& x_train,
                                                  const Tensor<T>& y_train, std::size_t n_query);

// The chapter's parametric attention pooling with one learnable scalar w, shape (1,).
template <class T>
class NWKernelRegression {
 public:
  explicit NWKernelRegression(T w_init);

  // queries (n,), keys (n, m), values (n, m) -> predictions (n,).
  //   queries' = queries.repeat_interleave(m).reshape(n, m)          (n, m): row i is q_i
  //   attention_weights = softmax(-((queries' - keys) * w)^2 / 2, axis 1)   (n, m)
  //                       (the logits through gaussian_logits, ops/attention.h)
  //   out = bmm(attention_weights.unsqueeze(1), values.unsqueeze(-1))       (n, 1, 1) -> (n,)
  Tensor<T> forward(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values);
  Tensor<T> operator()(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v) {
    return forward(q, k, v);
  }

  // The same model through the fused op (ops/attention.h): keys x_train (m,) and values y_train
  // (m,) are shared by every query, and leave_one_out drops pair i from query i (queries must then
  // be x_train). O(n + m) memory instead of (n, m) matrices; attention_weights() is not kept (ask
  // nw_attention_weights for the matrix when you need it).
  Tensor<T> forward_fused(const Tensor<T>& queries, const Tensor<T>& x_train,
                          const Tensor<T>& y_train, bool leave_one_out);

  Tensor<T>& w() { return w_; }
  std::vector<Tensor<T>> parameters() { return {w_}; }
  // The weights of the last forward, (n, m), kept for plotting as the chapter does.
  const Tensor<T>& attention_weights() const { return attention_weights_; }

 private:
  Tensor<T> w_;
  Tensor<T> attention_weights_;
};

}  // namespace tapegrad
