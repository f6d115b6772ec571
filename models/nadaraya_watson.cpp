#include "models/nadaraya_watson.h"

#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

#include "ops/attention.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/indexing.h"
#include "ops/linalg.h"
#include "ops/reduction.h"
#include "ops/repeat.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace tapegrad {

template <class T>
Tensor<T> average_pooling(const Tensor<T>& y_train, std::size_t n_query) {
  check_dim("average_pooling", y_train, 1, "y_train");
  if (y_train.size() == 0) throw std::invalid_argument("average_pooling: no training targets");
  return repeat_interleave(mean(y_train), n_query);
}

Kernel kernel_from_string(const std::string& name) {
  if (name == "gaussian") return Kernel::Gaussian;
  if (name == "boxcar") return Kernel::Boxcar;
  if (name == "constant") return Kernel::Constant;
  if (name == "epanechikov") return Kernel::Epanechikov;
  throw std::invalid_argument("unknown kernel '" + name +
                              "' (expected gaussian, boxcar, constant or epanechikov)");
}

std::string to_string(Kernel k) {
  switch (k) {
    case Kernel::Gaussian:
      return "gaussian";
    case Kernel::Boxcar:
      return "boxcar";
    case Kernel::Constant:
      return "constant";
    case Kernel::Epanechikov:
      return "epanechikov";
  }
  return "?";
}

double kernel_value(Kernel k, double u) {
  switch (k) {
    case Kernel::Gaussian:
      return std::exp(-u * u / 2);
    case Kernel::Boxcar:
      return std::abs(u) < 1.0 ? 1.0 : 0.0;
    case Kernel::Constant:
      return 1.0;
    case Kernel::Epanechikov:
      return std::max(0.0, 1.0 - std::abs(u));
  }
  return 0.0;
}

template <class T>
xt::xarray<T> compact_kernel_weights(const xt::xarray<T>& dist, Kernel kernel, T sigma,
                                     EmptyRow empty, std::size_t& empty_rows, const std::string& op,
                                     const std::function<std::string(std::size_t)>& query_name) {
  xt::xarray<T> k = dist / sigma;
  for (auto& v : k) v = static_cast<T>(kernel_value(kernel, v));
  const std::size_t nq = k.shape()[0], nt = k.shape()[1];
  for (std::size_t q = 0; q < nq; ++q) {
    T z = 0;
    for (std::size_t i = 0; i < nt; ++i) z += k(q, i);
    if (z > 0) {
      for (std::size_t i = 0; i < nt; ++i) k(q, i) /= z;
      continue;
    }
    if (empty == EmptyRow::Throw)
      throw std::domain_error(op + ": query " + query_name(q) +
                              " has no training input within the " + to_string(kernel) +
                              " kernel's support (sigma " + std::to_string(sigma) + ")");
    std::size_t nearest = 0;  // the first of equally near ones
    for (std::size_t i = 1; i < nt; ++i)
      if (dist(q, i) < dist(q, nearest)) nearest = i;
    k(q, nearest) = T(1);
    ++empty_rows;
  }
  return k;
}

template <class T>
NWResult<T> nadaraya_watson(const Tensor<T>& x_train, const Tensor<T>& y_train,
                            const Tensor<T>& x_query, Kernel kernel, T sigma, EmptyRow empty) {
  check_dim("nadaraya_watson", x_train, 1, "x_train");
  check_dim("nadaraya_watson", y_train, 1, "y_train");
  check_dim("nadaraya_watson", x_query, 1, "x_query");
  if (x_train.size() != y_train.size() || x_train.size() == 0)
    throw std::invalid_argument("nadaraya_watson: x_train " + shape_str(x_train.shape()) +
                                " and y_train " + shape_str(y_train.shape()) +
                                " must be non-empty and of equal length");
  if (!(sigma > 0) || !std::isfinite(sigma) || !std::isfinite(T(1) / sigma))
    throw std::invalid_argument(
        "nadaraya_watson: kernel width sigma must be positive, finite and "
        "have a finite inverse, got " +
        std::to_string(sigma));
  // d[q][i] = x_query[q] - x_train[i], by broadcasting (n_q, 1) - (1, n_t).
  const Tensor<T> d = unsqueeze(x_query, 1) - unsqueeze(x_train, 0);
  NWResult<T> r;
  if (kernel == Kernel::Gaussian) {
    // K(d) / sum_j K(d_j) with K(d) = exp(-(d / sigma)^2 / 2) is exactly a softmax of logits.
    r.weights = softmax(gaussian_logits(d, Tensor<T>(xt::xarray<T>({T(1) / sigma}))), 1);
  } else {
    const auto query_name = [&](std::size_t q) { return std::to_string(x_query.value()(q)); };
    r.weights =
        Tensor<T>(compact_kernel_weights(xt::xarray<T>(xt::abs(d.value())), kernel, sigma, empty,
                                         r.empty_rows, "nadaraya_watson", query_name));
  }
  r.y_hat = matmul(r.weights, y_train);
  return r;
}

