// The loops behind the fused Nadaraya-Watson ops (ops/fused/nw_attention.h): Gaussian attention of
// queries q (n, d) over keys k (m, d) with widths w (d,), one query row at a time, never an (n, m)
// matrix (a few (m,) buffers per thread), visiting only the keys whose weight does not underflow.
//
// The logits, relative to the row's nearest key k* (d_s = q - k_s, d* = q - k*):
//   A_sl    = ((k*_l - k_sl) w_l) (d_sl / 2 + d*_l / 2)        ( = (w_l / 2) (d_sl^2 - d*_l^2) )
//   logit_s = -sum_l w_l A_sl               ( = -|(q - k_s) w|^2 / 2 plus a per-row constant )
//   p_s = softmax_s(logit_s),   f = sum_s p_s v_s
// The per-row constant |(q - k*) w|^2 / 2 does not change the softmax. Written this way:
// - the nearest key's logit is exactly 0 and no other is positive (d = 1: exactly, the search
//   compares the keys as the logits do; d >= 2: a key that rounding puts nearer becomes k*), so
//   exp never overflows and a row never sums to 0, however far the query;
// - k*_l - k_sl is formed from the keys: no cancellation between two large squares when the query
//   is far from every key, and d / 2 + d* / 2 does not overflow where d + d* would;
// - (k* - k) w is formed first: the nearest key's logit is 0 even when w^2 overflows;
// - for d >= 2 each coordinate's term is stored before it is added (no fused multiply-add across
//   coordinates), so that two keys at the same distance get the same logit: a tie stays a tie.
// With g_s = dL/dlogit_s (sum_s g_s = 0, which lets each sum subtract its row constant):
//   dL/dq_l  = -w_l^2 sum_s g_s (k*_l - k_sl),   dL/dk_sl = w_l^2 g_s d_sl,
//   dL/dw_l  = -2 sum_s g_s A_sl                 ( = -w_l sum_s g_s d_sl^2 ).
//
// The window. Keys are sorted once per call along the coordinate `axis` with the largest
// |w_a| * spread (within each class, for the cross-entropy). A key whose term of that coordinate
// alone exceeds |(q - k*) w|^2 + 2 kUnderflow has a logit below -kUnderflow and a weight of
// exactly 0 (fast_exp flushes it), so a row visits one contiguous range of keys, found by binary
// search: sharp attention (large w) means short windows, O(n * keys in window) instead of O(n m).
// The nearest key is found by a search outward from q_a's place that stops where the axis term
// alone exceeds the best distance found.
//
// Rows are split across OpenMP threads once n * m reaches kParallelGrain (parallel.h), with
// flush-to-zero in each thread; sums over rows (the key gradients) go to per-thread partials that
// are added in thread order, so results do not depend on timing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace tapegrad::kernels {

// -log of the smallest normal number, plus a margin of 1: past it exp() is 0 (see exp.h).
template <class T>
constexpr T kUnderflow = std::numeric_limits<T>::max_exponent10 > 38 ? T(709.4) : T(88.4);

// One problem: queries (n, d) and keys (m, d) row-major, w (d,) (a shared width repeated d
// times). With leave_one_out (n == m), row i skips key i.
template <class T>
struct NwProblem {
  const T *queries = nullptr, *keys = nullptr, *w = nullptr;
  std::size_t n = 0, m = 0, d = 0;
  bool leave_one_out = false;
};

// The keys sorted once per call, coordinate-major: key[l * m + s] is coordinate l of sorted key s,
// sorted by label (when given) and then by coordinate `axis`. original[s] is the caller's index of
// sorted key s, sorted_at its inverse. value (C, m) and label (m,) in the same order.
template <class T>
struct NwKeys {
  std::size_t m = 0, d = 0, C = 0, axis = 0;
  std::vector<T> key, value, w;
  std::vector<std::int64_t> label;
  std::vector<std::size_t> bin;  // one-hot values (C > 16): the class of each key, else empty
  std::vector<std::size_t> original, sorted_at;
};

// values (m, C) row-major or null (C = 0); labels (m,) or null (one class).
template <class T>
NwKeys<T> nw_sort_keys(const NwProblem<T>& a, const T* values, std::size_t C,
                       const std::int64_t* labels);

// The pooling's forward: f (n, C), and when asked the per-row sums its backward needs,
//   slope_w[i, c, l] = sum_s p_is (v_sc - f_ic) A_isl,
//   slope_q[i, c, l] = sum_s p_is (v_sc - f_ic) (k*_il - k_sl) w_l
// (two passes: f first, then sums of (v - f), never the cancelling sum(p v x) - f sum(p x)).
template <class T>
struct NwPool {
  std::vector<T> f, slope_w, slope_q;  // (n, C), (n, C, d) or empty
};

template <class T>
NwPool<T> nw_pool_forward(const NwProblem<T>& a, const NwKeys<T>& keys, bool want_slope_w,
                          bool want_slope_q);

// Given the upstream grad (n, C): adds into grad_queries (n, d), grad_keys (m, d), grad_values
// (m, C) and grad_w (d,); a null pointer: not wanted. grad_w and grad_queries need the slopes.
template <class T>
void nw_pool_backward(const NwProblem<T>& a, const NwKeys<T>& keys, const NwPool<T>& pool,
                      const T* grad, T* grad_queries, T* grad_keys, T* grad_values, T* grad_w);

// L = -sum_i log p_i[y_i], p_i[c] = sum_{s: label_s = c} p_is, as
//   L_i = log Z_i - log Zc_i - logit_i(jc*)
// with Z_i the sum of the row's exp(logit) relative to its nearest key, Zc_i the same over the
// keys of class y_i relative to the nearest of them, jc*: finite whenever the row has a key of its
// class (+inf when it has none). keys: sorted without labels; by_class: sorted with them.
template <class T>
T nw_cross_entropy_forward(const NwProblem<T>& a, const NwKeys<T>& keys, const NwKeys<T>& by_class,
                           const std::int64_t* query_labels);

// Its backward for the upstream scalar grad: adds into grad_queries (n, d), grad_keys (m, d) and
// grad_w (d,), null pointers skipped. dL_i/dlogit_s = grad (p_is - pc_is), pc the softmax over the
// keys of the row's class.
template <class T>
void nw_cross_entropy_backward(const NwProblem<T>& a, const NwKeys<T>& keys,
                               const NwKeys<T>& by_class, const std::int64_t* query_labels, T grad,
                               T* grad_queries, T* grad_keys, T* grad_w);

// The attention matrix p (n, m), row-major, in the caller's key order (for plots).
template <class T>
void nw_attention_matrix(const NwProblem<T>& a, const NwKeys<T>& keys, T* p);

}  // namespace tapegrad::kernels
