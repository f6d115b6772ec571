#include "optim/optimizer.h"

#include <cmath>
#include <stdexcept>

namespace tapegrad {

template <class T>
Optimizer<T>::Optimizer(std::string name, std::string prefix, std::vector<Tensor<T>> params, T lr,
                        std::vector<Buffer> buffers)
    : params_(std::move(params)),
      lr_(0),
      buffers_(std::move(buffers)),
      state_(buffers_.size(), std::vector<xt::xarray<T>>(params_.size())),
      has_state_(params_.size(), false),
      name_(std::move(name)),
      prefix_(std::move(prefix)) {
  set_lr(lr);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].defined() || !params_[i].requires_grad() || !params_[i].is_leaf())
      throw std::invalid_argument(name_ + ": parameter " + std::to_string(i) +
                                  " must be a leaf tensor that requires grad");
  }
}

template <class T>
void Optimizer<T>::set_lr(T lr) {
  if (!(lr >= 0) || !std::isfinite(lr))
    throw std::invalid_argument(name_ + ": invalid learning rate " + std::to_string(lr));
  lr_ = lr;
}

template <class T>
void Optimizer<T>::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

template <class T>
void Optimizer<T>::init_state(std::size_t i) {
  for (std::size_t k = 0; k < buffers_.size(); ++k)
    state_[k][i] =
        buffers_[k].scalar ? xt::xarray<T>(T(0)) : xt::xarray<T>(xt::zeros<T>(params_[i].shape()));
  has_state_[i] = true;
}

template <class T>
NamedArrays<T> Optimizer<T>::state() const {
  NamedArrays<T> out;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!has_state_[i]) continue;
    for (std::size_t k = 0; k < buffers_.size(); ++k)
      out.emplace_back(prefix_ + buffers_[k].name + "." + std::to_string(i), state_[k][i]);
  }
  return out;
}

namespace {

// "<buffer>.<i>" -> (buffer, i); false when the name does not have that form.
bool split_record(const std::string& rest, std::string& buffer, std::size_t& index) {
  const auto dot = rest.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  const std::string digits = rest.substr(dot + 1);
  if (digits.empty() || digits.size() > 9 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return false;
  buffer = rest.substr(0, dot);
  index = std::stoul(digits);
  return true;
}

}  // namespace

template <class T>
void Optimizer<T>::check_state(const NamedArrays<T>& state) const {
  // seen[k][i]: buffer k of parameter i appears
  std::vector<std::vector<bool>> seen(buffers_.size(), std::vector<bool>(params_.size(), false));
  for (const auto& [record, value] : state) {
    auto mismatch = [&, record = record](const std::string& why) {
      return std::invalid_argument("optimizer record '" + record + "' does not match the model (" +
                                   why + ")");
    };
    std::string buffer;
    std::size_t i = 0, k = 0;
    if (record.rfind(prefix_, 0) != 0 || !split_record(record.substr(prefix_.size()), buffer, i))
      throw mismatch("not a record of " + name_ + "'s state");
    while (k < buffers_.size() && buffers_[k].name != buffer) ++k;
    if (k == buffers_.size()) throw mismatch(name_ + " keeps no buffer '" + buffer + "'");
    if (i >= params_.size())
      throw mismatch("there are " + std::to_string(params_.size()) + " parameters");
    const Shape expected = buffers_[k].scalar ? Shape{} : params_[i].shape();
    if (to_shape(value.shape()) != expected)
      throw mismatch("shape " + shape_str(to_shape(value.shape())) + ", expected " +
                     shape_str(expected));
    if (seen[k][i]) throw mismatch("it appears twice");
    try {
      check_value(k, value);
    } catch (const std::invalid_argument& e) {
      throw mismatch(e.what());
    }
    seen[k][i] = true;
  }
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (std::size_t k = 1; k < buffers_.size(); ++k)
      if (seen[k][i] != seen[0][i]) {
        const std::size_t missing = seen[k][i] ? 0 : k;
        throw std::invalid_argument(
            "optimizer state of parameter " + std::to_string(i) + " does not match the model (" +
            prefix_ + buffers_[missing].name + "." + std::to_string(i) + " is missing)");
      }
}

template <class T>
void Optimizer<T>::load_state(const NamedArrays<T>& state) {
  check_state(state);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    has_state_[i] = false;
    for (auto& b : state_) b[i] = xt::xarray<T>();
  }
  for (const auto& [record, value] : state) {
    std::string buffer;
    std::size_t i = 0, k = 0;
    split_record(record.substr(prefix_.size()), buffer, i);
    while (buffers_[k].name != buffer) ++k;
    state_[k][i] = value;
    has_state_[i] = true;
  }
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace tapegrad
