// Shape ops: reshape, flatten, unsqueeze, squeeze, transpose, permute.
//
// They move or relabel elements without changing them, so each backward applies the inverse
// movement to grad: reshape back, or the inverse permutation.
#pragma once

#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace tapegrad {

// One extent of a requested shape, from any integer type: a literal, a long, or a std::size_t
// read from a shape (so reshape(x, {n, -1}) compiles without a narrowing warning).
struct Dim {
  long value;
  template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
  Dim(I extent) : value(static_cast<long>(extent)) {  // implicit on purpose
    if (std::is_unsigned_v<I> &&
        static_cast<unsigned long long>(extent) >
            static_cast<unsigned long long>(std::numeric_limits<long>::max()))
      throw std::length_error("reshape: extent " + std::to_string(extent) + " is too large");
  }
};

// A requested shape: a braced list of Dims ({n, -1}), a std::vector<long>, or a Shape.
class Dims {
 public:
  Dims(std::initializer_list<Dim> extents) {
    for (const Dim d : extents) values_.push_back(d.value);
  }
  Dims(const std::vector<long>& extents) : values_(extents) {}
  Dims(const Shape& shape) {
    for (const std::size_t e : shape) values_.push_back(Dim(e).value);
  }
  const std::vector<long>& values() const { return values_; }

 private:
  std::vector<long> values_;
};

// New shape with the same number of elements; one extent may be -1 (inferred), as in torch.
template <class T>
Tensor<T> reshape(const Tensor<T>& a, const Dims& shape);
template <class T>
Tensor<T> flatten(const Tensor<T>& a);  // reshape(a, {-1})
// Inserts an axis of extent 1 at `axis` (in [-dim-1, dim]).
template <class T>
Tensor<T> unsqueeze(const Tensor<T>& a, long axis);
// Removes `axis`, which must have extent 1 (torch silently keeps it; we say so instead).
template <class T>
Tensor<T> squeeze(const Tensor<T>& a, long axis);
// Removes every axis of extent 1.
template <class T>
Tensor<T> squeeze(const Tensor<T>& a);
// Swaps two axes (a.transpose(d0, d1)); for 2-D, transpose(a, 0, 1) is the matrix transpose.
template <class T>
Tensor<T> transpose(const Tensor<T>& a, long axis0, long axis1);
// Reorders all axes: out.shape[i] = a.shape[dims[i]].
template <class T>
Tensor<T> permute(const Tensor<T>& a, const std::vector<long>& dims);

}  // namespace tapegrad
