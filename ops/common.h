// Small helpers every op file uses: argument checks with messages that name the op and the shapes.
#pragma once

#include <stdexcept>
#include <string>

#include "autograd/tape.h"
#include "ops/shape_utils.h"

namespace tapegrad {

template <class T>
void check_defined(const std::string& op, const Tensor<T>& t) {
  if (!t.defined()) throw std::invalid_argument(op + ": undefined (default-constructed) tensor");
}

template <class T>
void check_dim(const std::string& op, const Tensor<T>& t, std::size_t dim, const char* what) {
  check_defined(op, t);
  if (t.dim() != dim)
    throw std::invalid_argument(op + ": expected " + what + " to have " + std::to_string(dim) +
                                " dimensions, got shape " + shape_str(t.shape()));
}

}  // namespace tapegrad
