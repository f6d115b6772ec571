// models/nadaraya_watson.h, composed from ops: every differentiable function below is a chain of
// recorded ops, so its backward is theirs, and gradcheck tests it through them.
#include "models/nadaraya_watson.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <xtensor/xview.hpp>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/fused/nw_attention.h"
#include "ops/indexing.h"
#include "ops/kernels/nearest.h"
#include "ops/linalg.h"
#include "ops/reduction.h"
#include "ops/repeat.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace tapegrad {

namespace {

const char* const kKernelNames[] = {"gaussian", "boxcar", "constant", "epanechikov"};

// The book's 1-D inputs as d = 1: (m,) -> (m, 1); (m, d) unchanged.
template <class T>
Tensor<T> as_matrix(const Tensor<T>& t) {
  return t.dim() == 1 ? unsqueeze(t, 1) : t;
}

using LD = long double;

// The largest |v_j| of count numbers, or inf when one is not finite.
template <class T>
LD max_abs(const T* v, std::size_t count) {
  T r = 0;
  int finite = 1;
  for (std::size_t j = 0; j < count; ++j) {
    const T a = std::abs(v[j]);
    finite &= a <= std::numeric_limits<T>::max();
    r = std::max(r, a);
  }
  return finite ? LD(r) : LD(INFINITY);
}

// Row i of nw_logits' constants: x*_i, query i's nearest key (kernels::nearest_keys), into nearest
// (n, 1, d); S_i into scale (n, 1): 1, or the power of two w is divided by so that no product of
// the logits' ops overflows: |h (w / S)^2| <= M and |e h (w / S)^2| <= M / d, with e = x* - k and
// h = (a + b) / 2 as in nw_logits, M a quarter of T's largest value. keys (n, m, d), or (1, m, d)
// shared. A row whose bound from its largest magnitudes already gives S = 1 skips the key loop.
template <class T>
void row_constants(const xt::xarray<T>& queries, const xt::xarray<T>& keys, const xt::xarray<T>& w,
                   xt::xarray<T>& nearest, xt::xarray<T>& scale) {
  const std::size_t n = queries.shape()[0], m = keys.shape()[1], d = queries.shape()[1];
  const bool per_row = keys.shape()[0] != 1;
  const LD big = std::numeric_limits<T>::max() / 4, w_max = max_abs(w.data(), w.size());
  nearest = xt::zeros<T>({n, std::size_t(1), d});
  scale = xt::ones<T>({n, std::size_t(1)});
  if (m == 0) return;
  const std::vector<std::size_t> best =
      kernels::nearest_keys(queries.data(), n, keys.data(), m, per_row, w.data(), w.size(), d);
  const LD k_max = max_abs(keys.data(), keys.size());  // over every row's keys: a bound for each
  for (std::size_t i = 0; i < n; ++i) {
    const T *row = keys.data() + (per_row ? i * m * d : 0), *q = queries.data() + i * d;
    const T* x = std::copy(row + best[i] * d, row + (best[i] + 1) * d, nearest.data() + i * d) - d;
    // No difference overflows T (q_max + k_max <= big), so |a|, |b| <= 2 (q_max + k_max) and
    // |e| <= 4 k_max after rounding: a bound of every h and e h below big means S = 1.
    const LD span = max_abs(q, d) + k_max, h_bound = 2 * span * w_max * w_max;
    if (span <= big && h_bound * std::max(LD(1), 4 * k_max * LD(d)) <= big) continue;
    LD need = 1;
    for (std::size_t j = 0; j < m * d; ++j) {
      const std::size_t c = j % d;
      const T a = q[c] - row[j], b = q[c] - x[c];
      const LD wc = w(w.size() == 1 ? 0 : c), e = std::abs(LD(T(x[c] - row[j])));
      const LD h = std::abs(LD(a) / 2 + LD(b) / 2) * wc * wc;
      need = std::max(need, std::sqrt(h * std::max(LD(1), e * LD(d)) / big));
    }
    if (need > 1) scale(i, 0) = T(std::exp2(std::ceil(std::log2(std::min(need, big)))));
  }
}

// The compact and constant kernels' weights K(||q_i - x_j|| / sigma) normalised per row, for
// queries (n, d) and inputs (m, d); an empty row falls back to its nearest input, or throws.
template <class T>
xt::xarray<T> compact_kernel_weights(const xt::xarray<T>& queries, const xt::xarray<T>& x,
                                     Kernel kernel, T sigma, EmptyRow empty,
                                     std::size_t& empty_rows) {
  const std::size_t n = queries.shape()[0], m = x.shape()[0], d = x.shape()[1];
  const T one = 1;
  xt::xarray<T> k = xt::zeros<T>({n, m});
  for (std::size_t i = 0; i < n; ++i) {
    T z = 0;
    for (std::size_t j = 0; j < m; ++j) {
      LD s = 0;  // ||q_i - x_j||^2, in long double: no overflow, exactly |q - x| for d = 1
      for (std::size_t c = 0; c < d; ++c) s += std::pow(LD(queries(i, c)) - x(j, c), 2);
      z += k(i, j) = T(kernel_value(kernel, double(T(std::sqrt(s)) / sigma)));
    }
    if (z > 0) {
      xt::view(k, i, xt::all()) /= z;
      continue;
    }
    if (empty == EmptyRow::Throw) {
      std::ostringstream query;  // "(0.5, -1.25)"
      for (std::size_t c = 0; c < d; ++c) query << (c ? ", " : "(") << queries(i, c);
      throw std::domain_error("nadaraya_watson: query " + query.str() +
                              ") has no training input within the " + to_string(kernel) +
                              " kernel's support (sigma " + std::to_string(sigma) + ")");
    }
    k(i, kernels::nearest_key_scan(&queries(i, 0), x.data(), m, &one, 1, d)) = T(1);
    ++empty_rows;
  }
  return k;
}

// Labels name classes 0..classes-1; throws naming the op, the label and its index otherwise.
void check_labels(const std::string& op, const std::vector<std::int64_t>& labels,
                  std::size_t classes) {
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || static_cast<std::uint64_t>(labels[i]) >= classes)
      throw std::invalid_argument(op + ": label " + std::to_string(labels[i]) + " at index " +
                                  std::to_string(i) + " is outside 0.." +
                                  std::to_string(classes - 1));
}

