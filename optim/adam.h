// Adam and AdamW with the semantics of torch.optim.Adam and torch.optim.AdamW (torch 1.13, one
// parameter at a time, maximize=False).
//
// For each parameter p with a gradient g (parameters without one are skipped, as in torch), at its
// t-th update (t counts that parameter's updates, from 1):
//   Adam:   g <- g + weight_decay * p                 (L2 regularisation through the gradient)
//   AdamW:  p <- p * (1 - lr * weight_decay)          (decoupled weight decay)
//   m <- beta1 m + (1 - beta1) g                      (exp_avg)
//   v <- beta2 v + (1 - beta2) g^2                    (exp_avg_sq)
//   amsgrad:  v_max <- max(v_max, v), and v_max stands for v below
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// m, v (and v_max) start at zeros. step() runs under NoGradGuard. The state (optim/optimizer.h)
// per parameter: "adam.step.<i>" (t, a scalar), "adam.exp_avg.<i>", "adam.exp_avg_sq.<i>" and with
// amsgrad "adam.max_exp_avg_sq.<i>"; AdamW's records start with "adamw.".
#pragma once

#include <utility>
#include <vector>

#include "autograd/tensor.h"
#include "optim/optimizer.h"

namespace tapegrad {

template <class T>
class Adam : public Optimizer<T> {
 public:
  // torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
  // amsgrad=False). Throws std::invalid_argument naming Adam for lr < 0, betas outside [0, 1),
  // eps < 0 or weight_decay < 0 (and for parameters that are not leaves requiring grad).
  explicit Adam(std::vector<Tensor<T>> params, T lr = T(1e-3),
                std::pair<T, T> betas = {T(0.9), T(0.999)}, T eps = T(1e-8), T weight_decay = 0,
                bool amsgrad = false);

  void step() override;

  std::pair<T, T> betas() const { return {beta1_, beta2_}; }
  T eps() const { return eps_; }
  T weight_decay() const { return weight_decay_; }
  bool amsgrad() const { return amsgrad_; }

 protected:
  // AdamW's constructor: decoupled weight decay, records "adamw.*".
  Adam(const char* name, const char* prefix, bool decoupled, std::vector<Tensor<T>> params, T lr,
       std::pair<T, T> betas, T eps, T weight_decay, bool amsgrad);
  // The step count must be a positive integer.
  void check_value(std::size_t buffer, const xt::xarray<T>& value) const override;

 private:
  void update(std::size_t i);  // one update of parameter i, which has a gradient

  T beta1_, beta2_, eps_, weight_decay_;
  bool amsgrad_, decoupled_;
};

// torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
// amsgrad=False): Adam whose weight decay shrinks the parameter directly, p <- p (1 - lr wd),
// instead of entering the gradient (and so the moment estimates).
template <class T>
class AdamW : public Adam<T> {
 public:
  explicit AdamW(std::vector<Tensor<T>> params, T lr = T(1e-3),
                 std::pair<T, T> betas = {T(0.9), T(0.999)}, T eps = T(1e-8),
                 T weight_decay = T(1e-2), bool amsgrad = false);
};

}  // namespace tapegrad
