#include "ops/attention.h"

#include <memory>
#include <numeric>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmanipulation.hpp>

#include "ops/common.h"
#include "ops/kernels/attention.h"

namespace tapegrad {

namespace {

template <class T>
void check_pool_args(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& values,
                     const Tensor<T>& w, bool leave_one_out) {
  const std::string op = "nw_attention_pool";
  check_dim(op, queries, 1, "queries");
  check_dim(op, keys, 1, "keys");
  check_dim(op, values, 1, "values");
  check_defined(op, w);
  if (values.size() != keys.size())
    throw std::invalid_argument(op + ": keys " + shape_str(keys.shape()) + " and values " +
                                shape_str(values.shape()) + " must have the same length");
  if (w.size() != 1)
    throw std::invalid_argument(op + ": w must have one element, got shape " +
                                shape_str(w.shape()));
  if (leave_one_out && queries.size() != keys.size())
    throw std::invalid_argument(
        op + ": leave_one_out needs the queries to be the keys, got queries " +
        shape_str(queries.shape()) + " and keys " + shape_str(keys.shape()));
  if (keys.size() < (leave_one_out ? 2u : 1u))
    throw std::invalid_argument(op + ": too few keys " + shape_str(keys.shape()) +
                                (leave_one_out ? " for leave-one-out (need 2)" : " (need 1)"));
}

}  // namespace

// gaussian_logits: -(w^2 / 2) (d^2 - nearest^2), nearest_i = min_j |d_ij|
// d: -w^2 d * grad, plus at j = argmin_j |d_ij|: w^2 d_ij * sum_k grad_ik (through nearest_i)
// w: sum(grad * -w (d^2 - nearest^2))
// (Under a softmax the term through nearest_i vanishes, sum_k grad_ik = 0, but the op alone is
// differentiated exactly, so gradcheck holds for it by itself.)
template <class T>
Tensor<T> gaussian_logits(const Tensor<T>& d, const Tensor<T>& w) {
  check_dim("gaussian_logits", d, 2, "d");
  check_defined("gaussian_logits", w);
  if (w.size() != 1)
    throw std::invalid_argument("gaussian_logits: w must have one element, got shape " +
                                shape_str(w.shape()));
  const std::size_t n = d.shape()[0], m = d.shape()[1];
  const T width = w.value().data()[0];
  xt::xarray<T> logits = xt::xarray<T>::from_shape({n, m});
  auto nearest = std::make_shared<std::vector<T>>(n);
  kernels::gaussian_logits(d.value().data(), n, m, width, logits.data(), nearest->data());
  return record<T>(
      "gaussian_logits", std::move(logits), {d, w}, [=](const xt::xarray<T>& grad, const Node<T>&) {
        xt::xarray<T> grad_d = xt::xarray<T>::from_shape({n, m});
        const T grad_w = kernels::gaussian_logits_backward(d.value().data(), nearest->data(),
                                                           grad.data(), n, m, width, grad_d.data());
        if (d.requires_grad()) accumulate_grad(d, std::move(grad_d), "gaussian_logits");
        if (w.requires_grad())
          accumulate_grad(w, xt::xarray<T>(xt::full_like(w.value(), grad_w)), "gaussian_logits");
      });
}

// f_i = sum_j p_ij v_j,  p_ij = softmax_j(s_ij),  s_ij = -(w^2 / 2) excess_ij,
// excess_ij = d_ij^2 - nearest_i^2,  d_ij = q_i - k_j (see ops/kernels/attention.h).
// With the row sums slope_w_i = sum_j p_ij (v_j - f_i) excess_ij and
// slope_q_i = sum_j p_ij (v_j - f_i) d_ij (df_i/ds_ij = p_ij (v_j - f_i)):
//   w:       -w sum_i grad_i slope_w_i
//   queries: -w^2 grad_i slope_q_i
//   keys:    sum_i grad_i p_ij (v_j - f_i) w^2 d_ij
//   values:  sum_i grad_i p_ij
template <class T>
Tensor<T> nw_attention_pool(const Tensor<T>& queries, const Tensor<T>& keys,
                            const Tensor<T>& values, const Tensor<T>& w, bool leave_one_out) {
  check_pool_args(queries, keys, values, w, leave_one_out);
  const std::size_t n = queries.size(), m = keys.size();
  const T width = w.value().data()[0];
  const bool recording = needs_record<T>({queries, keys, values, w});
  auto sorted = std::make_shared<kernels::SortedKeys<T>>(
      kernels::sort_keys(keys.value().data(), values.value().data(), m));
  auto rows = std::make_shared<kernels::PoolRows<T>>(kernels::gaussian_pool_rows(
      queries.value().data(), n, *sorted, width, leave_one_out, recording && w.requires_grad(),
      recording && queries.requires_grad()));
  xt::xarray<T> f = xt::adapt(rows->f, std::vector<std::size_t>{n});

  return record<T>(
      "nw_attention_pool", std::move(f), {queries, keys, values, w},
      [=](const xt::xarray<T>& grad, const Node<T>&) {
        if ((w.requires_grad() && !rows->has_slope_w) ||
            (queries.requires_grad() && !rows->has_slope_q))
          throw std::logic_error(
              "nw_attention_pool: requires_grad of an input changed between forward and backward");
        if (w.requires_grad()) {
          const T sum =
              std::inner_product(rows->slope_w.begin(), rows->slope_w.end(), grad.data(), T(0));
          accumulate_grad(w, xt::xarray<T>(xt::full_like(w.value(), -width * sum)),
                          "nw_attention_pool");
        }
        if (queries.requires_grad())
          accumulate_grad(queries, xt::xarray<T>(-width * width * grad * xt::adapt(rows->slope_q)),
                          "nw_attention_pool");
        if (keys.requires_grad() || values.requires_grad()) {
          xt::xarray<T> grad_keys = xt::zeros<T>({m}), grad_values = xt::zeros<T>({m});
          kernels::gaussian_pool_key_grads(queries.value().data(), n, *sorted, width, leave_one_out,
                                           grad.data(), *rows, grad_keys.data(),
                                           grad_values.data());
          if (keys.requires_grad())
            accumulate_grad(keys, std::move(grad_keys), "nw_attention_pool");
          if (values.requires_grad())
            accumulate_grad(values, std::move(grad_values), "nw_attention_pool");
        }
      });
}

template <class T>
xt::xarray<T> nw_attention_weights(const xt::xarray<T>& queries, const xt::xarray<T>& keys, T w,
                                   bool leave_one_out) {
  const std::size_t n = queries.size(), m = keys.size();
  if (leave_one_out && n != m)
    throw std::invalid_argument(
        "nw_attention_weights: leave_one_out needs as many queries as keys, got " +
        std::to_string(n) + " queries and " + std::to_string(m) + " keys");
  // The values do not matter for the weights: sort the keys against themselves.
  const xt::xarray<T> flat_keys = xt::flatten(keys);
  const auto sorted = kernels::sort_keys(flat_keys.data(), flat_keys.data(), m);
  xt::xarray<T> p = xt::xarray<T>::from_shape({n, m});
  const xt::xarray<T> flat_queries = xt::flatten(queries);
  kernels::gaussian_attention_matrix(flat_queries.data(), n, sorted, w, leave_one_out, p.data());
  return p;
}

template Tensor<float> gaussian_logits(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> gaussian_logits(const Tensor<double>&, const Tensor<double>&);
template Tensor<float> nw_attention_pool(const Tensor<float>&, const Tensor<float>&,
                                         const Tensor<float>&, const Tensor<float>&, bool);
template Tensor<double> nw_attention_pool(const Tensor<double>&, const Tensor<double>&,
                                          const Tensor<double>&, const Tensor<double>&, bool);
template xt::xarray<float> nw_attention_weights(const xt::xarray<float>&, const xt::xarray<float>&,
                                                float, bool);
template xt::xarray<double> nw_attention_weights(const xt::xarray<double>&,
                                                 const xt::xarray<double>&, double, bool);

}  // namespace tapegrad
