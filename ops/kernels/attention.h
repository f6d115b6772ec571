// The loops behind nw_attention_pool (ops/attention.h): Gaussian attention pooling of scalar keys,
// one query row at a time, over only the keys whose weight does not underflow.
//
// For query q, keys k_j, values v_j and width w, with d_j = q - k_j and nearest = min_j |d_j|:
//   excess_j = (|d_j| - nearest) (|d_j| + nearest)     ( = d_j^2 - nearest^2 >= 0 )
//   logit_j  = -(w^2 / 2) excess_j                      ( = -(d_j w)^2 / 2 + a per-row constant )
//   p_j      = softmax_j(logit_j),   f = sum_j p_j v_j
// The per-row constant (nearest w)^2 / 2 does not change the softmax. Written this way nothing
// overflows (d^2 would, past |d| = 1.8e19 in float32), the nearest key's logit is exactly 0 (so a
// row never sums to 0, however far the query is), and every term is computed without cancellation.
// NWKernelRegression::forward (models/) builds the very same logits from ops: that is the readable
// path this kernel is tested against.
//
// The passes. Per query row the forward makes one pass over the window's keys that computes
// e_j = exp(logit_j) (the exp's arithmetic is most of the op's time) together with its sums
// z = sum_j e_j and sum_j e_j v_j (f = that / z; p_j = e_j / z is never stored, the softmax's
// divide is applied to the sums), and writes one row buffer. Only when the backward will need
// them, a second pass makes the slopes below, once f is known: from the buffer e_j excess_j and
// v_j when only w needs its gradient (training), else from e_j, k_j and v_j. The key gradients
// redo the first pass (the same e_j and z, bit for bit) and add their terms in another. Not
// through kernels::softmax_row_from_max: it would need a buffer of logits written by one more
// pass, and its own normalising pass (see attention.cpp).
//
// The window. exp(logit) is exactly 0 once logit < -kUnderflow<T> (the result is below the
// smallest normal number, which the exp kernel flushes to 0). So only keys with
// |d| <= sqrt(nearest^2 + 2 kUnderflow / w^2) matter; with the keys sorted once, they are one
// contiguous range found by binary search. Sharp attention (large w) means short windows: the cost
// is O(n * keys in window) instead of O(n * m), and skipping the others changes nothing but the
// order of the sums.
#pragma once

#include <cstddef>
#include <limits>
#include <vector>

namespace tapegrad::kernels {

// One logit: -(w^2 / 2) (dist - nearest) (dist + nearest), dist = |q - k|. Multiplied in an order
// that never forms 0 * inf: for the nearest key (dist = nearest) it is exactly 0 even when w^2
// overflows (w = 1e30 in float32), so the row keeps its maximum at 0. The fused op and the
// gaussian_logits op both use this one expression.
template <class T>
inline T gaussian_logit(T dist, T nearest, T w) {
  return ((((dist - nearest) * w) * w) * (dist + nearest)) * T(-0.5);
}

// -log of the smallest normal number, plus a margin of 1: past it exp() is 0 (see exp.h).
template <class T>
constexpr T kUnderflow = std::numeric_limits<T>::max_exponent10 > 38 ? T(709.4) : T(88.4);

// Keys sorted ascending, their values in the same order, and the way back to the caller's order.
template <class T>
struct SortedKeys {
  std::vector<T> key, value;           // (m,) sorted by key
  std::vector<std::size_t> original;   // original[s]: caller's index of sorted key s
  std::vector<std::size_t> sorted_at;  // sorted_at[j]: sorted position of the caller's key j
};

template <class T>
SortedKeys<T> sort_keys(const T* keys, const T* values, std::size_t m);

// Sorted positions [lo, hi) of the keys query q attends to; `skip` (a sorted position, or
// kNoSkip) is its own key under leave-one-out, inside the window with weight exactly 0.
struct KeyWindow {
  std::size_t lo = 0, hi = 0, skip = 0;
};
constexpr std::size_t kNoSkip = std::numeric_limits<std::size_t>::max();

// Per query row: the output f_i and, when asked for, the two sums the backward needs,
//   slope_w_i = sum_j p_ij (v_j - f_i) excess_ij,   slope_q_i = sum_j p_ij (v_j - f_i) d_ij.
// (Two passes: f_i first, then sums of (v_j - f_i), never the cancelling sum(p v x) - f sum(p x).)
template <class T>
struct PoolRows {
  std::vector<T> f, slope_w, slope_q;  // slope_w, slope_q: (n,) when computed, else empty
  bool has_slope_w = false, has_slope_q = false;
};

// Forward over every query. queries (n,); leave_one_out: query i is key i, which it skips.
template <class T>
PoolRows<T> gaussian_pool_rows(const T* queries, std::size_t n, const SortedKeys<T>& keys, T w,
                               bool leave_one_out, bool want_slope_w, bool want_slope_q);

// Backward to keys and values, given upstream grad (n,) and the forward's rows:
//   grad_keys_j   += sum_i grad_i p_ij (v_j - f_i) w^2 d_ij
//   grad_values_j += sum_i grad_i p_ij
// in the caller's key order (m,).
template <class T>
void gaussian_pool_key_grads(const T* queries, std::size_t n, const SortedKeys<T>& keys, T w,
                             bool leave_one_out, const T* grad, const PoolRows<T>& rows,
                             T* grad_keys, T* grad_values);

// The dense attention matrix p (n, m), row-major, in the caller's key order (for plots).
template <class T>
void gaussian_attention_matrix(const T* queries, std::size_t n, const SortedKeys<T>& keys, T w,
                               bool leave_one_out, T* p);

// The same logits for a whole (n, m) matrix of differences d (row-major), as the gaussian_logits op
// computes them: nearest[i] = min_j |d_ij|, logits[i, j] = -(w^2 / 2) excess_ij.
template <class T>
void gaussian_logits(const T* d, std::size_t n, std::size_t m, T w, T* logits, T* nearest);

// Its backward, given upstream grad (n, m): writes
//   grad_d[i, j] = -w^2 d_ij grad_ij,  plus w^2 d_ij sum_k grad_ik at j = argmin_j |d_ij|
// (the logits' dependence on d through nearest_i, first argmin on ties) and returns
//   dL/dw = sum_ij grad_ij (-w) excess_ij.
template <class T>
T gaussian_logits_backward(const T* d, const T* nearest, const T* grad, std::size_t n,
                           std::size_t m, T w, T* grad_d);

}  // namespace tapegrad::kernels
