#include "models/dropout.h"

#include <stdexcept>
#include <string>

#include "ops/dropout.h"

namespace tapegrad {

template <class T>
Dropout<T>::Dropout(T p) : p_(p) {
  if (!(p >= T(0) && p <= T(1)))
    throw std::invalid_argument("Dropout: probability p must be in [0, 1], got " +
                                std::to_string(p));
}

template <class T>
Tensor<T> Dropout<T>::forward(const Tensor<T>& x) const {
  return dropout(x, p_, training_);
}

template class Dropout<float>;
template class Dropout<double>;

}  // namespace tapegrad