// Rows of t (n,) or (n, c) for every query: n_rows copies of t, (n_rows, n) or (n_rows, n, c).
template <class T>
Tensor<T> tile_rows(const Tensor<T>& t, std::size_t n_rows) {
  return repeat(t, t.dim() == 1 ? Shape{n_rows, 1} : Shape{n_rows, 1, 1});
}

// The chapter's X_tile[~eye].reshape(n, n - 1), for t (n,) or (n, c): row i holds every row of t
// but row i. The mask drops entry i of row i with all its coordinates; the survivors keep their
// order, so a reshape restores the rows.
template <class T>
Tensor<T> leave_one_out_rows(const Tensor<T>& t) {
  const std::size_t n = t.shape()[0];
  xt::xarray<bool> keep = off_diagonal_mask(n);
  std::vector<long> shape = {static_cast<long>(n), static_cast<long>(n) - 1};
  if (t.dim() == 2) {
    keep = xt::view(off_diagonal_mask(n), xt::all(), xt::all(), xt::newaxis());
    shape.push_back(static_cast<long>(t.shape()[1]));
  }
  return reshape(masked_select(tile_rows(t, n), keep), shape);
}

}  // namespace

template <class T>
Tensor<T> average_pooling(const Tensor<T>& values, std::size_t n_query) {
  check_dim("average_pooling", values, 1, "values");
  if (values.size() == 0) throw std::invalid_argument("average_pooling: no training values");
  return repeat_interleave(mean(values), n_query);
}

Kernel kernel_from_string(const std::string& name) {
  for (int k = 0; k < 4; ++k)
    if (name == kKernelNames[k]) return static_cast<Kernel>(k);
  throw std::invalid_argument("unknown kernel '" + name +
                              "' (expected gaussian, boxcar, constant or epanechikov)");
}

