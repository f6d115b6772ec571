// The std::exp loops of bench/exp_bench.cpp, compiled with -ffast-math (bench/CMakeLists.txt) as
// the ops were before ops/kernels/exp.h: with gcc + glibc that is the vector exp of libmvec
// (_ZGVdN8v_expf and friends); with clang it stays a call to the scalar exp per element.
#include <cmath>
#include <cstddef>

namespace tapegrad_bench {

void std_exp_fast_math(const float* in, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = std::exp(in[i]);
}

void std_exp_fast_math(const double* in, double* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = std::exp(in[i]);
}

}  // namespace tapegrad_bench
