// ops/kernels/nearest.h: nearest_keys (distances in T, then the exact test over the near ones)
// against nearest_key_scan (the exact test over every key), which is checked itself against a
// brute force in long double. Keys shared or one block per query, d = 1..3, one width or one per
// coordinate, magnitudes 1e-6 ... 1e6 (and spans near float's largest), ties (duplicate keys, a
// query halfway between two), NaN keys and queries; both dtypes. Seeded.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ops/kernels/nearest.h"

namespace tapegrad {
namespace {

// The first key of least squared scaled distance, computed in long double (d = 1: exact for
// float and double inputs), or -1 when any distance is NaN.
template <class T>
long brute_force(const T* q, const T* keys, std::size_t m, const T* w, std::size_t w_size,
                 std::size_t d) {
  long best = -1;
  long double best_s = 0;
  for (std::size_t j = 0; j < m; ++j) {
    long double s = 0;
    for (std::size_t c = 0; c < d; ++c) {
      const long double a = ((long double)q[c] - keys[j * d + c]) * w[w_size == 1 ? 0 : c];
      s += a * a;
    }
    if (std::isnan(s)) return -1;
    if (best < 0 || s < best_s) best = long(j), best_s = s;
  }
  return best;
}

template <class T>
void check_case(std::mt19937& rng, double scale, std::size_t d, bool per_row, bool ties) {
  const std::size_t n = 1 + rng() % 40, m = 1 + rng() % 300, blocks = per_row ? n : 1;
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> q(n * d), keys(blocks * m * d), w(rng() % 2 ? d : 1);
  for (auto& v : keys) v = static_cast<T>(scale * (ties ? std::round(4 * u(rng)) / 4 : u(rng)));
  for (auto& v : q) v = static_cast<T>(scale * (ties ? std::round(8 * u(rng)) / 8 : 1.2 * u(rng)));
  for (auto& v : w) v = static_cast<T>(std::exp(3 * u(rng)));
  const std::vector<std::size_t> got =
      kernels::nearest_keys(q.data(), n, keys.data(), m, per_row, w.data(), w.size(), d);
  for (std::size_t i = 0; i < n; ++i) {
    const T* block = keys.data() + (per_row ? i * m * d : 0);
    const std::size_t scan =
        kernels::nearest_key_scan(q.data() + i * d, block, m, w.data(), w.size(), d);
    ASSERT_EQ(got[i], scan) << "scale " << scale << " d " << d << " row " << i << " m " << m;
    if (d == 1) {  // the scan's long double test is exact for d = 1: the brute force agrees
      ASSERT_EQ(long(scan), brute_force(q.data() + i * d, block, m, w.data(), w.size(), d))
          << "scale " << scale << " row " << i;
    }
  }
}

template <class T>
void check_all() {
  std::mt19937 rng(99);
  for (double scale : {1e-6, 1e-3, 1.0, 1e3, 1e6})
    for (std::size_t d : {1u, 2u, 3u})
      for (bool per_row : {false, true})
        for (bool ties : {false, true})
          for (int rep = 0; rep < 4; ++rep) check_case<T>(rng, scale, d, per_row, ties);
}

TEST(NearestKernels, FastSearchMatchesTheScanFloat) {
  check_all<float>();
}
TEST(NearestKernels, FastSearchMatchesTheScanDouble) {
  check_all<double>();
}

// Equal keys: the first of them; a query halfway between two keys: the first in index order.
TEST(NearestKernels, TiesGoToTheFirstKey) {
  const std::vector<double> keys = {3.0, 1.0, 2.0, 1.0, 2.0}, w = {1.0};
  const std::vector<double> q = {1.0, 1.5, 2.5, 9.0, -9.0};
  const std::vector<std::size_t> got =
      kernels::nearest_keys(q.data(), 5, keys.data(), 5, false, w.data(), 1, 1);
  EXPECT_EQ(got, (std::vector<std::size_t>{1, 1, 0, 0, 1}));
}

// Non-finite inputs and distances that overflow T fall back to the scan, whatever its answer.
TEST(NearestKernels, NonFiniteAndHugeFallBackToTheScan) {
  const float big = std::numeric_limits<float>::max(), nan = std::nanf("");
  const std::vector<float> keys = {nan, 1.0f, -big, big, 2.0f}, w = {1.0f};
  const std::vector<float> q = {1.2f, nan, big, -big / 2, 1e30f};
  const std::vector<std::size_t> got =
      kernels::nearest_keys(q.data(), 5, keys.data(), 5, false, w.data(), 1, 1);
  for (std::size_t i = 0; i < 5; ++i)
    EXPECT_EQ(got[i], kernels::nearest_key_scan(&q[i], keys.data(), 5, w.data(), 1, 1)) << i;
  const std::vector<float> finite_keys = {-big, big, 0.5f * big};
  const std::vector<float> far = {0.6f * big};
  EXPECT_EQ(kernels::nearest_keys(far.data(), 1, finite_keys.data(), 3, false, w.data(), 1, 1)[0],
            2u);
}

}  // namespace
}  // namespace tapegrad
