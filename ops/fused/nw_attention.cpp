#include "ops/fused/nw_attention.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include <xtensor/xadapt.hpp>

#include "ops/common.h"
#include "ops/kernels/nw_attention.h"

namespace tapegrad {

namespace {

struct Dims {
  std::size_t n = 0, m = 0, d = 0;
};

// Columns of a vector (1) or a matrix (its second extent).
template <class T>
std::size_t columns(const Tensor<T>& t) {
  return t.dim() == 1 ? 1 : t.shape()[1];
}

// queries (n,) or (n, d) and keys (m,) or (m, d) with the same d >= 1 (a vector is d = 1), w (1,)
// or (d,), and with leave_one_out n == m and at least 2 keys.
template <class T>
Dims check_args(const std::string& op, const Tensor<T>& queries, const Tensor<T>& keys,
                const Tensor<T>& w, bool leave_one_out) {
  auto check_rows = [&op](const Tensor<T>& t, const std::string& what, const std::string& rows) {
    check_defined(op, t);
    if (t.dim() != 1 && t.dim() != 2)
      throw std::invalid_argument(op + ": expected " + what + " of shape (" + rows + ",) or (" +
                                  rows + ", d), got " + describe(t));
  };
  check_rows(queries, "queries", "n");
  check_rows(keys, "keys", "m");
  check_defined(op, w);
  const Dims dims{queries.shape()[0], keys.shape()[0], columns(queries)};
  if (columns(keys) != dims.d || dims.d == 0)
    throw std::invalid_argument(op + ": queries " + describe(queries) + " and keys " +
                                describe(keys) + " must have the same number d >= 1 of columns");
  if (w.dim() > 1 || (w.size() != 1 && w.size() != dims.d))
    throw std::invalid_argument(op + ": w " + describe(w) + " must have shape (1,) or (" +
                                std::to_string(dims.d) + ",) for keys " + describe(keys));
  if (leave_one_out && dims.n != dims.m)
    throw std::invalid_argument(op +
                                ": leave_one_out needs the queries to be the keys, got queries " +
                                describe(queries) + " and keys " + describe(keys));
  if (dims.m < (leave_one_out ? 2u : 1u))
    throw std::invalid_argument(op + ": too few keys " + describe(keys) +
                                (leave_one_out ? " for leave-one-out (need 2)" : " (need 1)"));
  return dims;
}

// key_labels (m,) >= 0, query_labels (n,) each a label some key has at most.
void check_labels(const std::string& op, const std::vector<std::int64_t>& key_labels, std::size_t m,
                  const std::vector<std::int64_t>& query_labels, std::size_t n) {
  if (key_labels.size() != m)
    throw std::invalid_argument(op + ": key_labels has " + std::to_string(key_labels.size()) +
                                " labels for " + std::to_string(m) + " keys");
  if (query_labels.size() != n)
    throw std::invalid_argument(op + ": query_labels has " + std::to_string(query_labels.size()) +
                                " labels for " + std::to_string(n) + " queries");
  for (std::size_t j = 0; j < m; ++j)
    if (key_labels[j] < 0)
      throw std::invalid_argument(op + ": key_labels[" + std::to_string(j) +
                                  "] = " + std::to_string(key_labels[j]) + " is negative");
  const std::int64_t top = *std::max_element(key_labels.begin(), key_labels.end());
  for (std::size_t i = 0; i < n; ++i)
    if (query_labels[i] < 0 || query_labels[i] > top)
      throw std::invalid_argument(op + ": query_labels[" + std::to_string(i) +
                                  "] = " + std::to_string(query_labels[i]) +
                                  " is not a key label 0.." + std::to_string(top));
}

// The widths as d numbers (a shared width repeated).
template <class T>
std::vector<T> widths(const xt::xarray<T>& w, std::size_t d) {
  const T* data = w.data();
  return w.size() == 1 ? std::vector<T>(d, data[0]) : std::vector<T>(data, data + d);
}

template <class T>
kernels::NwProblem<T> problem(const Tensor<T>& queries, const Tensor<T>& keys,
                              const std::vector<T>& width, Dims dims, bool leave_one_out) {
  return {queries.value().data(), keys.value().data(), width.data(), dims.n, dims.m, dims.d,
          leave_one_out};
}

// A zero gradient of t's shape when t requires grad, else an empty array (its data(): null).
template <class T>
xt::xarray<T> grad_for(const Tensor<T>& t) {
  return t.requires_grad() ? xt::xarray<T>(xt::zeros<T>(t.shape())) : xt::xarray<T>();
}

template <class T>
T* data_or_null(xt::xarray<T>& g, const Tensor<T>& t) {
  return t.requires_grad() ? g.data() : nullptr;
}

template <class T>
void add_grad(const std::string& op, const Tensor<T>& t, xt::xarray<T>& g) {
  if (t.requires_grad()) accumulate_grad(t, std::move(g), op);
}

// dL/dw from its d coordinates' parts, summed for a shared w.
template <class T>
void add_grad_w(const std::string& op, const Tensor<T>& w, const std::vector<T>& grad_w) {
  if (!w.requires_grad()) return;
  xt::xarray<T> gw = xt::zeros<T>(w.shape());
  for (std::size_t l = 0; l < grad_w.size(); ++l) gw.data()[w.size() == 1 ? 0 : l] += grad_w[l];
  accumulate_grad(w, std::move(gw), op);
}

}  // namespace

// f = softmax(-s / 2, 1) v,  s_ij = sum_l ((q_il - k_jl) w_l)^2. With g_ij = p_ij grad_i . (v_j -
// f_i), the slopes of the logits (ops/kernels/nw_attention.h):
// queries: -w_l^2 sum_j g_ij (q_il - k_jl)
// keys: w_l^2 sum_i g_ij (q_il - k_jl)
// values: p^T grad
// w: -w_l sum_ij g_ij (q_il - k_jl)^2, summed over l for w (1,)
template <class T>
Tensor<T> nw_attention_pool(const Tensor<T>& queries, const Tensor<T>& keys,
                            const Tensor<T>& values, const Tensor<T>& w, bool leave_one_out) {
  const std::string op = "nw_attention_pool";
  const Dims dims = check_args(op, queries, keys, w, leave_one_out);
  check_defined(op, values);
  if ((values.dim() != 1 && values.dim() != 2) || values.shape()[0] != dims.m)
    throw std::invalid_argument(op + ": values " + describe(values) +
                                " must be (m,) or (m, C) for keys " + describe(keys));
  const std::size_t C = columns(values);
  auto width = std::make_shared<const std::vector<T>>(widths(w.value(), dims.d));
  const auto a = problem(queries, keys, *width, dims, leave_one_out);
  const bool recording = needs_record<T>({queries, keys, values, w});
  const bool slope_w = recording && w.requires_grad(),
             slope_q = recording && queries.requires_grad();
  auto sorted = std::make_shared<const kernels::NwKeys<T>>(kernels::nw_sort_keys(
      a, values.value().data(), C, static_cast<const std::int64_t*>(nullptr)));
  auto pool = std::make_shared<const kernels::NwPool<T>>(
      kernels::nw_pool_forward(a, *sorted, slope_w, slope_q));
  const std::vector<std::size_t> shape =
      values.dim() == 1 ? std::vector<std::size_t>{dims.n} : std::vector<std::size_t>{dims.n, C};
  xt::xarray<T> f = xt::adapt(pool->f, shape);

  return record<T>(
      op, std::move(f), {queries, keys, values, w}, [=](const xt::xarray<T>& grad, const Node<T>&) {
        if ((w.requires_grad() && !slope_w) || (queries.requires_grad() && !slope_q))
          throw std::logic_error(
              op + ": requires_grad of an input changed between forward and backward");
        xt::xarray<T> gq = grad_for(queries), gk = grad_for(keys), gv = grad_for(values);
        std::vector<T> gw(dims.d, T(0));
        kernels::nw_pool_backward(problem(queries, keys, *width, dims, leave_one_out), *sorted,
                                  *pool, grad.data(), data_or_null(gq, queries),
                                  data_or_null(gk, keys), data_or_null(gv, values),
                                  w.requires_grad() ? gw.data() : nullptr);
        add_grad(op, queries, gq), add_grad(op, keys, gk), add_grad(op, values, gv);
        add_grad_w(op, w, gw);
      });
}

// L = -sum_i log p_i[y_i] = sum_i (logsumexp_j a_ij - logsumexp_{j: key_labels_j = y_i} a_ij),
// a_ij = -s_ij / 2 (scalar). With g_ij = grad (p_ij - pc_ij), pc_i the softmax over the keys of
// class y_i (0 elsewhere):
// queries: -w_l^2 sum_j g_ij (q_il - k_jl)
// keys: w_l^2 sum_i g_ij (q_il - k_jl)
// w: -w_l sum_ij g_ij (q_il - k_jl)^2, summed over l for w (1,)
template <class T>
Tensor<T> nw_attention_cross_entropy(const Tensor<T>& queries, const Tensor<T>& keys,
                                     const std::vector<std::int64_t>& key_labels,
                                     const std::vector<std::int64_t>& query_labels,
                                     const Tensor<T>& w, bool leave_one_out) {
  const std::string op = "nw_attention_cross_entropy";
  const Dims dims = check_args(op, queries, keys, w, leave_one_out);
  check_labels(op, key_labels, dims.m, query_labels, dims.n);
  auto width = std::make_shared<const std::vector<T>>(widths(w.value(), dims.d));
  auto labels = std::make_shared<const std::vector<std::int64_t>>(query_labels);
  const auto a = problem(queries, keys, *width, dims, leave_one_out);
  // The keys sorted twice: all together (the softmax over every key), and by class.
  using Keys = kernels::NwKeys<T>;
  auto sorted = std::make_shared<const std::pair<Keys, Keys>>(
      kernels::nw_sort_keys(a, static_cast<const T*>(nullptr), 0, nullptr),
      kernels::nw_sort_keys(a, static_cast<const T*>(nullptr), 0, key_labels.data()));
  xt::xarray<T> loss = xt::xarray<T>::from_shape({});
  loss() = kernels::nw_cross_entropy_forward(a, sorted->first, sorted->second, labels->data());

  return record<T>(op, std::move(loss), {queries, keys, w},
                   [=](const xt::xarray<T>& grad, const Node<T>&) {
                     xt::xarray<T> gq = grad_for(queries), gk = grad_for(keys);
                     std::vector<T> gw(dims.d, T(0));
                     kernels::nw_cross_entropy_backward(
                         problem(queries, keys, *width, dims, leave_one_out), sorted->first,
                         sorted->second, labels->data(), grad.data()[0], data_or_null(gq, queries),
                         data_or_null(gk, keys), w.requires_grad() ? gw.data() : nullptr);
                     add_grad(op, queries, gq), add_grad(op, keys, gk);
                     add_grad_w(op, w, gw);
                   });
}

template <class T>
xt::xarray<T> nw_attention_weights(const xt::xarray<T>& queries, const xt::xarray<T>& keys,
                                   const xt::xarray<T>& w, bool leave_one_out) {
  const Tensor<T> q(queries), k(keys), wt(w);
  const Dims dims = check_args("nw_attention_weights", q, k, wt, leave_one_out);
  const std::vector<T> width = widths(w, dims.d);
  const auto a = problem(q, k, width, dims, leave_one_out);
  xt::xarray<T> p = xt::xarray<T>::from_shape({dims.n, dims.m});
  kernels::nw_attention_matrix(
      a, kernels::nw_sort_keys(a, static_cast<const T*>(nullptr), 0, nullptr), p.data());
  return p;
}

template <class T>
xt::xarray<T> nw_attention_weights(const xt::xarray<T>& queries, const xt::xarray<T>& keys, T w,
                                   bool leave_one_out) {
  return nw_attention_weights(queries, keys, xt::xarray<T>({w}), leave_one_out);
}

#define TAPEGRAD_INSTANTIATE(T)                                                              \
  template Tensor<T> nw_attention_pool(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                       const Tensor<T>&, bool);                              \
  template Tensor<T> nw_attention_cross_entropy(                                             \
      const Tensor<T>&, const Tensor<T>&, const std::vector<std::int64_t>&,                  \
      const std::vector<std::int64_t>&, const Tensor<T>&, bool);                             \
  template xt::xarray<T> nw_attention_weights(const xt::xarray<T>&, const xt::xarray<T>&,    \
                                              const xt::xarray<T>&, bool);                   \
  template xt::xarray<T> nw_attention_weights(const xt::xarray<T>&, const xt::xarray<T>&, T, bool);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
