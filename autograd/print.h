// Printing tensors, PyTorch style: std::cout << t.
//
//   tensor([[ 0.1000, -1.2000,  2.0000],
//           [ 1.0000,  2.0000,  3.0000]], shape=(2, 3), dtype=float64, requires_grad=true,
//           grad_fn=<mul>)
//
// Values as torch prints them: one format for the whole tensor (integers as "1.", fixed with 4
// decimals, or scientific when the magnitudes span more than 1e3 or leave [1e-4, 1e8)), right
// aligned, rows wrapped at 80 columns. Past 1000 elements, each axis longer than 6 shows its first
// 3 and last 3 entries around "...". Then the shape, the dtype, requires_grad, the tensor's name if
// it has one, and for a tensor made by a recorded op the op (grad_fn=<softmax>); once backward has
// freed that op's tape entry, grad_fn=<freed>.
//
// This header also brings xtensor's own printing (xtensor/xio.hpp), so std::cout << t.value() and
// << t.grad() work with no extra include.
#pragma once

#include <ostream>
#include <string>

#include <xtensor/xio.hpp>

#include "autograd/tensor.h"

namespace tapegrad {

// What operator<< prints, as a string.
template <class T>
std::string to_string(const Tensor<T>& t);

template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  return os << to_string(t);
}

// The op that made a tensor ("softmax"), "" for a leaf, "freed" when its tape entry is gone.
std::string grad_fn_name(const NodeBase& node);

// The values alone, formatted as in to_string ("[[1., 2.],\n [3., 4.]]"); `indent` is the column
// at which the first bracket stands, used to align the following rows.
template <class T>
std::string format_values(const xt::xarray<T>& a, std::size_t indent = 0);

}  // namespace tapegrad