std::string to_string(Kernel k) {
  return kKernelNames[static_cast<int>(k)];
}

double kernel_value(Kernel k, double u) {
  if (k == Kernel::Gaussian) return std::exp(-u * u / 2);
  if (k == Kernel::Boxcar) return std::abs(u) < 1.0 ? 1.0 : 0.0;
  return k == Kernel::Constant ? 1.0 : std::max(0.0, 1.0 - std::abs(u));
}

Widths widths_from_string(const std::string& name) {
  if (name == "shared") return Widths::Shared;
  if (name == "per-coordinate") return Widths::PerCoordinate;
  throw std::invalid_argument("unknown widths '" + name + "' (expected shared or per-coordinate)");
}

std::string to_string(Widths widths) {
  return widths == Widths::Shared ? "shared" : "per-coordinate";
}

template <class T>
void check_logits_args(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& w) {
  check_dim("nw_logits", queries, 2, "queries");
  check_defined("nw_logits", keys);
  check_dim("nw_logits", w, 1, "w");
  const std::size_t d = queries.shape()[1];
  if ((keys.dim() != 2 && keys.dim() != 3) || keys.shape().back() != d || d == 0 ||
      (keys.dim() == 3 && keys.shape()[0] != queries.shape()[0]) ||
      (w.size() != 1 && w.size() != d))
    throw std::invalid_argument("nw_logits: queries " + shape_str(queries.shape()) + ", keys " +
                                shape_str(keys.shape()) + " and w " + shape_str(w.shape()) +
                                ": expected (n, d), (m, d) or (n, m, d), and (1,) or (d,)");
}

template <class T>
Tensor<T> nw_logits(const Tensor<T>& queries, const Tensor<T>& keys, const Tensor<T>& w) {
  check_logits_args(queries, keys, w);
  const Tensor<T> k = keys.dim() == 3 ? keys : unsqueeze(keys, 0);  // (n, m, d) or (1, m, d)
  const Tensor<T> q = unsqueeze(queries, 1);                        // (n, 1, d)
  xt::xarray<T> nearest, scale;
  row_constants(queries.value(), k.value(), w.value(), nearest, scale);
  const Tensor<T> x_star(nearest);  // (n, 1, d)
  // The book's logit of key k is -((q - k) w)^2 / 2; less the nearest key's, -((q - x*) w)^2 / 2
  // (one number per row), it is, with a = q - k and b = q - x*, summed over the coordinates:
  //   -((a w)^2 - (b w)^2) / 2 = -(a - b) ((a + b) / 2) w w,   a - b = x* - k
  // No square (it overflows float32 past |a w| = 1.8e19): the products are the result's size.
  // x* - k comes from the keys (a query too far for q - k to tell keys apart still weighs them
  // apart), and multiplies last: for the nearest key it is 0, and so are its logit and its share of
  // every gradient, exactly. a / 2 + b / 2 is finite, and 0 for a query between two keys: ties stay
  // exact. Where a product would still overflow (spans past sqrt of T's largest value, huge w), w
  // is divided by the row's power of two S and the sum multiplied by S twice: exact, and only
  // logits past the range become -inf.
  const Tensor<T> half = (q - k) * T(0.5) + (q - x_star) * T(0.5);  // (a + b) / 2, (n, m, d)
  const bool scaled = xt::any(xt::not_equal(scale, T(1)));
  const Tensor<T> ws =
      scaled ? w / Tensor<T>(xt::xarray<T>(xt::view(scale, xt::all(), xt::all(), xt::newaxis())))
             : w;
  const Tensor<T> half_sq = sum((x_star - k) * (half * ws * ws), {-1});  // (n, m)
  return scaled ? -(half_sq * Tensor<T>(scale) * Tensor<T>(scale)) : -half_sq;
}

