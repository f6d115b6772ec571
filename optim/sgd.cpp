#include "optim/sgd.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/tape.h"

namespace tapegrad {

template <class T>
SGD<T>::SGD(std::vector<Tensor<T>> params, T lr, T momentum, T weight_decay, T dampening,
            bool nesterov)
    : Optimizer<T>("SGD", "sgd.", std::move(params), lr, {{"momentum_buffer", false}}),
      momentum_(momentum),
      weight_decay_(weight_decay),
      dampening_(dampening),
      nesterov_(nesterov) {
  if (!(momentum >= 0))
    throw std::invalid_argument("SGD: invalid momentum " + std::to_string(momentum));
  if (!(weight_decay >= 0))
    throw std::invalid_argument("SGD: invalid weight_decay " + std::to_string(weight_decay));
  if (nesterov && (momentum <= 0 || dampening != 0))
    throw std::invalid_argument("SGD: nesterov momentum requires a momentum and zero dampening");
}

template <class T>
void SGD<T>::step() {
  NoGradGuard no_grad;
  auto& buffers = momentum_buffers();
  for (std::size_t i = 0; i < this->params_.size(); ++i) {
    Tensor<T>& p = this->params_[i];
    if (!p.has_grad()) continue;
    xt::xarray<T> g = p.grad();
    if (weight_decay_ != 0) g += weight_decay_ * p.value();
    if (momentum_ != 0) {
      if (!this->has_state_[i]) {
        buffers[i] = g;
        this->has_state_[i] = true;
      } else {
        buffers[i] = momentum_ * buffers[i] + (T(1) - dampening_) * g;
      }
      if (nesterov_)
        g += momentum_ * buffers[i];
      else
        g = buffers[i];
    }
    p.mutable_value() -= this->lr_ * g;
  }
}

template class SGD<float>;
template class SGD<double>;

}  // namespace tapegrad
