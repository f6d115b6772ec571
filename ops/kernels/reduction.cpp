// Summation kernels (see reduction.h).
#include "ops/kernels/reduction.h"

#include "ops/kernels/parallel.h"

namespace tapegrad {
namespace kernels {

template <class T>
double sum_all(const T* x, std::size_t n) {
  double total = 0;
  const long len = static_cast<long>(n);
#pragma omp parallel for simd reduction(+ : total) if (n >= kParallelGrain)
  for (long i = 0; i < len; ++i) total += x[i];
  return total;
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
    double t = 0;
#pragma omp simd reduction(+ : t)
    for (std::size_t j = 0; j < inner; ++j) t += row[j];
    acc[o] = t;
  }
}

template double sum_all(const float*, std::size_t);
template double sum_all(const double*, std::size_t);
template void sum_leading(const float*, std::size_t, std::size_t, double*);
template void sum_leading(const double*, std::size_t, std::size_t, double*);
template void sum_trailing(const float*, std::size_t, std::size_t, double*);
template void sum_trailing(const double*, std::size_t, std::size_t, double*);

}  // namespace kernels
}  // namespace tapegrad
