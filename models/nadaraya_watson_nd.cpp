// Nadaraya-Watson on vectors and on classes (models/nadaraya_watson_nd.h), composed from ops: every
// differentiable function below is a chain of recorded ops, so its backward is theirs and
// gradcheck tests it through them.
#include "models/nadaraya_watson_nd.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/indexing.h"
#include "ops/linalg.h"
#include "ops/reduction.h"
#include "ops/repeat.h"
#include "ops/shape.h"

namespace tapegrad {

Widths widths_from_string(const std::string& name) {
  if (name == "shared") return Widths::Shared;
  if (name == "per-coordinate") return Widths::PerCoordinate;
  throw std::invalid_argument("unknown widths '" + name + "' (expected shared or per-coordinate)");
}

std::string to_string(Widths widths) {
  return widths == Widths::Shared ? "shared" : "per-coordinate";
}

namespace {

// "queries (2, 3), keys (4, 3) and w (2,)": the three inputs of weighted_sq_distances.
template <class T>
std::string three_shapes(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& w) {
  return "queries " + shape_str(queries.shape()) + ", keys " + shape_str(keys.shape()) + " and w " +
         shape_str(w.shape());
}

}  // namespace

template <class T>
Tensor<T> weighted_sq_distances(const Tensor<T>& queries, const Tensor<T>& keys,
                                const Tensor<T>& w) {
  const std::string op = "weighted_sq_distances";
  check_dim(op, queries, 2, "queries");
  check_defined(op, keys);
  check_dim(op, w, 1, "w");
  const std::size_t n = queries.shape()[0], d = queries.shape()[1];
  const bool per_query = keys.dim() == 3;  // (n, m, d): each query has its own keys
  if ((keys.dim() != 2 && !per_query) || keys.shape().back() != d ||
      (per_query && keys.shape()[0] != n))
    throw std::invalid_argument(op + ": " + three_shapes(queries, keys, w) +
                                ": expected queries (n, d) and keys (m, d) or (n, m, d)");
  if (d == 0 || (w.size() != 1 && w.size() != d))
    throw std::invalid_argument(op + ": " + three_shapes(queries, keys, w) +
                                ": expected d >= 1 and w of shape (1,) or (d,)");
  // diff_ijk = q_ik - keys_ijk, (n, m, d): queries (n, 1, d) against keys (n, m, d), or against
  // keys (1, m, d) broadcast over the n queries.
  const Tensor<T> diff = unsqueeze(queries, 1) - (per_query ? keys : unsqueeze(keys, 0));
  // (diff_ijk w_k)^2, w (1,) or (d,) broadcast along the last axis; summed over k -> (n, m).
  return sum(square(diff * w), {-1});
}

namespace {

// x*_i (n, 1, d): for each query, its nearest key by s_ij = sum_k ((q_ik - keys_ijk) w_k)^2 (the
// first of equally near ones). A plain search, not recorded: s is summed in long double, where
// no float or double input overflows it.
template <class T>
xt::xarray<T> nearest_keys(const xt::xarray<T>& queries, const xt::xarray<T>& keys,
                           const xt::xarray<T>& w) {
  const std::size_t n = queries.shape()[0], d = queries.shape()[1];
  const bool per_query = keys.dimension() == 3;
  const std::size_t m = per_query ? keys.shape()[1] : keys.shape()[0];
  const T* k = keys.data();
  xt::xarray<T> nearest = xt::zeros<T>({n, std::size_t(1), d});
  for (std::size_t i = 0; i < n; ++i) {
    const T* row = per_query ? k + i * m * d : k;  // this query's keys, (m, d)
    std::size_t best = 0;
    long double best_s = std::numeric_limits<long double>::infinity();
    for (std::size_t j = 0; j < m; ++j) {
      long double s = 0;
      for (std::size_t c = 0; c < d; ++c) {
        const long double t =
            (static_cast<long double>(queries(i, c)) - row[j * d + c]) * w(w.size() == 1 ? 0 : c);
        s += t * t;
      }
      if (s < best_s) best_s = s, best = j;
    }
    for (std::size_t c = 0; c < d && m > 0; ++c) nearest(i, 0, c) = row[best * d + c];
  }
  return nearest;
}

}  // namespace

template <class T>
Tensor<T> nearest_shifted_logits(const Tensor<T>& queries, const Tensor<T>& keys,
                                 const Tensor<T>& w) {
  const std::string op = "nearest_shifted_logits";
  check_dim(op, queries, 2, "queries");
  check_defined(op, keys);
  check_dim(op, w, 1, "w");
  const std::size_t d = queries.shape()[1];
  const bool per_query = keys.dim() == 3;
  if ((keys.dim() != 2 && !per_query) || keys.shape().back() != d ||
      (per_query && keys.shape()[0] != queries.shape()[0]) || d == 0 ||
      (w.size() != 1 && w.size() != d))
    throw std::invalid_argument(op + ": " + three_shapes(queries, keys, w) +
                                ": expected queries (n, d), keys (m, d) or (n, m, d) and w of "
                                "shape (1,) or (d,)");
  const Tensor<T> x_star(nearest_keys(queries.value(), keys.value(), w.value()));  // (n, 1, d)
  const Tensor<T> k = per_query ? keys : unsqueeze(keys, 0);  // (n, m, d) or (1, m, d)
  // a = x* - k and b = 2 q - k - x*, (n, m, d): (q - k)^2 - (q - x*)^2 = a b, no squares formed.
  const Tensor<T> a = x_star - k;
  const Tensor<T> b = unsqueeze(queries, 1) * T(2) - k - x_star;
  return sum(a * b * square(w), {-1}) * T(-0.5);  // (n, m)
}

template <class T>
Tensor<T> one_hot(const std::vector<std::int64_t>& labels, std::size_t num_classes) {
  xt::xarray<T> v = xt::zeros<T>({labels.size(), num_classes});
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || static_cast<std::uint64_t>(labels[i]) >= num_classes)
      throw std::invalid_argument("one_hot: label " + std::to_string(labels[i]) + " at index " +
                                  std::to_string(i) + " is outside 0.." +
                                  std::to_string(static_cast<long long>(num_classes) - 1));
    v(i, static_cast<std::size_t>(labels[i])) = T(1);
  }
  return Tensor<T>(std::move(v));
}

