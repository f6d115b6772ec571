// The model adapter of the nadaraya_watson program (examples/nw_program.h): the one file that calls
// the Nadaraya-Watson model's API (models/nadaraya_watson.h) and its fused ops
// (ops/fused/nw_attention.h), for every d (d = 1 is the chapter's model) and both tasks.
#include <algorithm>
#include <tuple>

#include <xtensor/xview.hpp>

#include "examples/nw_program.h"
#include "models/nadaraya_watson.h"
#include "ops/fused/nw_attention.h"
#include "tapegrad.h"

namespace tapegrad {

template <class T>
NWModel<T>::NWModel(const Data& data, const Options& options, double w0)
    : widths_(widths_from_string(options.widths)),
      leave_one_out_(!options.keep_self),
      cross_entropy_(loss_name(options) == "cross-entropy"),
      x_train_(as_tensor<T>(data.x_train, data.n_train(), data.d)),
      y_train_(as_tensor<T>(data.y_train, data.n_train(), 1)),
      x_query_(as_tensor<T>(data.x_query, data.n_query(), data.d)),
      labels_(data.labels),
      net_(data.d, widths_, static_cast<T>(w0)),
      optimizer_(net_.parameters(), static_cast<T>(options.lr)) {
  values_ = data.classification ? one_hot<T>(labels_, data.classes) : y_train_;
  named_ = {{"w", net_.w()}};
  w_init.assign(w().size(), w0);
}

template <class T>
std::vector<double> NWModel<T>::w() {
  return to_vector(net_.w().value());
}

template <class T>
std::vector<double> NWModel<T>::average(std::size_t n_query) const {
  return to_vector(average_pooling(reshape(y_train_, {-1}), n_query).value());
}

template <class T>
NWResult<T> NWModel<T>::nonparametric(const Tensor<T>& queries, Kernel kernel, double sigma) const {
  return nadaraya_watson(x_train_, values_, queries, kernel, static_cast<T>(sigma));
}

template <class T>
typename NWModel<T>::Pairs NWModel<T>::pairs(const Tensor<T>& x, const Tensor<T>& v,
                                             const std::vector<std::int64_t>& labels) const {
  Pairs p;
  std::tie(p.keys, p.values) = training_keys_values(x, v, leave_one_out_);
  if (cross_entropy_) p.key_labels = training_key_labels(labels, leave_one_out_);
  return p;
}

// The model's forward on the training pairs, then the loss from its output or its logits.
template <class T>
Tensor<T> NWModel<T>::composed_loss(NWKernelRegression<T>& net, const Tensor<T>& x,
                                    const Tensor<T>& v, const std::vector<std::int64_t>& labels,
                                    const Pairs& pairs) const {
  const Tensor<T> f = net.forward(x, pairs.keys, pairs.values);  // (n, C)
  if (cross_entropy_) return nw_cross_entropy(net.logits(), pairs.key_labels, labels);
  return squared_loss(f, v);  // 1/2 sum_i ||f_i - v_i||^2
}

template <class T>
void NWModel<T>::start_training(bool fused) {
  fused_ = fused;
  if (!fused) pairs_ = pairs(x_train_, values_, labels_);
}

// The fused ops take the training inputs as queries and keys at once, O(n) memory.
template <class T>
Tensor<T> NWModel<T>::loss() {
  if (!fused_) return composed_loss(net_, x_train_, values_, labels_, pairs_);
  const Tensor<T>& x = x_train_;
  if (cross_entropy_)
    return nw_attention_cross_entropy(x, x, labels_, labels_, net_.w(), leave_one_out_);
  return squared_loss(nw_attention_pool(x, x, values_, net_.w(), leave_one_out_), values_);
}

template <class T>
xt::xarray<T> NWModel<T>::pool(const Tensor<T>& queries, bool fused, bool leave_one_out,
                               xt::xarray<T>* attention) {
  if (leave_one_out && !fused) {
    const auto [keys, values] = training_keys_values(x_train_, values_, true);
    return net_.forward(x_train_, keys, values).value();
  }
  if (!fused) return predict(queries, attention);
  if (attention) predict(queries, attention);
  return nw_attention_pool(queries, x_train_, values_, net_.w(), leave_one_out).value();
}

// The model's prediction with every training pair as keys, in chunks of queries whose (rows, n, d)
// and (rows, n) intermediates and (rows, C) output stay near 2e6 elements (the (n, C) values are
// shared by every row: one matmul per chunk); attention (when given) receives the (rows, n) weights.
template <class T>
xt::xarray<T> NWModel<T>::predict(const Tensor<T>& queries, xt::xarray<T>* attention) {
  const std::size_t rows = queries.shape()[0], n = x_train_.shape()[0];
  const std::size_t per_row = n * (x_train_.shape()[1] + 1) + values_.shape()[1];
  const std::size_t chunk = std::max<std::size_t>(1, std::size_t(2e6 / double(per_row)));
  xt::xarray<T> f = xt::zeros<T>({rows, values_.shape()[1]});
  if (attention) *attention = xt::zeros<T>({rows, n});
  for (std::size_t start = 0; start < rows; start += chunk) {
    const std::size_t end = std::min(rows, start + chunk);
    const Tensor<T> q(xt::xarray<T>(xt::view(queries.value(), xt::range(start, end), xt::all())));
    xt::view(f, xt::range(start, end), xt::all()) = net_.predict(q, x_train_, values_).value();
    if (attention)
      xt::view(*attention, xt::range(start, end), xt::all()) = net_.attention_weights().value();
  }
  return f;
}

template <class T>
Tensor<T> NWModel<T>::graph_loss(const std::vector<std::size_t>& points,
                                 const std::vector<double>& w) const {
  const Tensor<T> x(xt::xarray<T>(xt::view(x_train_.value(), xt::keep(points), xt::all())));
  const Tensor<T> v(xt::xarray<T>(xt::view(values_.value(), xt::keep(points), xt::all())));
  std::vector<std::int64_t> labels;
  for (std::size_t i : points)
    if (!labels_.empty()) labels.push_back(labels_[i]);
  NWKernelRegression<T> net(x_train_.shape()[1], widths_, T(0));
  for (std::size_t k = 0; k < w.size(); ++k) net.w().mutable_value()(k) = T(w[k]);
  return composed_loss(net, x, v, labels, pairs(x, v, labels));
}

template class NWModel<float>;
template class NWModel<double>;

}  // namespace tapegrad
