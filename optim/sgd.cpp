#include "optim/sgd.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/tape.h"

namespace tapegrad {

template <class T>
SGD<T>::SGD(std::vector<Tensor<T>> params, T lr, T momentum, T weight_decay, T dampening,
            bool nesterov)
    : params_(std::move(params)),
      lr_(lr),
      momentum_(momentum),
      weight_decay_(weight_decay),
      dampening_(dampening),
      nesterov_(nesterov),
      buffers_(params_.size()),
      has_buffer_(params_.size(), false) {
  if (!(lr >= 0) || !std::isfinite(lr))
    throw std::invalid_argument("SGD: invalid learning rate " + std::to_string(lr));
  if (!(momentum >= 0))
    throw std::invalid_argument("SGD: invalid momentum " + std::to_string(momentum));
  if (!(weight_decay >= 0))
    throw std::invalid_argument("SGD: invalid weight_decay " + std::to_string(weight_decay));
  if (nesterov && (momentum <= 0 || dampening != 0))
    throw std::invalid_argument("SGD: nesterov momentum requires a momentum and zero dampening");
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].defined() || !params_[i].requires_grad() || !params_[i].is_leaf())
      throw std::invalid_argument("SGD: parameter " + std::to_string(i) +
                                  " must be a leaf tensor that requires grad");
  }
}

template <class T>
void SGD<T>::step() {
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor<T>& p = params_[i];
    if (!p.has_grad()) continue;
    xt::xarray<T> g = p.grad();
    if (weight_decay_ != 0) g += weight_decay_ * p.value();
    if (momentum_ != 0) {
      if (!has_buffer_[i]) {
        buffers_[i] = g;
        has_buffer_[i] = true;
      } else {
        buffers_[i] = momentum_ * buffers_[i] + (T(1) - dampening_) * g;
      }
      if (nesterov_)
        g += momentum_ * buffers_[i];
      else
        g = buffers_[i];
    }
    p.mutable_value() -= lr_ * g;
  }
}

template <class T>
void SGD<T>::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

template class SGD<float>;
template class SGD<double>;

}  // namespace tapegrad
