#include "ops/attention_nd.h"

#include <algorithm>
#include <memory>
#include <string>

#include "ops/common.h"
#include "ops/kernels/attention_nd.h"

namespace tapegrad {

namespace {

// queries (n, d), keys (m, d) with the same d >= 1, w (1,) or (d,), and with leave_one_out n == m
// and at least 2 keys.
template <class T>
void check_nd_args(const std::string& op, const Tensor<T>& queries, const Tensor<T>& keys,
                   const Tensor<T>& w, bool leave_one_out) {
  check_dim(op, queries, 2, "queries");
  check_dim(op, keys, 2, "keys");
  check_dim(op, w, 1, "w");
  const std::size_t n = queries.shape()[0], m = keys.shape()[0], d = queries.shape()[1];
  if (keys.shape()[1] != d || d == 0)
    throw std::invalid_argument(op + ": queries " + describe(queries) + " and keys " +
                                describe(keys) + " must have the same number d >= 1 of columns");
  if (w.size() != 1 && w.size() != d)
    throw std::invalid_argument(op + ": w " + describe(w) + " must have shape (1,) or (" +
                                std::to_string(d) + ",) for keys " + describe(keys));
  if (leave_one_out && n != m)
    throw std::invalid_argument(op +
                                ": leave_one_out needs the queries to be the keys, got queries " +
                                describe(queries) + " and keys " + describe(keys));
  if (m < (leave_one_out ? 2u : 1u))
    throw std::invalid_argument(op + ": too few keys " + describe(keys) +
                                (leave_one_out ? " for leave-one-out (need 2)" : " (need 1)"));
}

// labels.size() == expected, every label >= 0; query labels at most the largest key label.
void check_labels(const std::string& op, const std::vector<std::int64_t>& key_labels, std::size_t m,
                  const std::vector<std::int64_t>& query_labels, std::size_t n) {
  if (key_labels.size() != m)
    throw std::invalid_argument(op + ": key_labels has " + std::to_string(key_labels.size()) +
                                " labels for " + std::to_string(m) + " keys");
  if (query_labels.size() != n)
    throw std::invalid_argument(op + ": query_labels has " + std::to_string(query_labels.size()) +
                                " labels for " + std::to_string(n) + " queries");
  const std::int64_t classes = *std::max_element(key_labels.begin(), key_labels.end()) + 1;
  for (std::size_t j = 0; j < m; ++j)
    if (key_labels[j] < 0)
      throw std::invalid_argument(op + ": key_labels[" + std::to_string(j) +
                                  "] = " + std::to_string(key_labels[j]) + " is negative");
  for (std::size_t i = 0; i < n; ++i)
    if (query_labels[i] < 0 || query_labels[i] >= classes)
      throw std::invalid_argument(op + ": query_labels[" + std::to_string(i) +
                                  "] = " + std::to_string(query_labels[i]) +
                                  " is not a key label 0.." + std::to_string(classes - 1));
}

// The widths as d numbers (a shared width repeated).
template <class T>
std::vector<T> widths(const Tensor<T>& w, std::size_t d) {
  const T* data = w.value().data();
  return w.size() == 1 ? std::vector<T>(d, data[0]) : std::vector<T>(data, data + d);
}

// dL/dw for w of shape (1,) (the sum over the coordinates) or (d,).
template <class T>
xt::xarray<T> fold_widths(const std::vector<T>& grad_w_per_coordinate, const Tensor<T>& w) {
  xt::xarray<T> out = xt::zeros<T>(w.shape());
  for (std::size_t l = 0; l < grad_w_per_coordinate.size(); ++l)
    out.data()[w.size() == 1 ? 0 : l] += grad_w_per_coordinate[l];
  return out;
}

template <class T>
T* grad_or_null(xt::xarray<T>& g, const Tensor<T>& t) {
  return t.requires_grad() ? g.data() : nullptr;
}

}  // namespace

// f = softmax(-s / 2, 1) v,  s_ij = sum_l ((q_il - k_jl) w_l)^2     f (n, C)
// With g_ij = p_ij (grad_i . (v_j - f_i)) (the logits' slope; kernels/attention_nd.h):
//   queries: -w_l^2 sum_j g_ij (q_il - k_jl)                            (n, d)
//   keys:     w_l^2 sum_i g_ij (q_il - k_jl)                            (m, d)
//   values:   p^T grad = sum_i p_ij grad_ic                             (m, C)
//   w:       -w_l sum_ij g_ij (q_il - k_jl)^2, summed over l for w (1,)   (1,) or (d,)
template <class T>
Tensor<T> nw_attention_pool_nd(const Tensor<T>& queries, const Tensor<T>& keys,
                               const Tensor<T>& values, const Tensor<T>& w, bool leave_one_out) {
  const std::string op = "nw_attention_pool_nd";
  check_nd_args(op, queries, keys, w, leave_one_out);
  check_dim(op, values, 2, "values");
  const std::size_t n = queries.shape()[0], m = keys.shape()[0], d = queries.shape()[1];
  const std::size_t C = values.shape()[1];
  if (values.shape()[0] != m)
    throw std::invalid_argument(op + ": keys " + describe(keys) + " and values " +
                                describe(values) + " must have the same number of rows");
  auto width = std::make_shared<const std::vector<T>>(widths(w, d));
  const kernels::NdAttention<T> problem{
      queries.value().data(), n, keys.value().data(), m, d, width->data(), leave_one_out};
  xt::xarray<T> f = xt::xarray<T>::from_shape({n, C});
  kernels::nd_pool_forward(problem, values.value().data(), C, f.data());

  return record<
      T>(op, f, {queries, keys, values, w}, [=](const xt::xarray<T>& grad, const Node<T>& out) {
    xt::xarray<T> gq = xt::zeros<T>({n, d}), gk = xt::zeros<T>({m, d}), gv = xt::zeros<T>({m, C});
    std::vector<T> gw(d, T(0));
    const kernels::NdAttention<T> a{
        queries.value().data(), n, keys.value().data(), m, d, width->data(), leave_one_out};
    kernels::nd_pool_backward(a, values.value().data(), C, out.value.data(), grad.data(),
                              grad_or_null(gq, queries), grad_or_null(gk, keys),
                              grad_or_null(gv, values), w.requires_grad() ? gw.data() : nullptr);
    if (queries.requires_grad()) accumulate_grad(queries, std::move(gq), op);
    if (keys.requires_grad()) accumulate_grad(keys, std::move(gk), op);
    if (values.requires_grad()) accumulate_grad(values, std::move(gv), op);
    if (w.requires_grad()) accumulate_grad(w, fold_widths(gw, w), op);
  });
}

// L = -sum_i log p_i[y_i] = sum_i (logsumexp_j a_ij - logsumexp_{j: key_labels_j = y_i} a_ij),
// a_ij = -s_ij / 2 (scalar). With g_ij = grad (p_ij - pc_ij), pc_i the softmax over the keys of
// class y_i (0 elsewhere):
//   queries: -w_l^2 sum_j g_ij (q_il - k_jl)                            (n, d)
//   keys:     w_l^2 sum_i g_ij (q_il - k_jl)                            (m, d)
//   w:       -w_l sum_ij g_ij (q_il - k_jl)^2, summed over l for w (1,)   (1,) or (d,)
template <class T>
Tensor<T> nw_cross_entropy_nd(const Tensor<T>& queries, const Tensor<T>& keys,
                              const std::vector<std::int64_t>& key_labels,
                              const std::vector<std::int64_t>& query_labels, const Tensor<T>& w,
                              bool leave_one_out) {
  const std::string op = "nw_cross_entropy_nd";
  check_nd_args(op, queries, keys, w, leave_one_out);
  const std::size_t n = queries.shape()[0], m = keys.shape()[0], d = queries.shape()[1];
  check_labels(op, key_labels, m, query_labels, n);
  auto width = std::make_shared<const std::vector<T>>(widths(w, d));
  auto labels =
      std::make_shared<const std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>>>(
          key_labels, query_labels);
  const kernels::NdAttention<T> problem{
      queries.value().data(), n, keys.value().data(), m, d, width->data(), leave_one_out};
  xt::xarray<T> loss = xt::xarray<T>::from_shape({});
  loss() = kernels::nd_cross_entropy_forward(problem, key_labels.data(), query_labels.data());

  return record<T>(
      op, std::move(loss), {queries, keys, w}, [=](const xt::xarray<T>& grad, const Node<T>&) {
        xt::xarray<T> gq = xt::zeros<T>({n, d}), gk = xt::zeros<T>({m, d});
        std::vector<T> gw(d, T(0));
        const kernels::NdAttention<T> a{
            queries.value().data(), n, keys.value().data(), m, d, width->data(), leave_one_out};
        kernels::nd_cross_entropy_backward(a, labels->first.data(), labels->second.data(),
                                           grad.data()[0], grad_or_null(gq, queries),
                                           grad_or_null(gk, keys),
                                           w.requires_grad() ? gw.data() : nullptr);
        if (queries.requires_grad()) accumulate_grad(queries, std::move(gq), op);
        if (keys.requires_grad()) accumulate_grad(keys, std::move(gk), op);
        if (w.requires_grad()) accumulate_grad(w, fold_widths(gw, w), op);
      });
}

template Tensor<float> nw_attention_pool_nd(const Tensor<float>&, const Tensor<float>&,
                                            const Tensor<float>&, const Tensor<float>&, bool);
template Tensor<double> nw_attention_pool_nd(const Tensor<double>&, const Tensor<double>&,
                                             const Tensor<double>&, const Tensor<double>&, bool);
template Tensor<float> nw_cross_entropy_nd(const Tensor<float>&, const Tensor<float>&,
                                           const std::vector<std::int64_t>&,
                                           const std::vector<std::int64_t>&, const Tensor<float>&,
                                           bool);
template Tensor<double> nw_cross_entropy_nd(const Tensor<double>&, const Tensor<double>&,
                                            const std::vector<std::int64_t>&,
                                            const std::vector<std::int64_t>&, const Tensor<double>&,
                                            bool);

}  // namespace tapegrad