template <class T>
std::pair<Tensor<T>, Tensor<T>> training_keys_values_nd(const Tensor<T>& x_train,
                                                        const Tensor<T>& values,
                                                        bool leave_one_out) {
  const std::string op = "training_keys_values_nd";
  check_dim(op, x_train, 2, "x_train");
  check_dim(op, values, 2, "values");
  const std::size_t n = x_train.shape()[0];
  if (values.shape()[0] != n || n < (leave_one_out ? 2u : 1u))
    throw std::invalid_argument(op + ": x_train " + shape_str(x_train.shape()) + " and values " +
                                shape_str(values.shape()) + " must have the same number of rows, " +
                                (leave_one_out ? "at least 2 (leave-one-out)" : "at least 1"));
  // Tiles (n, n, d) and (n, n, C): row i of each is the whole training set.
  const Tensor<T> x_tile = repeat(x_train, {n, 1, 1});
  const Tensor<T> v_tile = repeat(values, {n, 1, 1});
  if (!leave_one_out) return {x_tile, v_tile};
  // The chapter's X_tile[~eye] on vectors: the (n, n, 1) mask drops pair i of row i, all its
  // coordinates at once; the survivors of row i stay in order, so a reshape restores the rows.
  const xt::xarray<bool> keep = xt::view(off_diagonal_mask(n), xt::all(), xt::all(), xt::newaxis());
  const long rows = static_cast<long>(n), m = rows - 1;
  const long d = static_cast<long>(x_train.shape()[1]), c = static_cast<long>(values.shape()[1]);
  return {reshape(masked_select(x_tile, keep), {rows, m, d}),
          reshape(masked_select(v_tile, keep), {rows, m, c})};
}

xt::xarray<std::int64_t> training_key_labels(const std::vector<std::int64_t>& labels,
                                             bool leave_one_out) {
  const std::size_t n = labels.size();
  if (n < (leave_one_out ? 2u : 1u))
    throw std::invalid_argument("training_key_labels: " + std::to_string(n) + " labels, need " +
                                (leave_one_out ? "at least 2 (leave-one-out)" : "at least 1"));
  const std::size_t m = leave_one_out ? n - 1 : n;
  xt::xarray<std::int64_t> k = xt::zeros<std::int64_t>({n, m});
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0, col = 0; j < n; ++j)
      if (!leave_one_out || j != i) k(i, col++) = labels[j];
  return k;
}

template <class T>
NWKernelRegressionND<T>::NWKernelRegressionND(std::size_t d, Widths widths, T w_init) {
  if (d == 0) throw std::invalid_argument("NWKernelRegressionND: d must be at least 1");
  w_ = full<T>({widths == Widths::Shared ? std::size_t(1) : d}, w_init, /*requires_grad=*/true);
  w_.set_name("w");
}

