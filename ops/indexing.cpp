#include "ops/indexing.h"

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xoperation.hpp>

#include "ops/common.h"

namespace tapegrad {

// self: zeros(broadcast shape).masked_scatter(mask, grad), summed back to self's shape
template <class T>
Tensor<T> masked_select(const Tensor<T>& a, const xt::xarray<bool>& mask) {
  check_defined("masked_select", a);
  const Shape mshape = to_shape(mask.shape());
  const Shape bshape = broadcast_shapes("masked_select", a.shape(), mshape);
  xt::xarray<T> ab = xt::broadcast(a.value(), bshape);
  xt::xarray<bool> mb = xt::broadcast(mask, bshape);
  std::vector<std::size_t> picked;  // flat positions in the broadcast shape
  for (std::size_t i = 0; i < mb.size(); ++i)
    if (mb.data()[i]) picked.push_back(i);
  xt::xarray<T> v = xt::zeros<T>({picked.size()});
  for (std::size_t j = 0; j < picked.size(); ++j) v.data()[j] = ab.data()[picked[j]];
  return record<T>("masked_select", std::move(v), {a},
                   [a, bshape, picked = std::move(picked)](const Node<T>& out) {
                     xt::xarray<T> g = xt::zeros<T>(bshape);
                     for (std::size_t j = 0; j < picked.size(); ++j)
                       g.data()[picked[j]] = out.grad.data()[j];
                     accumulate_grad(a, sum_to_shape(g, a.shape()), "masked_select");
                   });
}

// y = where(mask, value, a)
// self: grad.masked_fill(mask, 0), summed back to self's shape
template <class T>
Tensor<T> masked_fill(const Tensor<T>& a, const xt::xarray<bool>& mask, scalar_t<T> value) {
  check_defined("masked_fill", a);
  const Shape bshape = with_names(
      [&] { return broadcast_shapes("masked_fill", a.shape(), to_shape(mask.shape())); }, a);
  const xt::xarray<bool> mb = xt::broadcast(mask, bshape);
  xt::xarray<T> v = xt::where(mb, T(value), xt::broadcast(a.value(), bshape));
  return record<T>("masked_fill", std::move(v), {a}, [a, mb](const Node<T>& out) {
    const xt::xarray<T> g = xt::where(mb, T(0), out.grad);
    accumulate_grad(a, sum_to_shape(g, a.shape()), "masked_fill");
  });
}

xt::xarray<bool> off_diagonal_mask(std::size_t n) {
  xt::xarray<bool> m = xt::ones<bool>({n, n});
  for (std::size_t i = 0; i < n; ++i) m(i, i) = false;
  return m;
}

template Tensor<float> masked_fill(const Tensor<float>&, const xt::xarray<bool>&, scalar_t<float>);
template Tensor<double> masked_fill(const Tensor<double>&, const xt::xarray<bool>&,
                                    scalar_t<double>);
template Tensor<float> masked_select(const Tensor<float>&, const xt::xarray<bool>&);
template Tensor<double> masked_select(const Tensor<double>&, const xt::xarray<bool>&);

}  // namespace tapegrad
