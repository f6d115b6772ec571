// repeat_interleave's loops (ops/repeat.cpp), over the (outer, len, inner) view of the axis.
#pragma once

#include <cstddef>

#include "ops/kernels/shape.h"

namespace tapegrad {
namespace kernels {

// out = x with every slice (o, k, :) of the axis repeated `repeats` times: input row (o, k)
// becomes output rows (o, k * repeats + t), t < repeats. out has outer * len * repeats * inner
// elements.
template <class T>
void repeat_interleave(const T* x, T* out, const AxisSplit& s, std::size_t repeats);

// The backward: grad_in[o, k, i] = sum_t grad_out[o, k * repeats + t, i] (grad_in overwritten).
template <class T>
void repeat_interleave_backward(const T* grad_out, T* grad_in, const AxisSplit& s,
                                std::size_t repeats);

}  // namespace kernels
}  // namespace tapegrad
