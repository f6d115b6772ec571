// softmax and log_softmax: the math is in ops/kernels/softmax.{h,cpp}, one stable kernel shared
// with the fused attention op; here each op validates, calls it and records its backward.
#include "ops/softmax.h"

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
  return record<T>("softmax", std::move(y), {x}, [x, s](const Node<T>& out) {
    xt::xarray<T> g = xt::xarray<T>::from_shape(out.value.shape());
    kernels::softmax_backward(out.value.data(), out.grad.data(), g.data(), s);
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
  return record<T>("log_softmax", std::move(y), {x}, [x, s](const Node<T>& out) {
    xt::xarray<T> g = xt::xarray<T>::from_shape(out.value.shape());
    kernels::log_softmax_backward(out.value.data(), out.grad.data(), g.data(), s);
    accumulate_grad(x, std::move(g), "log_softmax");
  });
}

template Tensor<float> softmax(const Tensor<float>&, long);
template Tensor<double> softmax(const Tensor<double>&, long);
template Tensor<float> log_softmax(const Tensor<float>&, long);
template Tensor<double> log_softmax(const Tensor<double>&, long);

}  // namespace tapegrad
