// Stochastic gradient descent with the semantics of torch.optim.SGD.
//
// For each parameter p with a gradient g (parameters without one are skipped, as in torch):
//   g <- g + weight_decay * p
//   if momentum != 0:  b <- g on the first step, else b <- momentum * b + (1 - dampening) * g
//                      g <- nesterov ? g + momentum * b : b
//   p <- p - lr * g
// step() runs under NoGradGuard: an update is not part of any graph. Its state (for checkpoints,
// optim/optimizer.h) is the momentum buffer b of each parameter: "sgd.momentum_buffer.<i>".
#pragma once

#include <vector>

#include "autograd/tensor.h"
#include "optim/optimizer.h"

namespace tapegrad {

template <class T>
class SGD : public Optimizer<T> {
 public:
  SGD(std::vector<Tensor<T>> params, T lr, T momentum = 0, T weight_decay = 0, T dampening = 0,
      bool nesterov = false);

  void step() override;

  // Momentum buffers, one per parameter; meaningful once has_momentum_buffer()[i] (after the
  // first step that used momentum). The optimiser's state, as state() lists it.
  std::vector<xt::xarray<T>>& momentum_buffers() { return this->state_[0]; }
  std::vector<bool>& has_momentum_buffer() { return this->has_state_; }

 private:
  T momentum_, weight_decay_, dampening_;
  bool nesterov_;
};

}  // namespace tapegrad