template <class T>
Tensor<T> NWKernelRegressionND<T>::forward(const Tensor<T>& queries, const Tensor<T>& keys,
                                           const Tensor<T>& values) {
  const std::string op = "NWKernelRegressionND::forward";
  check_dim(op, queries, 2, "queries");
  check_dim(op, keys, 3, "keys");
  check_dim(op, values, 3, "values");
  const Shape ks = keys.shape(), vs = values.shape();
  if (ks[0] != queries.shape()[0] || vs[0] != ks[0] || vs[1] != ks[1])
    throw std::invalid_argument(op + ": queries " + shape_str(queries.shape()) + ", keys " +
                                shape_str(ks) + " and values " + shape_str(vs) +
                                " must be (n, d), (n, m, d) and (n, m, C)");
  // logits_ij = -s_ij / 2, (n, m); softmax subtracts each row's maximum (its nearest key).
  logits_ = nearest_shifted_logits(queries, keys, w_);
  attention_weights_ = softmax(logits_, 1);
  // (n, 1, m) bmm (n, m, C) -> (n, 1, C): row i is the attention-weighted average of its values.
  const long n = static_cast<long>(vs[0]), c = static_cast<long>(vs[2]);
  return reshape(bmm(unsqueeze(attention_weights_, 1), values), {n, c});
}

template <class T>
Tensor<T> NWKernelRegressionND<T>::predict(const Tensor<T>& queries, const Tensor<T>& x_train,
                                           const Tensor<T>& values) {
  const std::string op = "NWKernelRegressionND::predict";
  check_dim(op, queries, 2, "queries");
  check_dim(op, x_train, 2, "x_train");
  check_dim(op, values, 2, "values");
  if (values.shape()[0] != x_train.shape()[0])
    throw std::invalid_argument(op + ": x_train " + shape_str(x_train.shape()) + " and values " +
                                shape_str(values.shape()) + " must be (m, d) and (m, C)");
  // The same weights with keys x_train (m, d) shared by every query: (n, m) matmul (m, C).
  logits_ = nearest_shifted_logits(queries, x_train, w_);
  attention_weights_ = softmax(logits_, 1);
  return matmul(attention_weights_, values);
}

template <class T>
Tensor<T> nw_cross_entropy(const Tensor<T>& logits, const xt::xarray<std::int64_t>& key_labels,
                           const std::vector<std::int64_t>& labels) {
  const std::string op = "nw_cross_entropy";
  check_dim(op, logits, 2, "logits");
  const std::size_t n = logits.shape()[0], m = logits.shape()[1];
  if (to_shape(key_labels.shape()) != logits.shape() || labels.size() != n)
    throw std::invalid_argument(op + ": logits " + shape_str(logits.shape()) + ", key_labels " +
                                shape_str(to_shape(key_labels.shape())) + " and labels (" +
                                std::to_string(labels.size()) + ",) must be (n, m), (n, m), (n,)");
  // other_ij: key j of row i has another class than the row's own label.
  xt::xarray<bool> other = xt::zeros<bool>({n, m});
  for (std::size_t i = 0; i < n; ++i) {
    bool has_own = false;
    for (std::size_t j = 0; j < m; ++j) {
      other(i, j) = key_labels(i, j) != labels[i];
      has_own = has_own || !other(i, j);
    }
    if (!has_own)
      throw std::invalid_argument(op + ": row " + std::to_string(i) + " (label " +
                                  std::to_string(labels[i]) +
                                  ") has no key of its own class: p = 0 and the loss is infinite");
  }
  // log p_i[y_i] = logsumexp over the keys of class y_i (the others masked to -inf, which add
  // exp(-inf) = 0 and get gradient 0) minus logsumexp over every key. Never log(0): a hugely
  // negative own-class logit (-1e4 against 0) gives about -1e4, not log(exp(-1e4)) = -inf.
  const T minus_inf = -std::numeric_limits<T>::infinity();
  const Tensor<T> log_own = logsumexp(masked_fill(logits, other, minus_inf), 1);  // (n,)
  const Tensor<T> log_all = logsumexp(logits, 1);                                 // (n,)
  return sum(log_all - log_own);  // -sum_i log p_i[y_i]
}

template <class T>
Tensor<T> squared_loss(const Tensor<T>& p, const Tensor<T>& target) {
  check_defined("squared_loss", p);
  check_defined("squared_loss", target);
  if (p.shape() != target.shape())
    throw std::invalid_argument("squared_loss: p " + shape_str(p.shape()) + " and target " +
                                shape_str(target.shape()) + " must have the same shape");
  return sum(square(p - target)) * T(0.5);
}

