#include "ops/dropout.h"

#include <string>

#include "autograd/random.h"
#include "ops/common.h"

namespace tapegrad {

// input: grad * mask / (1 - p)
template <class T>
Tensor<T> dropout(const Tensor<T>& input, scalar_t<T> p, bool training) {
  check_defined("dropout", input);
  if (!(p >= T(0) && p <= T(1)))
    throw std::invalid_argument("dropout: probability p must be in [0, 1], got " +
                                std::to_string(p) + " for " + describe(input));
  if (!training || p == T(0)) return input;
  // The scale each kept element gets: 1 / (1 - p), and 0 for every element when p = 1.
  const T keep_scale = p == T(1) ? T(0) : T(1) / (T(1) - p);
  const xt::xarray<double> u = rand<double>(input.shape()).value();
  xt::xarray<T> scale = xt::xarray<T>::from_shape(input.value().shape());
  for (std::size_t i = 0; i < scale.size(); ++i)
    scale.data()[i] = u.data()[i] < static_cast<double>(p) ? T(0) : keep_scale;
  xt::xarray<T> v = input.value() * scale;
  return record<T>("dropout", std::move(v), {input},
                   [input, scale](const xt::xarray<T>& grad, const Node<T>&) {
                     accumulate_grad(input, xt::xarray<T>(grad * scale), "dropout");
                   });
}

template Tensor<float> dropout(const Tensor<float>&, scalar_t<float>, bool);
template Tensor<double> dropout(const Tensor<double>&, scalar_t<double>, bool);

}  // namespace tapegrad
