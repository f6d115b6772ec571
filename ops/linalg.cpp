#include "ops/linalg.h"

#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xmanipulation.hpp>

#include "ops/common.h"
#include "ops/kernels/linalg.h"
#include "ops/shape.h"

namespace tapegrad {

// self: grad @ other^T        other: self^T @ grad
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  check_defined("matmul", a);
  check_defined("matmul", b);
  const Shape sa = a.shape(), sb = b.shape();
  if (sa.empty() || sb.empty() || sa.size() > 2 || sb.size() > 2)
    throw std::invalid_argument("matmul: supports 1-D and 2-D operands, got " + describe(a) +
                                " and " + describe(b) + " (use bmm for batches)");
  const std::size_t ka = sa.back(), kb = sb[0];  // (m,) or (m, p): m is the first extent
  if (ka != kb)
    throw std::invalid_argument("matmul: shapes " + describe(a) + " and " + describe(b) +
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
    throw std::invalid_argument("bmm: expected (b, n, m) and (b, m, p), got " + describe(a) +
                                " and " + describe(b));
  const std::size_t B = sa[0], n = sa[1], m = sa[2], p = sb[2];
  xt::xarray<T> v =
      kernels::batched_gemm<T>(false, false, B, n, p, m, a.value().data(), b.value().data());
  return record<T>("bmm", std::move(v), {a, b}, [a, b, B, n, m, p](const Node<T>& out) {
    if (a.requires_grad())  // (b, n, p) x (b, m, p)^T -> (b, n, m)
      accumulate_grad(
          a, kernels::batched_gemm<T>(false, true, B, n, m, p, out.grad.data(), b.value().data()),
          "bmm");
    if (b.requires_grad())  // (b, n, m)^T x (b, n, p) -> (b, m, p)
      accumulate_grad(
          b, kernels::batched_gemm<T>(true, false, B, m, p, n, a.value().data(), out.grad.data()),
          "bmm");
  });
}

template Tensor<float> matmul(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> matmul(const Tensor<double>&, const Tensor<double>&);
template Tensor<float> bmm(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> bmm(const Tensor<double>&, const Tensor<double>&);

}  // namespace tapegrad
