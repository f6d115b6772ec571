#include "ops/softmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ops/common.h"

namespace tapegrad {

namespace {

// Slices along the axis are independent, so they are split across OpenMP threads when there is
// enough work to pay for waking them (below ~32k elements one thread is faster).
constexpr std::size_t kParallelMin = 1 << 15;

// (Callers capture their pointers by value and index from the slice's own first element,
// x = in + base, then x[k * stride]: written as in[base + k * stride], the unsigned addition may
// wrap as far as the compiler knows, and it falls back to gathers and scatters.)
// Calls f(base, stride) for every slice along the axis: element k of the slice is at
// base + k * stride. When the axis is the last one (stride 1, the common case) the stride is a
// compile-time constant, so the loops in f are contiguous and vectorise (exp included).
template <class F>
void for_each_slice(const AxisSplit& s, bool parallel, F f) {
  const long slices = static_cast<long>(s.outer * s.inner);
  if (s.inner == 1) {
#pragma omp parallel for if (parallel)
    for (long sl = 0; sl < slices; ++sl)
      f(static_cast<std::size_t>(sl) * s.len, std::integral_constant<std::size_t, 1>());
  } else {
#pragma omp parallel for if (parallel)
    for (long sl = 0; sl < slices; ++sl)
      f((sl / s.inner) * s.len * s.inner + sl % s.inner, s.inner);
  }
}

// This file is compiled with -ffast-math (vectorised exp), under which the compiler may assume no
// value is infinite and fold std::isinf away; comparing the bits cannot be folded.
template <class T>
bool is_minus_infinity(T v) {
  const T inf = -std::numeric_limits<T>::infinity();
  return std::memcmp(&v, &inf, sizeof(T)) == 0;
}

// max_k x[base + k * stride]; an all -inf slice gives 0, so that x - max stays -inf, not NaN.
template <class T, class Stride>
T slice_max(const T* x, std::size_t len, Stride stride) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (std::size_t k = 0; k < len; ++k) m = std::max(m, x[k * stride]);
  return is_minus_infinity(m) ? T(0) : m;
}

}  // namespace

// x: y * (grad - sum(grad * y, axis))
template <class T>
Tensor<T> softmax(const Tensor<T>& x, long axis) {
  check_defined("softmax", x);
  const Shape shape = x.shape();
  const AxisSplit s = split_at_axis(shape, normalize_axis("softmax", axis, shape));
  xt::xarray<T> y = xt::xarray<T>::from_shape(shape);
  const T* in = x.value().data();
  T* o = y.data();
  for_each_slice(s, x.size() >= kParallelMin, [=](std::size_t base, auto stride) {
    const T* xs = in + base;
    T* ys = o + base;
    const T m = slice_max(xs, s.len, stride);
    T z = 0;
#pragma omp simd reduction(+ : z)
    for (std::size_t k = 0; k < s.len; ++k) {
      const T e = std::exp(xs[k * stride] - m);
      ys[k * stride] = e;
      z += e;
    }
    const T inv = T(1) / z;
#pragma omp simd
    for (std::size_t k = 0; k < s.len; ++k) ys[k * stride] *= inv;
  });
  return record<T>("softmax", std::move(y), {x}, [x, s](const Node<T>& out) {
    xt::xarray<T> g = xt::xarray<T>::from_shape(out.value.shape());
    const T* yv = out.value.data();
    const T* gv = out.grad.data();
    T* d = g.data();
    for_each_slice(s, out.value.size() >= kParallelMin, [=](std::size_t base, auto stride) {
      const T *ys = yv + base, *gs = gv + base;
      T* ds = d + base;
      T dot = 0;  // sum_j grad_j * y_j
#pragma omp simd reduction(+ : dot)
      for (std::size_t k = 0; k < s.len; ++k) dot += gs[k * stride] * ys[k * stride];
#pragma omp simd
      for (std::size_t k = 0; k < s.len; ++k)
        ds[k * stride] = ys[k * stride] * (gs[k * stride] - dot);
    });
    accumulate_grad(x, std::move(g), "softmax");
  });
}

// x: grad - exp(result) * sum(grad, axis)
template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, long axis) {
  check_defined("log_softmax", x);
  const Shape shape = x.shape();
  const AxisSplit s = split_at_axis(shape, normalize_axis("log_softmax", axis, shape));
  xt::xarray<T> y = xt::xarray<T>::from_shape(shape);
  const T* in = x.value().data();
  T* o = y.data();
  for_each_slice(s, x.size() >= kParallelMin, [=](std::size_t base, auto stride) {
    const T* xs = in + base;
    T* ys = o + base;
    const T m = slice_max(xs, s.len, stride);
    // (x_k - m) - log z, not x_k - (m + log z): m + log z rounds at the magnitude of m, so for
    // x = [-1000, -1001] in float the latter loses every digit of log z below 6e-5. The shifts
    // x_k - m are stored first and log z is subtracted in a second pass: written as one
    // expression, -ffast-math's reassociation folds m and log z back together.
    T z = 0;
#pragma omp simd reduction(+ : z)
    for (std::size_t k = 0; k < s.len; ++k) {
      const T d = xs[k * stride] - m;
      ys[k * stride] = d;
      z += std::exp(d);
    }
    const T log_z = std::log(z);
#pragma omp simd
    for (std::size_t k = 0; k < s.len; ++k) ys[k * stride] -= log_z;
  });
  return record<T>("log_softmax", std::move(y), {x}, [x, s](const Node<T>& out) {
    xt::xarray<T> g = xt::xarray<T>::from_shape(out.value.shape());
    const T* yv = out.value.data();
    const T* gv = out.grad.data();
    T* d = g.data();
    for_each_slice(s, out.value.size() >= kParallelMin, [=](std::size_t base, auto stride) {
      const T *ys = yv + base, *gs = gv + base;
      T* ds = d + base;
      T gsum = 0;
#pragma omp simd reduction(+ : gsum)
      for (std::size_t k = 0; k < s.len; ++k) gsum += gs[k * stride];
#pragma omp simd
      for (std::size_t k = 0; k < s.len; ++k)
        ds[k * stride] = gs[k * stride] - std::exp(ys[k * stride]) * gsum;
    });
    accumulate_grad(x, std::move(g), "log_softmax");
  });
}

template Tensor<float> softmax(const Tensor<float>&, long);
template Tensor<double> softmax(const Tensor<double>&, long);
template Tensor<float> log_softmax(const Tensor<float>&, long);
template Tensor<double> log_softmax(const Tensor<double>&, long);

}  // namespace tapegrad
