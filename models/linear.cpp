#include "models/linear.h"

#include <cmath>
#include <stdexcept>

#include "ops/elementwise.h"
#include "ops/linalg.h"
#include "ops/shape.h"

namespace tapegrad {

template <class T>
Linear<T>::Linear(std::size_t in_features, std::size_t out_features, bool bias)
    : in_(in_features), out_(out_features) {
  // One draw at a time from the thread's generator: rand({1}) is its next uniform, so the layer
  // takes the same numbers an Rng of the same seed gives.
  init(bias, [] { return rand<double>(Shape{1}).value()(0); });
}

template <class T>
Linear<T>::Linear(std::size_t in_features, std::size_t out_features, bool bias, Rng& rng)
    : in_(in_features), out_(out_features) {
  init(bias, [&rng] { return rng.uniform(); });
}

template <class T>
void Linear<T>::init(bool bias, const std::function<double()>& uniform) {
  if (in_ == 0 || out_ == 0)
    throw std::invalid_argument("Linear: in_features and out_features must be >= 1");
  // torch: kaiming_uniform_(W, a=sqrt(5)) gives bound sqrt(6 / ((1 + 5) in)) = 1 / sqrt(in); the
  // bias uses the same bound.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  auto draw = [&](const Shape& shape) {
    xt::xarray<T> a = xt::zeros<T>(shape);
    for (T& v : a) v = static_cast<T>(bound * (2.0 * uniform() - 1.0));
    return Tensor<T>(std::move(a), true);
  };
  weight_ = draw({out_, in_}).set_name("Linear.weight");
  if (bias) bias_ = draw({out_}).set_name("Linear.bias");
}

template <class T>
Tensor<T> Linear<T>::forward(const Tensor<T>& x) const {
  if (!x.defined() || x.dim() == 0 || x.shape().back() != in_)
    throw std::invalid_argument("Linear: input " + (x.defined() ? describe(x) : "(undefined)") +
                                " must have last axis " + std::to_string(in_));
  // (..., in) -> (N, in) @ (in, out) -> (N, out) -> (..., out)
  std::vector<long> out_shape;
  for (std::size_t i = 0; i + 1 < x.dim(); ++i)
    out_shape.push_back(static_cast<long>(x.shape()[i]));
  out_shape.push_back(static_cast<long>(out_));
  Tensor<T> y = matmul(reshape(x, {-1, static_cast<long>(in_)}), transpose(weight_, 0, 1));
  if (bias_.defined()) y = y + bias_;  // (N, out) + (out,): broadcast over rows
  return reshape(y, out_shape);
}

template <class T>
std::vector<Tensor<T>> Linear<T>::parameters() const {
  if (bias_.defined()) return {weight_, bias_};
  return {weight_};
}

template class Linear<float>;
template class Linear<double>;

}  // namespace tapegrad
