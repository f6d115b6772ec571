// The loops behind the gaussian_logits op (ops/attention.h): Gaussian attention logits of a whole
// (n, m) matrix of query-key differences, each row shifted by its nearest key.
#pragma once

#include <cstddef>

namespace tapegrad::kernels {

// One logit: -(w^2 / 2) (dist - nearest) (dist + nearest), dist = |q - k|. Multiplied in an order
// that never forms 0 * inf: for the nearest key (dist = nearest) it is exactly 0 even when w^2
// overflows (w = 1e30 in float32), so the row keeps its maximum at 0.
template <class T>
inline T gaussian_logit(T dist, T nearest, T w) {
  return ((((dist - nearest) * w) * w) * (dist + nearest)) * T(-0.5);
}

// The logits for a whole (n, m) matrix of differences d (row-major): nearest[i] = min_j |d_ij|,
// logits[i, j] = -(w^2 / 2) (d_ij^2 - nearest_i^2).
template <class T>
void gaussian_logits(const T* d, std::size_t n, std::size_t m, T w, T* logits, T* nearest);

// Its backward, given upstream grad (n, m): writes
//   grad_d[i, j] = -w^2 d_ij grad_ij,  plus w^2 d_ij sum_k grad_ik at j = argmin_j |d_ij|
// (the logits' dependence on d through nearest_i, first argmin on ties) and returns
//   dL/dw = sum_ij grad_ij (-w) (d_ij^2 - nearest_i^2).
template <class T>
T gaussian_logits_backward(const T* d, const T* nearest, const T* grad, std::size_t n,
                           std::size_t m, T w, T* grad_d);

}  // namespace tapegrad::kernels
