// Stochastic gradient descent with the semantics of torch.optim.SGD.
//
// For each parameter p with a gradient g (parameters without one are skipped, as in torch):
//   g <- g + weight_decay * p
//   if momentum != 0:  b <- g on the first step, else b <- momentum * b + (1 - dampening) * g
//                      g <- nesterov ? g + momentum * b : b
//   p <- p - lr * g
// step() runs under NoGradGuard: an update is not part of any graph.
#pragma once

#include <vector>

#include "autograd/tensor.h"

namespace tapegrad {

template <class T>
class SGD {
 public:
  SGD(std::vector<Tensor<T>> params, T lr, T momentum = 0, T weight_decay = 0, T dampening = 0,
      bool nesterov = false);

  void step();
  void zero_grad();  // zeros every parameter's grad (torch's set_to_none=False behaviour)

  T lr() const { return lr_; }
  void set_lr(T lr) { lr_ = lr; }
  const std::vector<Tensor<T>>& params() const { return params_; }
  // Momentum buffers, one per parameter; empty until the first step that used momentum.
  // Exposed so checkpoints can save and restore them.
  std::vector<xt::xarray<T>>& momentum_buffers() { return buffers_; }
  std::vector<bool>& has_momentum_buffer() { return has_buffer_; }

 private:
  std::vector<Tensor<T>> params_;
  T lr_, momentum_, weight_decay_, dampening_;
  bool nesterov_;
  std::vector<xt::xarray<T>> buffers_;
  std::vector<bool> has_buffer_;
};

}  // namespace tapegrad
