#include "optim/lr_scheduler.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace tapegrad {

template <class T>
LRScheduler<T>::LRScheduler(Optimizer<T>& optimizer)
    : optimizer_(&optimizer), base_lr_(optimizer.lr()), last_lr_(optimizer.lr()) {}

template <class T>
void LRScheduler<T>::step() {
  set_last_epoch(last_epoch_ + 1);
}

template <class T>
void LRScheduler<T>::set_last_epoch(long epoch) {
  if (epoch < 0)
    throw std::invalid_argument("lr scheduler: epoch must be >= 0, got " + std::to_string(epoch));
  const T lr = lr_at(epoch);
  optimizer_->set_lr(lr);
  last_epoch_ = epoch;
  last_lr_ = lr;
}

template <class T>
StepLR<T>::StepLR(Optimizer<T>& optimizer, long step_size, T gamma)
    : LRScheduler<T>(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size < 1)
    throw std::invalid_argument("StepLR: step_size must be >= 1, got " + std::to_string(step_size));
  if (!(gamma >= 0) || !std::isfinite(gamma))
    throw std::invalid_argument("StepLR: gamma must be finite and >= 0, got " +
                                std::to_string(gamma));
}

template <class T>
T StepLR<T>::lr_at(long epoch) const {
  return this->base_lr() * static_cast<T>(std::pow(gamma_, epoch / step_size_));
}

template <class T>
CosineAnnealingLR<T>::CosineAnnealingLR(Optimizer<T>& optimizer, long T_max, T eta_min)
    : LRScheduler<T>(optimizer), t_max_(T_max), eta_min_(eta_min) {
  if (T_max < 1)
    throw std::invalid_argument("CosineAnnealingLR: T_max must be >= 1, got " +
                                std::to_string(T_max));
  if (!(eta_min >= 0) || !std::isfinite(eta_min))
    throw std::invalid_argument("CosineAnnealingLR: eta_min must be finite and >= 0, got " +
                                std::to_string(eta_min));
}

template <class T>
T CosineAnnealingLR<T>::lr_at(long epoch) const {
  const double pi = std::acos(-1.0);
  const double c = std::cos(pi * static_cast<double>(epoch) / static_cast<double>(t_max_));
  return static_cast<T>(eta_min_ + (this->base_lr() - eta_min_) * (1.0 + c) / 2.0);
}

template class LRScheduler<float>;
template class LRScheduler<double>;
template class StepLR<float>;
template class StepLR<double>;
template class CosineAnnealingLR<float>;
template class CosineAnnealingLR<double>;

}  // namespace tapegrad
