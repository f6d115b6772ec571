// Summation kernels (see reduction.h).
#include "ops/kernels/reduction.h"

#include <algorithm>
#include <vector>

#include "ops/kernels/parallel.h"

namespace tapegrad {
namespace kernels {

namespace {

constexpr std::size_t kLanes = 8;
constexpr std::size_t kSumBlock = 4096;

// sum_i term(i) over [begin, end) in kLanes partial sums, term(i) going to lane i % kLanes.
template <class Term>
double lane_sum(std::size_t begin, std::size_t end, Term term) {
  double lane[kLanes] = {};
  std::size_t i = begin;
  for (; i + kLanes <= end; i += kLanes)
    for (std::size_t j = 0; j < kLanes; ++j) lane[j] += term(i + j);
  for (; i < end; ++i) lane[0] += term(i);
  double total = 0;
  for (double v : lane) total += v;
  return total;
}

// sum over blocks of kSumBlock, the blocks in parallel above the grain, added in block order.
template <class Term>
double blocked_sum(std::size_t n, Term term) {
  const std::size_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> partial(blocks);
#pragma omp parallel for if (n >= kParallelGrain)
  for (long b = 0; b < static_cast<long>(blocks); ++b) {
    const std::size_t begin = static_cast<std::size_t>(b) * kSumBlock;
    partial[static_cast<std::size_t>(b)] = lane_sum(begin, std::min(n, begin + kSumBlock), term);
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

template <class T>
double sum_all(const T* x, std::size_t n) {
  return blocked_sum(n, [x](std::size_t i) { return static_cast<double>(x[i]); });
}

// (the product in T, as the elementwise ops compute it, then accumulated in double)
template <class T>
double dot(const T* x, const T* y, std::size_t n) {
  return blocked_sum(n, [x, y](std::size_t i) { return static_cast<double>(x[i] * y[i]); });
}

template <class T>
void sum_leading(const T* x, std::size_t outer, std::size_t inner, double* acc) {
  for (std::size_t o = 0; o < outer; ++o) {
    const T* row = x + o * inner;
    for (std::size_t j = 0; j < inner; ++j) acc[j] += row[j];
  }
}

template <class T>
void sum_trailing(const T* x, std::size_t outer, std::size_t inner, double* acc) {
  for (std::size_t o = 0; o < outer; ++o) {
    const T* row = x + o * inner;
    acc[o] = lane_sum(0, inner, [row](std::size_t j) { return static_cast<double>(row[j]); });
  }
}

template double sum_all(const float*, std::size_t);
template double sum_all(const double*, std::size_t);
template double dot(const float*, const float*, std::size_t);
template double dot(const double*, const double*, std::size_t);
template void sum_leading(const float*, std::size_t, std::size_t, double*);
template void sum_leading(const double*, std::size_t, std::size_t, double*);
template void sum_trailing(const float*, std::size_t, std::size_t, double*);
template void sum_trailing(const double*, std::size_t, std::size_t, double*);

}  // namespace kernels
}  // namespace tapegrad
