// Summation kernels behind sum_to_shape / sum_over_axes (ops/kernels/shape.cpp) and the sum op.
// Every sum accumulates in double: a float sum of 10^7 terms would otherwise lose ~3 digits.
#pragma once

#include <cstddef>

namespace tapegrad {
namespace kernels {

// sum_i x[i] (or x[i] * y[i]), i < n: blocks of kSumBlock elements, each summed in kLanes
// running sums (an elementwise update, which gcc and clang vectorise without -ffast-math), the
// blocks split across threads above kParallelGrain elements. The order of the additions is fixed
// by n alone, not by the thread count.
template <class T>
double sum_all(const T* x, std::size_t n);
template <class T>
double dot(const T* x, const T* y, std::size_t n);

// x seen as (outer, inner), row-major. sum_leading: acc[j] += sum_o x[o, j] (acc has inner
// entries); sum_trailing: acc[o] = sum_j x[o, j] (acc has outer entries).
template <class T>
void sum_leading(const T* x, std::size_t outer, std::size_t inner, double* acc);
template <class T>
void sum_trailing(const T* x, std::size_t outer, std::size_t inner, double* acc);

}  // namespace kernels
}  // namespace tapegrad
