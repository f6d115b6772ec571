// Matrix-product kernels (see linalg.h): a plain-loop gemm for small products, OpenBLAS for large
// ones, and the batch split across threads.
#include "ops/kernels/linalg.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>

// cblas_sgemm / cblas_dgemm are declared by xtensor-blas (xflens/cxxblas); including OpenBLAS's
// own <cblas.h> as well would declare them twice.
#include <xtensor-blas/xlinalg.hpp>

#include "ops/kernels/parallel.h"

namespace tapegrad {
namespace kernels {

namespace {

// C (M x N) = op(A) op(B), with op(A) M x K and op(B) K x N, all row-major and contiguous.
// trans_a means A is stored K x M (we multiply by its transpose); likewise trans_b.
// Small products (the chapter's (1, m) x (m, 1) rows) run as plain loops: a BLAS call would cost
// more than the arithmetic. Large ones go to OpenBLAS.
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t M, std::size_t N, std::size_t K, const T* A,
          const T* B, T* C) {
  if (M * N * K >= 64 * 64 * 64) {
    const auto ta = trans_a ? CblasTrans : CblasNoTrans;
    const auto tb = trans_b ? CblasTrans : CblasNoTrans;
    const int lda = static_cast<int>(trans_a ? M : K), ldb = static_cast<int>(trans_b ? K : N);
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, ta, tb, int(M), int(N), int(K), 1.0f, A, lda, B, ldb, 0.0f, C,
                  int(N));
    else
      cblas_dgemm(CblasRowMajor, ta, tb, int(M), int(N), int(K), 1.0, A, lda, B, ldb, 0.0, C,
                  int(N));
    return;
  }
  // Element (i, k) of op(A) is A[i * a_i + k * a_k]; element (k, j) of op(B) is B[k * b_k + j *
  // b_j].
  const std::size_t a_i = trans_a ? 1 : K, a_k = trans_a ? M : 1;
  const std::size_t b_k = trans_b ? 1 : N, b_j = trans_b ? K : 1;
  if (a_k == 1 && (b_k == 1 || N == 1)) {
    // Both operands contiguous along k: each C[i, j] is one vectorisable dot product. This is the
    // chapter's (1, m) x (m, 1) row: sum_k weights_k * values_k.
    for (std::size_t i = 0; i < M; ++i)
      for (std::size_t j = 0; j < N; ++j) {
        const T* a = A + i * a_i;
        const T* b = B + j * b_j;
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (std::size_t k = 0; k < K; ++k) acc += a[k] * b[k];
        C[i * N + j] = acc;
      }
    return;
  }
  // Otherwise accumulate rows of B: C[i, :] += op(A)[i, k] * op(B)[k, :].
  for (std::size_t i = 0; i < M * N; ++i) C[i] = T(0);
  for (std::size_t i = 0; i < M; ++i)
    for (std::size_t k = 0; k < K; ++k) {
      const T aik = A[i * a_i + k * a_k];
      for (std::size_t j = 0; j < N; ++j) C[i * N + j] += aik * B[k * b_k + j * b_j];
    }
}

// OpenBLAS's thread-count controls, declared weak: present when BLAS is OpenBLAS (as set up here),
// null with another BLAS, in which case we simply do not touch its threading.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));
extern "C" int openblas_get_num_threads() __attribute__((weak));

}  // namespace

// out[b] = op(A[b]) op(B[b]) for every batch entry.
// The work is split across OpenMP threads: batch entries, or, for one large product whose A is
// not transposed, blocks of its rows (each block one BLAS call: C[rows] = A[rows] op(B)). A large
// product goes to BLAS, and BLAS is held to one thread meanwhile: its own threads would compete
// with the OpenMP team (whose threads spin a while after each region) for the same cores. A
// transposed A alone keeps BLAS's own threading.
template <class T>
xt::xarray<T> batched_gemm(bool trans_a, bool trans_b, std::size_t batch, std::size_t M,
                           std::size_t N, std::size_t K, const T* A, const T* B) {
  xt::xarray<T> out = xt::xarray<T>::from_shape({batch, M, N});  // gemm writes every element
  T* C = out.data();
  const bool big = M * N * K >= 64 * 64 * 64;
  const int threads = omp_get_max_threads();
  const bool can_hold_blas = !big || openblas_set_num_threads != nullptr;
  const bool split_batch =
      batch > 1 && batch * M * N * K >= kParallelGrain && threads > 1 && can_hold_blas;
  const bool split_rows = batch == 1 && big && !trans_a && threads > 1 && can_hold_blas &&
                          M >= 2 * static_cast<std::size_t>(threads);
  int blas_threads = 0;
  if ((split_batch || split_rows) && big) {
    blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
  }
  if (split_rows) {
    const std::size_t block = (M + std::size_t(threads) - 1) / std::size_t(threads);
#pragma omp parallel for num_threads(threads)
    for (int t = 0; t < threads; ++t) {
      const std::size_t r0 = std::min(M, std::size_t(t) * block), r1 = std::min(M, r0 + block);
      if (r1 > r0) gemm(false, trans_b, r1 - r0, N, K, A + r0 * K, B, C + r0 * N);
    }
  } else {
#pragma omp parallel for if (split_batch)
    for (long b = 0; b < static_cast<long>(batch); ++b)
      gemm(trans_a, trans_b, M, N, K, A + b * M * K, B + b * K * N, C + b * M * N);
  }
  if (blas_threads > 0) openblas_set_num_threads(blas_threads);
  return out;
}

template xt::xarray<float> batched_gemm(bool, bool, std::size_t, std::size_t, std::size_t,
                                        std::size_t, const float*, const float*);
template xt::xarray<double> batched_gemm(bool, bool, std::size_t, std::size_t, std::size_t,
                                         std::size_t, const double*, const double*);

}  // namespace kernels
}  // namespace tapegrad
