// Small helpers every op file uses: argument checks with messages that name the op and the shapes.
#pragma once

#include <limits>
#include <stdexcept>
#include <string>

#include "autograd/tape.h"
#include "ops/kernels/shape.h"

namespace tapegrad {

// Error messages show a tensor with describe(t) (autograd/tensor.h): "keys (3, 4)" when it has a
// name (Tensor::set_name), "(3, 4)" otherwise.

// Returns validate()'s result. The shape helpers (broadcast_shapes, normalize_axis, reshape's
// rule) know shapes, not tensors: a std::invalid_argument thrown inside is rethrown with the named
// inputs added, "add: shapes (3, 4) and (5,) cannot be broadcast together (inputs: keys (3, 4),
// w (5,))". When no input has a name the message is unchanged.
template <class F, class... T>
auto with_names(F validate, const Tensor<T>&... inputs) -> decltype(validate()) {
  try {
    return validate();
  } catch (const std::invalid_argument& e) {
    std::string named;
    ((named += inputs.defined() && !inputs.name().empty()
                   ? std::string(named.empty() ? "" : ", ") + describe(inputs)
                   : std::string()),
     ...);
    if (named.empty()) throw;
    throw std::invalid_argument(std::string(e.what()) + " (inputs: " + named + ")");
  }
}

template <class T>
void check_defined(const std::string& op, const Tensor<T>& t) {
  if (!t.defined()) throw std::invalid_argument(op + ": undefined (default-constructed) tensor");
}

template <class T>
void check_dim(const std::string& op, const Tensor<T>& t, std::size_t dim, const char* what) {
  check_defined(op, t);
  if (t.dim() != dim)
    throw std::invalid_argument(op + ": expected " + what + " to have " + std::to_string(dim) +
                                " dimensions, got " + describe(t));
}

// a * b for an extent of an output shape, or std::length_error naming the op when the product does
// not fit in std::size_t (a wrapped extent would silently make a small or empty tensor).
inline std::size_t checked_extent(const std::string& op, std::size_t a, std::size_t b) {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a)
    throw std::length_error(op + ": an output extent " + std::to_string(a) + " x " +
                            std::to_string(b) + " is more than std::size_t can count");
  return a * b;
}

}  // namespace tapegrad