template <class T>
NWResult<T> nadaraya_watson(const Tensor<T>& x_train, const Tensor<T>& values,
                            const Tensor<T>& x_query, Kernel kernel, T sigma, EmptyRow empty) {
  for (const Tensor<T>* t : {&x_train, &values, &x_query}) check_defined("nadaraya_watson", *t);
  const std::size_t m = x_train.dim() ? x_train.shape()[0] : 0;
  if (x_train.dim() < 1 || x_train.dim() > 2 || x_query.dim() != x_train.dim() || m == 0 ||
      values.dim() < 1 || values.dim() > 2 || values.shape()[0] != m ||
      (x_train.dim() == 2 && (x_query.shape()[1] != x_train.shape()[1] || x_train.shape()[1] == 0)))
    throw std::invalid_argument(
        "nadaraya_watson: x_train " + shape_str(x_train.shape()) + ", values " +
        shape_str(values.shape()) + " and x_query " + shape_str(x_query.shape()) +
        " must be (m,) or (m, d), (m,) or (m, C), (n,) or (n, d); m, d >= 1");
  if (!(sigma > 0) || !std::isfinite(sigma) || !std::isfinite(T(1) / sigma))
    throw std::invalid_argument(
        "nadaraya_watson: sigma must be positive with a finite inverse, got " +
        std::to_string(sigma));
  const Tensor<T> q = as_matrix(x_query), x = as_matrix(x_train);  // (n, d), (m, d)
  NWResult<T> r;
  if (kernel == Kernel::Gaussian) {
    // exp(-||(q - x) / sigma||^2 / 2) normalised per row: the softmax of the logits at w = 1 / sigma.
    r.weights = softmax(nw_logits(q, x, Tensor<T>(xt::xarray<T>({T(1) / sigma}))), 1);
  } else {
    r.weights =
        Tensor<T>(compact_kernel_weights(q.value(), x.value(), kernel, sigma, empty, r.empty_rows));
  }
  r.y_hat = matmul(r.weights, values);
  return r;
}

template <class T>
std::pair<Tensor<T>, Tensor<T>> training_keys_values(const Tensor<T>& x_train,
                                                     const Tensor<T>& values, bool leave_one_out) {
  for (const Tensor<T>* t : {&x_train, &values}) check_defined("training_keys_values", *t);
  const std::size_t n = x_train.dim() ? x_train.shape()[0] : 0;
  if (x_train.dim() < 1 || x_train.dim() > 2 || values.dim() < 1 || values.dim() > 2 ||
      values.shape()[0] != n || n < (leave_one_out ? 2u : 1u))
    throw std::invalid_argument("training_keys_values: x_train " + shape_str(x_train.shape()) +
                                " and values " + shape_str(values.shape()) +
                                " must be (n,) or (n, d) and (n,) or (n, C) with n " +
                                (leave_one_out ? "at least 2 (leave-one-out)" : "at least 1"));
  if (!leave_one_out) return {tile_rows(x_train, n), tile_rows(values, n)};
  return {leave_one_out_rows(x_train), leave_one_out_rows(values)};
}

template <class T>
std::pair<Tensor<T>, Tensor<T>> query_keys_values(const Tensor<T>& x_train, const Tensor<T>& values,
                                                  std::size_t n_query) {
  return {tile_rows(x_train, n_query), tile_rows(values, n_query)};
}

template <class T>
Tensor<T> one_hot(const std::vector<std::int64_t>& labels, std::size_t num_classes) {
  if (num_classes == 0 || num_classes > kMaxClasses)
    throw std::invalid_argument("one_hot: num_classes " + std::to_string(num_classes) +
                                " is outside 1.." + std::to_string(kMaxClasses) + " (kMaxClasses)");
  check_labels("one_hot", labels, num_classes);
  checked_numel("one_hot", {labels.size(), num_classes}, sizeof(T));
  xt::xarray<T> v = xt::zeros<T>({labels.size(), num_classes});
  for (std::size_t i = 0; i < labels.size(); ++i) v(i, static_cast<std::size_t>(labels[i])) = T(1);
  return Tensor<T>(std::move(v));
}

