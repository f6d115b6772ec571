#include "autograd/random.h"

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>

namespace tapegrad {

double Rng::uniform() {
  return static_cast<double>(gen_() >> 11) * 0x1.0p-53;
}

double Rng::normal() {
  // Box-Muller: two uniforms -> one standard normal (the second is discarded, keeping the stream
  // simple to reason about).
  const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

namespace {

Rng& generator() {
  thread_local Rng rng(default_seed);
  return rng;
}

// A tensor of `shape` whose elements, in row-major order, are draw() rounded to T. `factory` names
// the caller in the error for a shape too large to allocate (checked_numel).
template <class T>
Tensor<T> fill(const char* factory, const Shape& shape, bool requires_grad,
               const std::function<double()>& draw) {
  checked_numel(factory, shape, sizeof(T));
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  for (T& v : a) v = static_cast<T>(draw());
  return Tensor<T>(std::move(a), requires_grad);
}

}  // namespace

void manual_seed(std::uint64_t seed) {
  generator() = Rng(seed);
}

template <class T>
Tensor<T> randn(const Shape& shape, bool requires_grad) {
  return fill<T>("randn", shape, requires_grad, [] { return generator().normal(); });
}

template <class T>
Tensor<T> rand(const Shape& shape, bool requires_grad) {
  return fill<T>("rand", shape, requires_grad, [] { return generator().uniform(); });
}

template <class T>
Tensor<T> randint(std::int64_t low, std::int64_t high, const Shape& shape) {
  if (low >= high)
    throw std::invalid_argument("randint: low (" + std::to_string(low) + ") must be below high (" +
                                std::to_string(high) + ")");
  // floor(u * range) with u a 53-bit uniform: exact integers, and the bias is below
  // range / 2^53 (nothing for the ranges a tensor of doubles can hold exactly).
  const double range = static_cast<double>(high - low);
  return fill<T>("randint", shape, false, [=] {
    const double k = std::floor(generator().uniform() * range);
    return static_cast<double>(low) + std::fmin(k, range - 1.0);
  });
}

#define TAPEGRAD_INSTANTIATE(T)                    \
  template Tensor<T> randn<T>(const Shape&, bool); \
  template Tensor<T> rand<T>(const Shape&, bool);  \
  template Tensor<T> randint<T>(std::int64_t, std::int64_t, const Shape&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
