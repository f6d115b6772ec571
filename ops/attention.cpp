#include "ops/attention.h"

#include <memory>

#include <xtensor/xbuilder.hpp>

#include "ops/common.h"
#include "ops/kernels/attention.h"

namespace tapegrad {

// gaussian_logits: -(w^2 / 2) (d^2 - nearest^2), nearest_i = min_j |d_ij|
// d: -w^2 d * grad, plus at j = argmin_j |d_ij|: w^2 d_ij * sum_k grad_ik (through nearest_i)
// w: sum(grad * -w (d^2 - nearest^2))
// (Under a softmax the term through nearest_i vanishes, sum_k grad_ik = 0, but the op alone is
// differentiated exactly, so gradcheck holds for it by itself.)
template <class T>
Tensor<T> gaussian_logits(const Tensor<T>& d, const Tensor<T>& w) {
  check_dim("gaussian_logits", d, 2, "d");
  check_defined("gaussian_logits", w);
  if (w.size() != 1)
    throw std::invalid_argument("gaussian_logits: w must have one element, got shape " +
                                shape_str(w.shape()));
  const std::size_t n = d.shape()[0], m = d.shape()[1];
  const T width = w.value().data()[0];
  xt::xarray<T> logits = xt::xarray<T>::from_shape({n, m});
  auto nearest = std::make_shared<std::vector<T>>(n);
  kernels::gaussian_logits(d.value().data(), n, m, width, logits.data(), nearest->data());
  return record<T>("gaussian_logits", std::move(logits), {d, w}, [=](const Node<T>& out) {
    xt::xarray<T> grad_d = xt::xarray<T>::from_shape({n, m});
    const T grad_w = kernels::gaussian_logits_backward(d.value().data(), nearest->data(),
                                                       out.grad.data(), n, m, width, grad_d.data());
    if (d.requires_grad()) accumulate_grad(d, std::move(grad_d), "gaussian_logits");
    if (w.requires_grad())
      accumulate_grad(w, xt::xarray<T>(xt::full_like(w.value(), grad_w)), "gaussian_logits");
  });
}

template Tensor<float> gaussian_logits(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> gaussian_logits(const Tensor<double>&, const Tensor<double>&);

}  // namespace tapegrad
