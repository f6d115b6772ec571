// The loops behind nw_attention_pool_nd and nw_cross_entropy_nd (ops/attention_nd.h): Gaussian
// attention of d-dimensional queries over d-dimensional keys, one query row at a time, never an
// (n, m) matrix (O(n + m) memory: a few (m,) buffers per thread).
//
// For query q (d,), keys k_j (d,) and widths w (d,) (a shared width is repeated d times):
//   s_j      = sum_l ((q_l - k_jl) w_l)^2                      squared weighted distance
//   j*       = argmin_j s_j                                     the nearest key
//   excess_j = s_j - s_j* = sum_l w_l^2 (k*_l - k_jl) (d_jl + d*_l),   d_jl = q_l - k_jl
//   p_j      = softmax_j(-excess_j / 2)   ( = softmax_j(-s_j / 2): a row constant changes nothing )
// Why the excess, and in that form:
// - the nearest key's logit is exactly 0, so its unnormalised weight is exactly 1 and a row never
//   sums to 0, however far the query (no 0/0), and no logit is above 1/16 (no overflow; a key
//   that rounding puts nearer than j* by more than that becomes j*: settle_excess);
// - each coordinate's term is a product of two differences, d_j^2 - d*^2 = (d_j - d*)(d_j + d*),
//   with d_j - d* = k* - k_j formed from the keys directly: no cancellation between two large
//   squares when the query is far from every key (s_j - s_j* would lose every digit there);
// - the nearest key is the argmin of s_j where s_j is finite; past the overflow of the squares
//   (|(q - k) w| > 1.8e19 in float32) it is found from the excess relative to any key, which
//   orders the keys as s does and overflows far later. Everything is computed in T (float32
//   runs at float32 vector width); the excess of a float32 row is accurate to a few ulp of its
//   terms, the same as the float32 logits it becomes.
//
// The window (exact, as the 1-D op's). The keys are sorted once per call by class (the
// cross-entropy; the pooling has one class) and within a class by the coordinate a with the
// largest |w_a| * spread. A key whose term of that coordinate alone, ((q_a - k_ja) w_a)^2,
// exceeds s_j* + 2 kUnderflow has excess > 2 kUnderflow, a logit below -kUnderflow and a weight
// of exactly 0 (fast_exp flushes it): every row visits only the contiguous range of each class
// inside |q_a - k_ja| |w_a| <= sqrt(s_j* + 2 kUnderflow) (with a margin for rounding). The
// nearest key itself is found by a search outward from q_a's place, in blocks that double, which
// stops at the first block edge whose coordinate term alone exceeds the best distance so far.
// For the cross-entropy the row's own class gets its window around its own nearest key (the
// class softmax needs it even when the class is far), the other classes around the overall one.
// Sharp attention (large w) means short windows: the cost goes from O(n m) towards O(n * keys in
// the window); at w = 1 on the chapter's scale every key is in the window and nothing is lost.
//
// The backward recomputes each row's weights (as the 1-D op does) rather than storing them. With
// g_j = dL/dlogit_j for the row (pooling: g_j = p_j (G.v_j - G.f), G the upstream row;
// cross-entropy: g_j = G (p_j - pc_j)), and sum_j g_j = 0 in both cases:
//   dL/dq_l  = -w_l^2 sum_j g_j (q_l - k_jl) = -w_l^2 sum_j g_j (k*_l - k_jl)
//   dL/dk_jl = +w_l^2 g_j (q_l - k_jl)
//   dL/dw_l  = -w_l sum_j g_j (q_l - k_jl)^2 = -w_l sum_j g_j excess_jl
// (the second forms subtract the row constant q_l - k*_l resp. d*_l^2, allowed because the g_j sum
// to 0, and they keep the sums small for far queries.)
// The sums over rows of the key gradients go to per-thread (m,) partials added in thread order, so
// results do not depend on timing. Rows are split across OpenMP threads once n * m reaches
// kParallelGrain (ops/kernels/parallel.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tapegrad::kernels {

// One problem: queries (n, d) and keys (m, d), row-major; w (d,) (already repeated for a shared
// width). With leave_one_out (n == m), row i skips key i.
template <class T>
struct NdAttention {
  const T* queries = nullptr;
  std::size_t n = 0;
  const T* keys = nullptr;
  std::size_t m = 0;
  std::size_t d = 0;
  const T* w = nullptr;
  bool leave_one_out = false;
};

// f (n, C) = attention-weighted values; values (m, C) row-major.
template <class T>
void nd_pool_forward(const NdAttention<T>& a, const T* values, std::size_t C, T* f);

// Given f from the forward and the upstream grad (n, C): adds into grad_queries (n, d),
// grad_keys (m, d), grad_values (m, C) and grad_w (d,) (per coordinate). A null pointer: that
// gradient is not wanted.
template <class T>
void nd_pool_backward(const NdAttention<T>& a, const T* values, std::size_t C, const T* f,
                      const T* grad, T* grad_queries, T* grad_keys, T* grad_values, T* grad_w);

// L = -sum_i log p_i[query_labels_i], p_i[c] = sum_{j: key_labels_j = c} p_ij, as
//   L_i = log Z_i - log Zc_i + excess_i(jc*) / 2
// Z_i = sum_j exp(-excess_ij / 2) (relative to the nearest key), Zc_i the same over the keys of
// the row's class relative to the nearest of them (jc*): both sums contain an exact 1, so L_i is
// finite whenever the row has a key of its class (+inf when it has none: p_i[y_i] = 0).
template <class T>
T nd_cross_entropy_forward(const NdAttention<T>& a, const std::int64_t* key_labels,
                           const std::int64_t* query_labels);

// Its backward for the upstream scalar grad: adds into grad_queries (n, d), grad_keys (m, d) and
// grad_w (d,), null pointers skipped. g_ij = grad (p_ij - pc_ij), pc_ij the softmax over the
// row's class (0 off the class).
template <class T>
void nd_cross_entropy_backward(const NdAttention<T>& a, const std::int64_t* key_labels,
                               const std::int64_t* query_labels, T grad, T* grad_queries,
                               T* grad_keys, T* grad_w);

}  // namespace tapegrad::kernels
