#include "ops/linalg.h"

#include <omp.h>

// cblas_sgemm / cblas_dgemm are declared by xtensor-blas (xflens/cxxblas); including OpenBLAS's
// own <cblas.h> as well would declare them twice.
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xmanipulation.hpp>

#include "ops/common.h"
#include "ops/shape.h"

namespace tapegrad {

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

// out[b] = op(A[b]) op(B[b]) for every batch entry.
// Batch entries are independent, so they are split across OpenMP threads. A large product goes to
// BLAS; then BLAS is held to one thread meanwhile, so that 2 batch threads x 2 BLAS threads do not
// fight over 2 cores. One large product alone (batch 1) keeps BLAS's own threading.
template <class T>
xt::xarray<T> batched_gemm(bool trans_a, bool trans_b, std::size_t batch, std::size_t M,
                           std::size_t N, std::size_t K, const T* A, const T* B) {
  xt::xarray<T> out = xt::xarray<T>::from_shape({batch, M, N});  // gemm writes every element
  T* C = out.data();
  const bool big = M * N * K >= 64 * 64 * 64;
  const bool parallel = batch > 1 && batch * M * N * K >= (1 << 15) && omp_get_max_threads() > 1 &&
                        (!big || openblas_set_num_threads != nullptr);
  int blas_threads = 0;
  if (parallel && big) {
    blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
  }
#pragma omp parallel for if (parallel)
  for (long b = 0; b < static_cast<long>(batch); ++b)
    gemm(trans_a, trans_b, M, N, K, A + b * M * K, B + b * K * N, C + b * M * N);
  if (blas_threads > 0) openblas_set_num_threads(blas_threads);
  return out;
}

}  // namespace

// self: grad @ other^T        other: self^T @ grad
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  check_defined("matmul", a);
  check_defined("matmul", b);
  const Shape sa = a.shape(), sb = b.shape();
  if (sa.empty() || sb.empty() || sa.size() > 2 || sb.size() > 2)
    throw std::invalid_argument("matmul: supports 1-D and 2-D operands, got " + shape_str(sa) +
                                " and " + shape_str(sb) + " (use bmm for batches)");
  const std::size_t ka = sa.back(), kb = sb.size() == 1 ? sb[0] : sb[0];
  if (ka != kb)
    throw std::invalid_argument("matmul: shapes " + shape_str(sa) + " and " + shape_str(sb) +
                                " cannot be multiplied (" + std::to_string(ka) + " vs " +
                                std::to_string(kb) + ")");
  if (sa.size() == 1 && sb.size() == 1)  // (m,) @ (m,) -> ()
    return reshape(matmul(unsqueeze(a, 0), unsqueeze(b, 1)), {});
  if (sa.size() == 1) return squeeze(matmul(unsqueeze(a, 0), b), 0);  // (m,) @ (m, p) -> (p,)
  if (sb.size() == 1) return squeeze(matmul(a, unsqueeze(b, 1)), 1);  // (n, m) @ (m,) -> (n,)

  xt::xarray<T> v = xt::linalg::dot(a.value(), b.value());
  return record<T>("matmul", std::move(v), {a, b}, [a, b](const Node<T>& out) {
    if (a.requires_grad())
      accumulate_grad(a, xt::xarray<T>(xt::linalg::dot(out.grad, xt::transpose(b.value()))),
                      "matmul");
    if (b.requires_grad())
      accumulate_grad(b, xt::xarray<T>(xt::linalg::dot(xt::transpose(a.value()), out.grad)),
                      "matmul");
  });
}

// self: grad.bmm(other.transpose(1, 2))        other: self.transpose(1, 2).bmm(grad)
template <class T>
Tensor<T> bmm(const Tensor<T>& a, const Tensor<T>& b) {
  check_defined("bmm", a);
  check_defined("bmm", b);
  const Shape sa = a.shape(), sb = b.shape();
  if (sa.size() != 3 || sb.size() != 3 || sa[0] != sb[0] || sa[2] != sb[1])
    throw std::invalid_argument("bmm: expected (b, n, m) and (b, m, p), got " + shape_str(sa) +
                                " and " + shape_str(sb));
  const std::size_t B = sa[0], n = sa[1], m = sa[2], p = sb[2];
  xt::xarray<T> v = batched_gemm<T>(false, false, B, n, p, m, a.value().data(), b.value().data());
  return record<T>("bmm", std::move(v), {a, b}, [a, b, B, n, m, p](const Node<T>& out) {
    if (a.requires_grad())  // (b, n, p) x (b, m, p)^T -> (b, n, m)
      accumulate_grad(
          a, batched_gemm<T>(false, true, B, n, m, p, out.grad.data(), b.value().data()), "bmm");
    if (b.requires_grad())  // (b, n, m)^T x (b, n, p) -> (b, m, p)
      accumulate_grad(
          b, batched_gemm<T>(true, false, B, m, p, n, a.value().data(), out.grad.data()), "bmm");
  });
}

template Tensor<float> matmul(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> matmul(const Tensor<double>&, const Tensor<double>&);
template Tensor<float> bmm(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> bmm(const Tensor<double>&, const Tensor<double>&);

}  // namespace tapegrad