namespace {

// "(0.5, -1.25)": row q of x_query, for messages.
template <class T>
std::string query_str(const xt::xarray<T>& x_query, std::size_t q) {
  std::ostringstream os;
  os << "(";
  for (std::size_t k = 0; k < x_query.shape()[1]; ++k) os << (k ? ", " : "") << x_query(q, k);
  os << ")";
  return os.str();
}

}  // namespace

template <class T>
NWResult<T> nadaraya_watson_nd(const Tensor<T>& x_train, const Tensor<T>& values,
                               const Tensor<T>& x_query, Kernel kernel, T sigma, EmptyRow empty) {
  const std::string op = "nadaraya_watson_nd";
  check_dim(op, x_train, 2, "x_train");
  check_dim(op, values, 2, "values");
  check_dim(op, x_query, 2, "x_query");
  if (x_train.shape()[0] == 0 || values.shape()[0] != x_train.shape()[0] ||
      x_query.shape()[1] != x_train.shape()[1])
    throw std::invalid_argument(op + ": x_train " + shape_str(x_train.shape()) + ", values " +
                                shape_str(values.shape()) + " and x_query " +
                                shape_str(x_query.shape()) +
                                " must be (m, d), (m, C) and (n, d) with m >= 1");
  if (!(sigma > 0) || !std::isfinite(sigma) || !std::isfinite(T(1) / sigma))
    throw std::invalid_argument(op +
                                ": kernel width sigma must be positive, finite and have a finite "
                                "inverse, got " +
                                std::to_string(sigma));
  NWResult<T> r;
  if (kernel == Kernel::Gaussian) {
    // K = exp(-||q - x||^2 / (2 sigma^2)) normalised per row is a softmax of -s / 2 with the
    // shared width w = 1 / sigma.
    const Tensor<T> w(xt::xarray<T>({T(1) / sigma}));
    r.weights = softmax(nearest_shifted_logits(x_query, x_train, w), 1);
  } else {
    // u = ||q - x|| / sigma: the Euclidean distance first (for d = 1 exactly |q - x|), as the
    // 1-D model divides the difference by sigma.
    NoGradGuard constant;  // the compact kernels' weights are not differentiated
    const Tensor<T> one(xt::xarray<T>({T(1)}));
    const xt::xarray<T> dist = xt::sqrt(weighted_sq_distances(x_query, x_train, one).value());
    const auto query_name = [&](std::size_t q) { return query_str(x_query.value(), q); };
    r.weights =
        Tensor<T>(compact_kernel_weights(dist, kernel, sigma, empty, r.empty_rows, op, query_name));
  }
  r.y_hat = matmul(r.weights, values);
  return r;
}

template <class T>
std::vector<std::int64_t> argmax_labels(const xt::xarray<T>& p) {
  if (p.dimension() != 2 || p.shape()[1] == 0)
    throw std::invalid_argument("argmax_labels: expected p of shape (n, C) with C >= 1, got " +
                                shape_str(to_shape(p.shape())));
  std::vector<std::int64_t> labels(p.shape()[0]);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    std::size_t best = 0;  // strictly greater replaces: a tie keeps the smaller label
    for (std::size_t c = 1; c < p.shape()[1]; ++c)
      if (p(i, c) > p(i, best)) best = c;
    labels[i] = static_cast<std::int64_t>(best);
  }
  return labels;
}

#define TAPEGRAD_INSTANTIATE(T)                                                                    \
  template Tensor<T> weighted_sq_distances(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&);  \
  template Tensor<T> nearest_shifted_logits(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&); \
  template Tensor<T> one_hot<T>(const std::vector<std::int64_t>&, std::size_t);                    \
  template std::pair<Tensor<T>, Tensor<T>> training_keys_values_nd(const Tensor<T>&,               \
                                                                   const Tensor<T>&, bool);        \
  template class NWKernelRegressionND<T>;                                                          \
  template Tensor<T> nw_cross_entropy(const Tensor<T>&, const xt::xarray<std::int64_t>&,           \
                                      const std::vector<std::int64_t>&);                           \
  template Tensor<T> squared_loss(const Tensor<T>&, const Tensor<T>&);                             \
  template NWResult<T> nadaraya_watson_nd(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,    \
                                          Kernel, T, EmptyRow);                                    \
  template std::vector<std::int64_t> argmax_labels(const xt::xarray<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
