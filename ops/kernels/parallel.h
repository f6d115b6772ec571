// How the kernels use OpenMP threads: the threshold at which a loop is split, where the threads
// run (place_this_thread), and flush-to-zero inside each thread's share (FlushDenormals).
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

// Thread placement: spreads an OpenMP team over distinct CPUs the first time each of its threads
// runs a kernel's parallel region, so two threads never start out sharing one core.
//
// Why: without a binding, a new OpenMP thread may start on its master's CPU; both then run (the
// worker spins at the barrier) on one core, and the scheduler moves one of them only after tens
// of milliseconds, so a short run's first epochs take whole scheduler ticks (docs/performance.md,
// "Threads").
//
// What it does, once per thread, Linux only: worker k of a team of T (k >= 1) pins itself to the
// (k mod P)-th CPU of its affinity mask (P CPUs); the master is moved to the first CPU and then
// given its own mask back, so the caller's thread stays free and threads it creates later inherit
// its full mask. Only in the outermost active region of a team of at least two threads (a kernel
// called from inside the caller's own parallel region changes nothing), only when the mask holds
// two CPUs or more; a failed system call leaves the thread where it is.
//
// What a consumer may override: nothing happens when OMP_PROC_BIND, OMP_PLACES,
// GOMP_CPU_AFFINITY or KMP_AFFINITY is set (the OpenMP runtime's binding then applies as the
// consumer asked) or when TAPEGRAD_PLACE_THREADS=0. The team's size stays OMP_NUM_THREADS /
// omp_set_num_threads; a process restricted with taskset or cgroups is placed within its mask.
// Called by FlushDenormals, the first line of every kernel's parallel region; idempotent and
// thread-safe (each thread places only itself).
void place_this_thread();

// Flush-to-zero for the scope of one thread's share of a kernel: on x86 it sets the FTZ bit of
// this thread's MXCSR (results below the smallest normal number, 1.2e-38 in float and 2.2e-308 in
// double, become 0) and restores the caller's bits when the scope ends, so nothing outside the
// kernel sees the change. Elsewhere it does nothing. Not DAZ (subnormal inputs read as 0): the
// kernel makes no subnormals of its own under FTZ, so DAZ would only change what a caller's
// subnormal data (keys at 1e-40, say) means, never the speed of the usual case.
//
// Why: x86 cores (the Intel ones in particular) take a microcode assist of ~100 cycles for every
// vector instruction that makes a subnormal result, and sharp attention makes them all the time:
// a weight near exp's flush threshold (e ~ 1e-38) times a value below 1, or a softmax entry near
// 1e-38 divided by its row sum (docs/performance.md has the figures). Numerically, a value that
// would be subnormal is 0 instead, a change below 1.2e-38 (float) or 2.2e-308 (double) in absolute
// terms, as fast_exp (exp.h) already flushes exp's own subnormal results;
// tests/ops/test_softmax_kernels.cpp checks the flush and the restored mode.
// Used as the first line inside each `#pragma omp parallel` region of the softmax and attention
// kernels (each OpenMP thread has its own MXCSR); it also places the thread (place_this_thread).
class FlushDenormals {
 public:
#ifdef TAPEGRAD_HAS_MXCSR
  static constexpr unsigned kFlushBits = 0x8000;  // FTZ (bit 15)
  FlushDenormals() : saved_(_mm_getcsr()) {
    _mm_setcsr(saved_ | kFlushBits);
    place_this_thread();
  }
  ~FlushDenormals() {
    _mm_setcsr(saved_);
  }
#else
  FlushDenormals() {
    place_this_thread();
  }
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
