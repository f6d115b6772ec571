// Matrix-product kernels: the loops and the BLAS dispatch behind ops/linalg.cpp.
#pragma once

#include <cstddef>

#include <xtensor/xarray.hpp>

namespace tapegrad {
namespace kernels {

// out[b] = op(A[b]) op(B[b]) for b < batch: op(A[b]) is M x K, op(B[b]) K x N, all row-major and
// contiguous; trans_a means A[b] is stored K x M (the product uses its transpose), likewise
// trans_b. Returns the (batch, M, N) result. Small products are plain loops, large ones OpenBLAS;
// batch entries are split across OpenMP threads above kParallelGrain multiply-adds.
// Instantiated for float and double.
template <class T>
xt::xarray<T> batched_gemm(bool trans_a, bool trans_b, std::size_t batch, std::size_t M,
                           std::size_t N, std::size_t K, const T* A, const T* B);

}  // namespace kernels
}  // namespace tapegrad