xt::xarray<std::int64_t> training_key_labels(const std::vector<std::int64_t>& labels,
                                             bool leave_one_out) {
  const std::size_t n = labels.size();
  if (n < (leave_one_out ? 2u : 1u))
    throw std::invalid_argument("training_key_labels: " + std::to_string(n) + " labels, need " +
                                (leave_one_out ? "at least 2 (leave-one-out)" : "at least 1"));
  check_labels("training_key_labels", labels, kMaxClasses);
  xt::xarray<std::int64_t> k = xt::zeros<std::int64_t>({n, leave_one_out ? n - 1 : n});
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0, col = 0; j < n; ++j)
      if (!leave_one_out || j != i) k(i, col++) = labels[j];
  return k;
}

template <class T>
Tensor<T> squared_loss(const Tensor<T>& p, const Tensor<T>& target) {
  for (const Tensor<T>* t : {&p, &target}) check_defined("squared_loss", *t);
  if (p.shape() != target.shape())
    throw std::invalid_argument("squared_loss: p " + shape_str(p.shape()) + " and target " +
                                shape_str(target.shape()) + " must have the same shape");
  return sum(square(p - target)) * T(0.5);
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
  check_labels(op, labels, kMaxClasses);
  xt::xarray<bool> other = xt::zeros<bool>({n, m});  // key j of row i has another class
  for (std::size_t i = 0; i < n; ++i) {
    bool has_own = false;
    for (std::size_t j = 0; j < m; ++j) has_own |= !(other(i, j) = key_labels(i, j) != labels[i]);
    if (!has_own)
      throw std::invalid_argument(op + ": row " + std::to_string(i) + " (label " +
                                  std::to_string(labels[i]) +
                                  ") has no key of its own class: p = 0 and the loss is infinite");
  }
  // log p_i[y_i]: logsumexp over the keys of class y_i (the others set to -inf add exp(-inf) = 0
  // and get gradient 0) less logsumexp over every key. Never log(0): an own-class logit of -1e4
  // against 0 gives about -1e4, not log(exp(-1e4)) = -inf.
  const Tensor<T> log_own =
      logsumexp(masked_fill(logits, other, -std::numeric_limits<T>::infinity()), 1);  // (n,)
  return sum(logsumexp(logits, 1) - log_own);  // -sum_i log p_i[y_i]
}

template <class T>
std::vector<std::int64_t> argmax_labels(const xt::xarray<T>& p) {
  if (p.dimension() != 2 || p.shape()[1] == 0)
    throw std::invalid_argument("argmax_labels: expected p of shape (n, C) with C >= 1, got " +
                                shape_str(to_shape(p.shape())));
  std::vector<std::int64_t> labels(p.shape()[0]);
  for (std::size_t i = 0; i < labels.size(); ++i)  // max_element: the first of equal ones
    labels[i] = std::max_element(&p(i, 0), &p(i, 0) + p.shape()[1]) - &p(i, 0);
  return labels;
}

template <class T>
NWKernelRegression<T>::NWKernelRegression(T w_init)
    : NWKernelRegression(1, Widths::Shared, w_init) {}

template <class T>
NWKernelRegression<T>::NWKernelRegression(std::size_t d, Widths widths, T w_init) : d_(d) {
  if (d == 0) throw std::invalid_argument("NWKernelRegression: d must be at least 1");
  w_ = full<T>({widths == Widths::Shared ? std::size_t(1) : d}, w_init, /*requires_grad=*/true);
  w_.set_name("w");
}

template <class T>
void NWKernelRegression<T>::check_d(const std::string& op, const Tensor<T>& x,
                                    const char* name) const {
  check_defined(op, x);
  if ((x.dim() != 1 && x.dim() != 2) || (x.dim() == 1 ? 1 : x.shape()[1]) != d_)
    throw std::invalid_argument(
        op + ": " + name + " " + shape_str(x.shape()) +
        " must be (n,) (d = 1) or (n, d), for the model's d = " + std::to_string(d_));
}

