#include "ops/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/common.h"

namespace tapegrad {

namespace {

// Slices along the axis are independent, so they are split across OpenMP threads when there is
// enough work to pay for waking them (below ~32k elements one thread is faster).
constexpr std::size_t kParallelMin = 1 << 15;

}  // namespace

// x: y * (grad - sum(grad * y, axis))
template <class T>
Tensor<T> softmax(const Tensor<T>& x, long axis) {
  check_defined("softmax", x);
  const Shape shape = x.shape();
  const AxisSplit s = split_at_axis(shape, normalize_axis("softmax", axis, shape));
  xt::xarray<T> y = xt::zeros<T>(shape);
  const T* in = x.value().data();
  T* o = y.data();
  const long slices = static_cast<long>(s.outer * s.inner);
#pragma omp parallel for if (x.size() >= kParallelMin)
  for (long sl = 0; sl < slices; ++sl) {
    const std::size_t base = (sl / s.inner) * s.len * s.inner + sl % s.inner;
    T m = -std::numeric_limits<T>::infinity();
    for (std::size_t k = 0; k < s.len; ++k) m = std::max(m, in[base + k * s.inner]);
    if (std::isinf(m) && m < 0) m = T(0);  // every logit -inf: avoid (-inf) - (-inf) = NaN below
    T z = 0;
    for (std::size_t k = 0; k < s.len; ++k) {
      const T e = std::exp(in[base + k * s.inner] - m);
      o[base + k * s.inner] = e;
      z += e;
    }
    const T inv = T(1) / z;
    for (std::size_t k = 0; k < s.len; ++k) o[base + k * s.inner] *= inv;
  }
  return record<T>("softmax", std::move(y), {x}, [x, s](const Node<T>& out) {
    xt::xarray<T> g = xt::zeros<T>(out.value.shape());
    const T* yv = out.value.data();
    const T* gv = out.grad.data();
    T* d = g.data();
    const long slices = static_cast<long>(s.outer * s.inner);
#pragma omp parallel for if (out.value.size() >= kParallelMin)
    for (long sl = 0; sl < slices; ++sl) {
      const std::size_t base = (sl / s.inner) * s.len * s.inner + sl % s.inner;
      T dot = 0;  // sum_j grad_j * y_j
      for (std::size_t k = 0; k < s.len; ++k)
        dot += gv[base + k * s.inner] * yv[base + k * s.inner];
      for (std::size_t k = 0; k < s.len; ++k) {
        const std::size_t i = base + k * s.inner;
        d[i] = yv[i] * (gv[i] - dot);
      }
    }
    accumulate_grad(x, std::move(g), "softmax");
  });
}

// x: grad - exp(result) * sum(grad, axis)
template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, long axis) {
  check_defined("log_softmax", x);
  const Shape shape = x.shape();
  const AxisSplit s = split_at_axis(shape, normalize_axis("log_softmax", axis, shape));
  xt::xarray<T> y = xt::zeros<T>(shape);
  const T* in = x.value().data();
  T* o = y.data();
  const long slices = static_cast<long>(s.outer * s.inner);
#pragma omp parallel for if (x.size() >= kParallelMin)
  for (long sl = 0; sl < slices; ++sl) {
    const std::size_t base = (sl / s.inner) * s.len * s.inner + sl % s.inner;
    T m = -std::numeric_limits<T>::infinity();
    for (std::size_t k = 0; k < s.len; ++k) m = std::max(m, in[base + k * s.inner]);
    if (std::isinf(m) && m < 0) m = T(0);
    T z = 0;
    for (std::size_t k = 0; k < s.len; ++k) z += std::exp(in[base + k * s.inner] - m);
    const T lse = m + std::log(z);  // log sum_j exp(x_j)
    for (std::size_t k = 0; k < s.len; ++k) o[base + k * s.inner] = in[base + k * s.inner] - lse;
  }
  return record<T>("log_softmax", std::move(y), {x}, [x, s](const Node<T>& out) {
    xt::xarray<T> g = xt::zeros<T>(out.value.shape());
    const T* yv = out.value.data();
    const T* gv = out.grad.data();
    T* d = g.data();
    const long slices = static_cast<long>(s.outer * s.inner);
#pragma omp parallel for if (out.value.size() >= kParallelMin)
    for (long sl = 0; sl < slices; ++sl) {
      const std::size_t base = (sl / s.inner) * s.len * s.inner + sl % s.inner;
      T gsum = 0;
      for (std::size_t k = 0; k < s.len; ++k) gsum += gv[base + k * s.inner];
      for (std::size_t k = 0; k < s.len; ++k) {
        const std::size_t i = base + k * s.inner;
        d[i] = gv[i] - std::exp(yv[i]) * gsum;
      }
    }
    accumulate_grad(x, std::move(g), "log_softmax");
  });
}

template Tensor<float> softmax(const Tensor<float>&, long);
template Tensor<double> softmax(const Tensor<double>&, long);
template Tensor<float> log_softmax(const Tensor<float>&, long);
template Tensor<double> log_softmax(const Tensor<double>&, long);

}  // namespace tapegrad
