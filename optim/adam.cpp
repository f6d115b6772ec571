#include "optim/adam.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/tape.h"

namespace tapegrad {

namespace {

// The per-parameter buffers, in the order of Adam's state records.
enum : std::size_t { kStep = 0, kExpAvg = 1, kExpAvgSq = 2, kMaxExpAvgSq = 3 };

}  // namespace

template <class T>
Adam<T>::Adam(std::vector<Tensor<T>> params, T lr, std::pair<T, T> betas, T eps, T weight_decay,
              bool amsgrad)
    : Adam("Adam", "adam.", false, std::move(params), lr, betas, eps, weight_decay, amsgrad) {}

template <class T>
Adam<T>::Adam(const char* name, const char* prefix, bool decoupled, std::vector<Tensor<T>> params,
              T lr, std::pair<T, T> betas, T eps, T weight_decay, bool amsgrad)
    : Optimizer<T>(name, prefix, std::move(params), lr,
                   amsgrad ? std::vector<typename Optimizer<T>::Buffer>{{"step", true},
                                                                        {"exp_avg", false},
                                                                        {"exp_avg_sq", false},
                                                                        {"max_exp_avg_sq", false}}
                           : std::vector<typename Optimizer<T>::Buffer>{{"step", true},
                                                                        {"exp_avg", false},
                                                                        {"exp_avg_sq", false}}),
      beta1_(betas.first),
      beta2_(betas.second),
      eps_(eps),
      weight_decay_(weight_decay),
      amsgrad_(amsgrad),
      decoupled_(decoupled) {
  const std::string n = name;
  if (!(beta1_ >= 0 && beta1_ < 1))
    throw std::invalid_argument(n +
                                ": invalid beta parameter at index 0: " + std::to_string(beta1_));
  if (!(beta2_ >= 0 && beta2_ < 1))
    throw std::invalid_argument(n +
                                ": invalid beta parameter at index 1: " + std::to_string(beta2_));
  if (!(eps >= 0) || !std::isfinite(eps))
    throw std::invalid_argument(n + ": invalid epsilon value " + std::to_string(eps));
  if (!(weight_decay >= 0) || !std::isfinite(weight_decay))
    throw std::invalid_argument(n + ": invalid weight_decay value " + std::to_string(weight_decay));
}

template <class T>
void Adam<T>::check_value(std::size_t buffer, const xt::xarray<T>& value) const {
  if (buffer != kStep) return;
  const T t = value();
  if (!(t >= 1) || t != std::floor(t))
    throw std::invalid_argument("the step count must be a positive integer, got " +
                                std::to_string(t));
}

template <class T>
void Adam<T>::step() {
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < this->params_.size(); ++i)
    if (this->params_[i].has_grad()) update(i);
}

// torch 1.13's single-tensor Adam, operation for operation.
template <class T>
void Adam<T>::update(std::size_t i) {
  if (!this->has_state_[i]) this->init_state(i);
  auto& st = this->state_;
  Tensor<T>& p = this->params_[i];
  xt::xarray<T>& param = p.mutable_value();
  const T lr = this->lr_;
  xt::xarray<T> g = p.grad();
  const T t = (st[kStep][i]() += T(1));
  if (decoupled_)
    param *= T(1) - lr * weight_decay_;
  else if (weight_decay_ != 0)
    g += weight_decay_ * param;
  xt::xarray<T>& m = st[kExpAvg][i];
  xt::xarray<T>& v = st[kExpAvgSq][i];
  m = m * beta1_ + (T(1) - beta1_) * g;
  v = v * beta2_ + (T(1) - beta2_) * (g * g);
  const T bias_correction1 = T(1) - std::pow(beta1_, t);
  const T bias_correction2_sqrt = std::sqrt(T(1) - std::pow(beta2_, t));
  const T step_size = lr / bias_correction1;
  const xt::xarray<T>* second = &v;
  if (amsgrad_) {
    st[kMaxExpAvgSq][i] = xt::maximum(st[kMaxExpAvgSq][i], v);
    second = &st[kMaxExpAvgSq][i];
  }
  const xt::xarray<T> denom = xt::sqrt(*second) / bias_correction2_sqrt + eps_;
  param += -step_size * (m / denom);
}

template <class T>
AdamW<T>::AdamW(std::vector<Tensor<T>> params, T lr, std::pair<T, T> betas, T eps, T weight_decay,
                bool amsgrad)
    : Adam<T>("AdamW", "adamw.", true, std::move(params), lr, betas, eps, weight_decay, amsgrad) {}

template class Adam<float>;
template class Adam<double>;
template class AdamW<float>;
template class AdamW<double>;

}  // namespace tapegrad