template <class T>
Tensor<T> NWKernelRegression<T>::forward(const Tensor<T>& queries, const Tensor<T>& keys,
                                         const Tensor<T>& values) {
  const std::string op = "NWKernelRegression::forward";
  check_d(op, queries, "queries");
  for (const Tensor<T>* t : {&keys, &values}) check_defined(op, *t);
  const Shape qs = queries.shape(), ks = keys.shape(), vs = values.shape();
  if (keys.dim() != queries.dim() + 1 || ks[0] != qs[0] || (keys.dim() == 3 && ks[2] != d_) ||
      values.dim() < 2 || values.dim() > 3 || vs[0] != ks[0] || vs[1] != ks[1])
    throw std::invalid_argument(op + ": queries " + shape_str(qs) + ", keys " + shape_str(ks) +
                                " and values " + shape_str(vs) +
                                " must be (n,), (n, m), (n, m) or (n, d), (n, m, d), (n, m, C)");
  // The book's (n,) queries and (n, m) keys are d = 1: they get their coordinate axis.
  const Tensor<T> k = keys.dim() == 2 ? unsqueeze(keys, 2) : keys;        // (n, m, d)
  logits_ = nw_logits(as_matrix(queries), k, w_);                         // (n, m)
  attention_weights_ = softmax(logits_, 1);                               // (n, m)
  const Tensor<T> v = values.dim() == 2 ? unsqueeze(values, 2) : values;  // (n, m, C)
  // (n, 1, m) bmm (n, m, C) -> (n, 1, C): row i is the attention-weighted average of its values.
  const Tensor<T> out = bmm(unsqueeze(attention_weights_, 1), v);
  return values.dim() == 2 ? reshape(out, {-1}) : reshape(out, {long(vs[0]), long(vs[2])});
}

template <class T>
Tensor<T> NWKernelRegression<T>::predict(const Tensor<T>& queries, const Tensor<T>& x_train,
                                         const Tensor<T>& values) {
  const std::string op = "NWKernelRegression::predict";
  check_d(op, queries, "queries");
  check_d(op, x_train, "x_train");
  check_defined(op, values);
  if (values.dim() < 1 || values.dim() > 2 || values.shape()[0] != x_train.shape()[0])
    throw std::invalid_argument(op + ": x_train " + shape_str(x_train.shape()) + " and values " +
                                shape_str(values.shape()) +
                                " must be (m,) or (m, d) and (m,) or (m, C)");
  logits_ = nw_logits(as_matrix(queries), as_matrix(x_train), w_);  // (n, m)
  attention_weights_ = softmax(logits_, 1);                         // (n, m)
  return matmul(attention_weights_, values);                        // (n, m) matmul (m,) or (m, C)
}

template <class T>
Tensor<T> NWKernelRegression<T>::forward_fused(const Tensor<T>& queries, const Tensor<T>& x_train,
                                               const Tensor<T>& values, bool leave_one_out) {
  check_d("NWKernelRegression::forward_fused", queries, "queries");
  check_d("NWKernelRegression::forward_fused", x_train, "x_train");
  return nw_attention_pool(queries, x_train, values, w_, leave_one_out);
}

#define TAPEGRAD_INSTANTIATE(T)                                                                  \
  template Tensor<T> average_pooling(const Tensor<T>&, std::size_t);                             \
  template NWResult<T> nadaraya_watson(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,     \
                                       Kernel, T, EmptyRow);                                     \
  template Tensor<T> nw_logits(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&);            \
  template std::pair<Tensor<T>, Tensor<T>> training_keys_values(const Tensor<T>&,                \
                                                                const Tensor<T>&, bool);         \
  template std::pair<Tensor<T>, Tensor<T>> query_keys_values(const Tensor<T>&, const Tensor<T>&, \
                                                             std::size_t);                       \
  template Tensor<T> one_hot<T>(const std::vector<std::int64_t>&, std::size_t);                  \
  template Tensor<T> squared_loss(const Tensor<T>&, const Tensor<T>&);                           \
  template Tensor<T> nw_cross_entropy(const Tensor<T>&, const xt::xarray<std::int64_t>&,         \
                                      const std::vector<std::int64_t>&);                         \
  template std::vector<std::int64_t> argmax_labels(const xt::xarray<T>&);                        \
  template class NWKernelRegression<T>;
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
