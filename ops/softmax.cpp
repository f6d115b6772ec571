// softmax, log_softmax and logsumexp: each op validates its arguments, calls its kernel
// (ops/kernels/softmax.{h,cpp}, where the stable loops are) and records its backward rule.
#include "ops/softmax.h"

#include <cmath>
#include <limits>

#include "ops/common.h"
#include "ops/kernels/softmax.h"

namespace tapegrad {

// y = exp(x - max(x)) / sum(exp(x - max(x)), axis)
// self: result * (grad - sum(grad * result, dim, keepdim=true))
template <class T>
Tensor<T> softmax(const Tensor<T>& x, long axis) {
  check_defined("softmax", x);
  const AxisSplit s = with_names(
      [&] { return split_at_axis(x.shape(), normalize_axis("softmax", axis, x.shape())); }, x);
  xt::xarray<T> y = xt::xarray<T>::from_shape(x.shape());
  kernels::softmax(x.value().data(), y.data(), s);
  return record<T>("softmax", std::move(y), {x},
                   [x, s](const xt::xarray<T>& grad, const Node<T>& out) {
                     xt::xarray<T> g = xt::xarray<T>::from_shape(out.value.shape());
                     kernels::softmax_backward(out.value.data(), grad.data(), g.data(), s);
                     accumulate_grad(x, std::move(g), "softmax");
                   });
}

// y = (x - max(x)) - log(sum(exp(x - max(x)), axis))
// self: grad - exp(result) * sum(grad, dim, keepdim=true)
template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, long axis) {
  check_defined("log_softmax", x);
  const AxisSplit s = with_names(
      [&] { return split_at_axis(x.shape(), normalize_axis("log_softmax", axis, x.shape())); }, x);
  xt::xarray<T> y = xt::xarray<T>::from_shape(x.shape());
  kernels::log_softmax(x.value().data(), y.data(), s);
  return record<T>("log_softmax", std::move(y), {x},
                   [x, s](const xt::xarray<T>& grad, const Node<T>& out) {
                     xt::xarray<T> g = xt::xarray<T>::from_shape(out.value.shape());
                     kernels::log_softmax_backward(out.value.data(), grad.data(), g.data(), s);
                     accumulate_grad(x, std::move(g), "log_softmax");
                   });
}

namespace {

// log sum_k exp(x[k * stride]) over one slice of `len` elements, `stride` apart:
// m + log sum_k exp(x_k - m) with m the slice's maximum. Every exp is in [0, 1] and the max's is 1,
// so the sum is in [1, len]: no overflow, no log(0). A NaN anywhere gives NaN; m = +inf gives +inf
// and m = -inf (every entry -inf, or no entry) gives -inf, as torch.logsumexp does.
template <class T>
T logsumexp_slice(const T* x, std::size_t len, std::size_t stride) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::size_t k = 0; k < len; ++k) {
    const T v = x[k * stride];
    if (std::isnan(v)) return v;
    if (v > m) m = v;
  }
  if (std::isinf(m)) return m;
  T s = 0;
  for (std::size_t k = 0; k < len; ++k) s += std::exp(x[k * stride] - m);
  return m + std::log(s);
}

}  // namespace

// y = m + log(sum(exp(x - m), axis)), m = max(x, axis); the axis is removed from the shape.
// logsumexp: self: grad * exp(self - result)   (grad and result unsqueezed back along the axis)
template <class T>
Tensor<T> logsumexp(const Tensor<T>& x, long axis) {
  check_defined("logsumexp", x);
  const std::size_t ax =
      with_names([&] { return normalize_axis("logsumexp", axis, x.shape()); }, x);
  const AxisSplit s = split_at_axis(x.shape(), ax);
  Shape out_shape = x.shape();
  out_shape.erase(out_shape.begin() + static_cast<long>(ax));
  xt::xarray<T> y = xt::xarray<T>::from_shape(out_shape);
  const T* xd = x.value().data();
  // Element (o, k, i) of x is xd[(o * len + k) * inner + i]; it reduces into y[o * inner + i].
  for (std::size_t o = 0; o < s.outer; ++o)
    for (std::size_t i = 0; i < s.inner; ++i)
      y.data()[o * s.inner + i] = logsumexp_slice(xd + o * s.len * s.inner + i, s.len, s.inner);
  return record<T>("logsumexp", std::move(y), {x},
                   [x, s](const xt::xarray<T>& grad, const Node<T>& out) {
                     xt::xarray<T> g = xt::xarray<T>::from_shape(x.value().shape());
                     const T* xd = x.value().data();
                     for (std::size_t o = 0; o < s.outer; ++o)
                       for (std::size_t k = 0; k < s.len; ++k)
                         for (std::size_t i = 0; i < s.inner; ++i) {
                           const std::size_t e = (o * s.len + k) * s.inner + i, r = o * s.inner + i;
                           g.data()[e] = grad.data()[r] * std::exp(xd[e] - out.value.data()[r]);
                         }
                     accumulate_grad(x, std::move(g), "logsumexp");
                   });
}

template Tensor<float> softmax(const Tensor<float>&, long);
template Tensor<double> softmax(const Tensor<double>&, long);
template Tensor<float> log_softmax(const Tensor<float>&, long);
template Tensor<double> log_softmax(const Tensor<double>&, long);
template Tensor<float> logsumexp(const Tensor<float>&, long);
template Tensor<double> logsumexp(const Tensor<double>&, long);

}  // namespace tapegrad
