// The nearest key to each query by scaled distance: the search behind the Nadaraya-Watson logits'
// shift (models/nadaraya_watson.h, nw_logits) and the compact kernels' empty-row fallback.
#pragma once

#include <cstddef>
#include <vector>

namespace tapegrad {
namespace kernels {

// For queries (n, d) and keys (m, d) shared by every query, or (n, m, d) with m keys per query
// (keys_per_row), and widths w of w_size = 1 (one for every coordinate) or d elements: entry i is
// the index in 0..m-1 of query i's nearest key by |(q_i - k_j) w|, the first of equally near ones.
//
// Nearer means a negative excess, half of |(q - k) w|^2 - |(q - x) w|^2 written as
//   sum_c ((x_c - k_c) w_c) ((q_c - k_c) / 2 + (q_c - x_c) / 2) w_c
// in long double, where no float or double input overflows; nearest_key_scan is that test over
// every key, in order. nearest_keys gives the same answer faster: distances in T over all keys
// (vectorised, the rows split across threads), then the scan over the keys whose T distance is
// within T's rounding of the smallest; rows with a non-finite distance (NaN, inf, overflow) are
// scanned whole. m >= 1.
template <class T>
std::vector<std::size_t> nearest_keys(const T* queries, std::size_t n, const T* keys, std::size_t m,
                                      bool keys_per_row, const T* w, std::size_t w_size,
                                      std::size_t d);

// The scan alone, for one query q (d,) over keys (m, d): the readable form, and nearest_keys'
// oracle in tests.
template <class T>
std::size_t nearest_key_scan(const T* q, const T* keys, std::size_t m, const T* w,
                             std::size_t w_size, std::size_t d);

}  // namespace kernels
}  // namespace tapegrad
