// Micro-benchmark: is exp's cost independent of its argument?
//   build/bench/exp_bench [elements] [repetitions]
// Times, per element, on one thread, over arrays of uniform arguments in [lo, 0]:
//   std::exp, -ffast-math  a plain loop vectorised by the compiler (libmvec with gcc)
//   std::exp, plain        the same loop without -ffast-math (no vector exp: one libm call each)
//   kernels::exp_array     ops/kernels/exp.h
// at lo = -1 (nothing underflows), -30, -87 / -700 (down to the underflow threshold of float /
// double), -300 (float: 71% of the results underflow) and -800 (double: 11% underflow). Best of
// the repetitions, ns per element.
// What it shows (docs/performance.md, "Why the fused epoch is fast"): glibc's vector expf/exp
// (libmvec, reached by gcc under -ffast-math) leave the vector path for every vector with a lane
// whose result underflows (x below about -87.3 in float, -708.4 in double), tens of times slower
// per element; clang never reaches libmvec and calls scalar expf/exp. The kernel's exp costs the
// same at every range.
// Timing only: the machine should be quiet (see bench/run.sh). Not run by ctest.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "ops/kernels/exp.h"

namespace tapegrad_bench {
void std_exp_fast_math(const float* in, float* out, std::size_t n);    // exp_bench_libm.cpp
void std_exp_fast_math(const double* in, double* out, std::size_t n);  // exp_bench_libm.cpp
}  // namespace tapegrad_bench

namespace {

template <class T>
void std_exp_plain(const T* in, T* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = std::exp(in[i]);
}

// Best time of `reps` runs of f(in, out, n), in nanoseconds per element.
template <class T, class F>
double best_ns_per_element(F f, const std::vector<T>& in, std::vector<T>& out, int reps) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f(in.data(), out.data(), in.size());
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  // Keep the result alive: the sum goes to a volatile.
  volatile T sink = out[out.size() / 2];
  (void)sink;
  return best / static_cast<double>(in.size());
}

template <class T>
void bench_dtype(const char* dtype, const std::vector<double>& lows, std::size_t n, int reps) {
  std::mt19937_64 rng(42);
  for (double lo : lows) {
    std::uniform_real_distribution<double> dist(lo, 0.0);
    std::vector<T> in(n), out(n);
    for (T& v : in) v = static_cast<T>(dist(rng));
    const double fast_math = best_ns_per_element<T>(
        [](const T* a, T* b, std::size_t m) { tapegrad_bench::std_exp_fast_math(a, b, m); }, in,
        out, reps);
    const double plain = best_ns_per_element<T>(std_exp_plain<T>, in, out, reps);
    const double kernel = best_ns_per_element<T>(
        [](const T* a, T* b, std::size_t m) { tapegrad::kernels::exp_array(a, b, m); }, in, out,
        reps);
    std::printf("| %-6s | [%g, 0] | %8.3f | %8.3f | %8.3f |\n", dtype, lo, fast_math, plain,
                kernel);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : (1u << 20);
  const int reps = argc > 2 ? std::atoi(argv[2]) : 20;
  if (n == 0 || reps <= 0) {
    std::fprintf(stderr, "usage: exp_bench [elements > 0] [repetitions > 0]\n");
    return 2;
  }
#if defined(__clang__)
  const std::string compiler = "clang " __clang_version__;
#else
  const std::string compiler = "gcc " __VERSION__;
#endif
  std::printf("exp over %zu uniform arguments in [lo, 0], best of %d, ns per element (%s)\n\n", n,
              reps, compiler.c_str());
  std::printf("| dtype  | range | std::exp -ffast-math | std::exp plain | kernels::exp_array |\n");
  std::printf("|---|---|---|---|---|\n");
  bench_dtype<float>("float", {-1, -30, -87, -300}, n, reps);
  bench_dtype<double>("double", {-1, -30, -300, -700, -800}, n, reps);
  return 0;
}