template <class T>
std::pair<Tensor<T>, Tensor<T>> training_keys_values(const Tensor<T>& x_train,
                                                     const Tensor<T>& y_train, bool leave_one_out) {
  check_dim("training_keys_values", x_train, 1, "x_train");
  check_dim("training_keys_values", y_train, 1, "y_train");
  const std::size_t n = x_train.size();
  if (y_train.size() != n || n < 2)
    throw std::invalid_argument("training_keys_values: x_train " + shape_str(x_train.shape()) +
                                " and y_train " + shape_str(y_train.shape()) +
                                " must have the same length, at least 2");
  // X_tile (n, n): every row is x_train.
  const Tensor<T> x_tile = repeat(x_train, {n, 1});
  const Tensor<T> y_tile = repeat(y_train, {n, 1});
  if (!leave_one_out) return {x_tile, y_tile};
  const auto keep = off_diagonal_mask(n);  // 1 - eye(n), as bool
  const long m = static_cast<long>(n) - 1;
  return {reshape(masked_select(x_tile, keep), {static_cast<long>(n), m}),
          reshape(masked_select(y_tile, keep), {static_cast<long>(n), m})};
}

template <class T>
std::pair<Tensor<T>, Tensor<T>> query_keys_values(const Tensor<T>& x_train,
                                                  const Tensor<T>& y_train, std::size_t n_query) {
  return {repeat(x_train, {n_query, 1}), repeat(y_train, {n_query, 1})};
}

template <class T>
NWKernelRegression<T>::NWKernelRegression(T w_init)
    : w_(xt::xarray<T>({w_init}), /*requires_grad=*/true) {
  w_.set_name("w");
}

template <class T>
Tensor<T> NWKernelRegression<T>::forward(const Tensor<T>& queries, const Tensor<T>& keys,
                                         const Tensor<T>& values) {
  check_dim("NWKernelRegression", queries, 1, "queries");
  check_dim("NWKernelRegression", keys, 2, "keys");
  if (keys.shape()[0] != queries.size() || values.shape() != keys.shape())
    throw std::invalid_argument("NWKernelRegression: queries " + shape_str(queries.shape()) +
                                ", keys " + shape_str(keys.shape()) + " and values " +
                                shape_str(values.shape()) + " must be (n,), (n, m), (n, m)");
  const std::size_t m = keys.shape()[1];
  // (n, m): row i repeats query i, so it lines up with row i of keys.
  const Tensor<T> q = reshape(repeat_interleave(queries, m), {-1, static_cast<long>(m)});
  // -((q - k) w)^2 / 2 up to a per-row constant (gaussian_logits); w (1,) broadcasts over (n, m).
  attention_weights_ = softmax(gaussian_logits(q - keys, w_), 1);
  // (n, 1, m) bmm (n, m, 1) -> (n, 1, 1): the attention-weighted average of each row's values.
  return reshape(bmm(unsqueeze(attention_weights_, 1), unsqueeze(values, -1)), {-1});
}

template <class T>
Tensor<T> NWKernelRegression<T>::forward_fused(const Tensor<T>& queries, const Tensor<T>& x_train,
                                               const Tensor<T>& y_train, bool leave_one_out) {
  return nw_attention_pool(queries, x_train, y_train, w_, leave_one_out);
}

#define TAPEGRAD_INSTANTIATE(T)                                                                  \
  template Tensor<T> average_pooling(const Tensor<T>&, std::size_t);                             \
  template xt::xarray<T> compact_kernel_weights(const xt::xarray<T>&, Kernel, T, EmptyRow,       \
                                                std::size_t&, const std::string&,                \
                                                const std::function<std::string(std::size_t)>&); \
  template NWResult<T> nadaraya_watson(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,     \
                                       Kernel, T, EmptyRow);                                     \
  template std::pair<Tensor<T>, Tensor<T>> training_keys_values(const Tensor<T>&,                \
                                                                const Tensor<T>&, bool);         \
  template std::pair<Tensor<T>, Tensor<T>> query_keys_values(const Tensor<T>&, const Tensor<T>&, \
                                                             std::size_t);                       \
  template class NWKernelRegression<T>;
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
