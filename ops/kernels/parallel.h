// The one threshold at which the kernels split a loop across OpenMP threads.
#pragma once

#include <cstddef>
#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
#define TAPEGRAD_HAS_MXCSR 1
#endif

namespace tapegrad {
namespace kernels {

// kParallelGrain: the smallest amount of work, in elements touched (or (query, key) pairs for the
// attention kernels), for which a loop is split across OpenMP threads. Below it one thread is
// faster: waking a second thread costs a few microseconds, about what one core needs for ~32k
// multiply-adds or ~10k exps. The chapter's 50-point tensors therefore always stay on one thread,
// and the (n, n) matrices of n >= 200 go parallel. Used as `#pragma omp parallel for if (work >=
// kParallelGrain)`.
constexpr std::size_t kParallelGrain = std::size_t(1) << 15;

// Flush-to-zero for the scope of one thread's share of a kernel: on x86 it sets the FTZ bit of
// this thread's MXCSR (results below the smallest normal number, 1.2e-38 in float and 2.2e-308 in
// double, become 0) and restores the caller's bits when the scope ends, so nothing outside the
// kernel sees the change. Elsewhere it does nothing. Not DAZ (subnormal inputs read as 0): the
// kernel makes no subnormals of its own under FTZ, so DAZ would only change what a caller's
// subnormal data (keys at 1e-40, say) means, never the speed of the usual case.
//
// Why: x86 cores (the Intel ones measured here) take a microcode assist, ~100 cycles, for every
// vector instruction that makes a subnormal result. Sharp attention makes them all the time: a
// weight near the flush threshold of exp (e ~ 1e-38) times a value below 1, or a softmax entry
// near 1e-38 divided by its row sum. Measured on that machine (2 threads, float32): the fused
// epoch at n = 100000, w = 36.9 went from 422 to 348 ms, and the softmax (4000, 4000) forward
// over logits in [-300, 0], 10.4-11.0 ms against 7.0-7.6 over [-1, 0] before, costs the same at
// every range after (7.7-8.9 ms, before the prefetch in softmax.cpp). What it changes numerically: a value that would be subnormal is 0 instead, a change
// below 1.2e-38 (float) or 2.2e-308 (double) in absolute terms, as fast_exp (exp.h) already
// flushes exp's own subnormal results; tests/ops/test_exp.cpp checks the mode is restored.
// Used as the first line inside each `#pragma omp parallel` region of the softmax and attention
// kernels (each OpenMP thread has its own MXCSR).
class FlushDenormals {
 public:
#ifdef TAPEGRAD_HAS_MXCSR
  static constexpr unsigned kFlushBits = 0x8000;  // FTZ (bit 15)
  FlushDenormals() : saved_(_mm_getcsr()) {
    _mm_setcsr(saved_ | kFlushBits);
  }
  ~FlushDenormals() {
    _mm_setcsr(saved_);
  }
#else
  FlushDenormals() = default;
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

#ifdef TAPEGRAD_HAS_MXCSR
 private:
  unsigned saved_;
#endif
};

}  // namespace kernels
}  // namespace tapegrad
