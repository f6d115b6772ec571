#include "ops/linalg.h"

#include <xtensor/xmanipulation.hpp>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/kernels/linalg.h"
#include "ops/shape.h"

namespace tapegrad {

namespace {

// (..., n, m) @ (..., m, p) with broadcast batch dimensions, from ops: each operand is broadcast
// to the common batch shape (adding zeros of that shape: add's backward sums the gradient back
// over the broadcast axes), flattened to (B, n, m) and (B, m, p), multiplied by bmm, and the
// result reshaped to (..., n, p). 1-D operands are promoted as in the 2-D case.
template <class T>
Tensor<T> batched_matmul(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.dim() == 1) return squeeze(batched_matmul(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(batched_matmul(a, unsqueeze(b, 1)), -1);
  const Shape sa = a.shape(), sb = b.shape();
  const std::size_t n = sa[sa.size() - 2], m = sa.back(), p = sb.back();
  if (m != sb[sb.size() - 2])
    throw std::invalid_argument("matmul: shapes " + describe(a) + " and " + describe(b) +
                                " cannot be multiplied (" + std::to_string(m) + " vs " +
                                std::to_string(sb[sb.size() - 2]) + ")");
  Shape batch;
  try {
    batch = broadcast_shapes("matmul", Shape(sa.begin(), sa.end() - 2),
                             Shape(sb.begin(), sb.end() - 2));
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("matmul: the batch dimensions of " + describe(a) + " and " +
                                describe(b) + " cannot be broadcast together");
  }
  auto to_batch = [&](const Tensor<T>& x, std::size_t rows, std::size_t cols) {
    Shape full = batch;
    full.push_back(rows), full.push_back(cols);
    const Tensor<T> expanded =
        x.shape() == full ? x : x + Tensor<T>(xt::xarray<T>(xt::zeros<T>(full)));
    // The batch count written out, not -1: -1 cannot be inferred when rows or cols is 0.
    return reshape(expanded, {static_cast<long>(numel(batch)), static_cast<long>(rows),
                              static_cast<long>(cols)});
  };
  std::vector<long> out_shape(batch.begin(), batch.end());
  out_shape.push_back(static_cast<long>(n)), out_shape.push_back(static_cast<long>(p));
  return reshape(bmm(to_batch(a, n, m), to_batch(b, m, p)), out_shape);
}

}  // namespace

// self: grad @ other^T        other: self^T @ grad
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  check_defined("matmul", a);
  check_defined("matmul", b);
  const Shape sa = a.shape(), sb = b.shape();
  if (sa.empty() || sb.empty())
    throw std::invalid_argument("matmul: both operands need at least one dimension, got " +
                                describe(a) + " and " + describe(b));
  if (sa.size() > 2 || sb.size() > 2) return batched_matmul(a, b);
  const std::size_t ka = sa.back(), kb = sb[0];  // (m,) or (m, p): m is the first extent
  if (ka != kb)
    throw std::invalid_argument("matmul: shapes " + describe(a) + " and " + describe(b) +
                                " cannot be multiplied (" + std::to_string(ka) + " vs " +
                                std::to_string(kb) + ")");
  if (sa.size() == 1 && sb.size() == 1)  // (m,) @ (m,) -> ()
    return reshape(matmul(unsqueeze(a, 0), unsqueeze(b, 1)), {});
  if (sa.size() == 1) return squeeze(matmul(unsqueeze(a, 0), b), 0);  // (m,) @ (m, p) -> (p,)
  if (sb.size() == 1) return squeeze(matmul(a, unsqueeze(b, 1)), 1);  // (n, m) @ (m,) -> (n,)

  // The same kernel as bmm, as one batch entry: it handles every size, 0 included.
  const std::size_t n = sa[0], m = sa[1], p = sb[1];
  xt::xarray<T> v =
      kernels::batched_gemm<T>(false, false, 1, n, p, m, a.value().data(), b.value().data());
  v.reshape({n, p});
  return record<T>(
      "matmul", std::move(v), {a, b}, [a, b, n, m, p](const xt::xarray<T>& grad, const Node<T>&) {
        if (a.requires_grad()) {  // (n, p) x (m, p)^T -> (n, m)
          xt::xarray<T> ga =
              kernels::batched_gemm<T>(false, true, 1, n, m, p, grad.data(), b.value().data());
          ga.reshape({n, m});
          accumulate_grad(a, std::move(ga), "matmul");
        }
        if (b.requires_grad()) {  // (n, m)^T x (n, p) -> (m, p)
          xt::xarray<T> gb =
              kernels::batched_gemm<T>(true, false, 1, m, p, n, a.value().data(), grad.data());
          gb.reshape({m, p});
          accumulate_grad(b, std::move(gb), "matmul");
        }
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
  return record<T>(
      "bmm", std::move(v), {a, b}, [a, b, B, n, m, p](const xt::xarray<T>& grad, const Node<T>&) {
        if (a.requires_grad())  // (b, n, p) x (b, m, p)^T -> (b, n, m)
          accumulate_grad(
              a, kernels::batched_gemm<T>(false, true, B, n, m, p, grad.data(), b.value().data()),
              "bmm");
        if (b.requires_grad())  // (b, n, m)^T x (b, n, p) -> (b, m, p)
          accumulate_grad(
              b, kernels::batched_gemm<T>(true, false, B, m, p, n, a.value().data(), grad.data()),
              "bmm");
      });
}

template Tensor<float> matmul(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> matmul(const Tensor<double>&, const Tensor<double>&);
template Tensor<float> bmm(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> bmm(const Tensor<double>&, const Tensor<double>&);

}  // namespace tapegrad
