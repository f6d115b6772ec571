// torch.nn.Dropout as a module: dropout(x, p, training) (ops/dropout.h) with the training flag
// kept by the module. It starts in training mode, as torch modules do; eval() turns it into the
// identity and train() back on.
#pragma once

#include "autograd/tensor.h"

namespace tapegrad {

template <class T>
class Dropout {
 public:
  // Throws std::invalid_argument naming Dropout unless 0 <= p <= 1.
  explicit Dropout(T p = T(0.5));

  Tensor<T> forward(const Tensor<T>& x) const;
  Tensor<T> operator()(const Tensor<T>& x) const { return forward(x); }

  void train(bool on = true) { training_ = on; }
  void eval() { training_ = false; }
  bool training() const { return training_; }
  T p() const { return p_; }

 private:
  T p_;
  bool training_ = true;
};

}  // namespace tapegrad
