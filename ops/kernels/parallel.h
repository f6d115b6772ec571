// The one threshold at which the kernels split a loop across OpenMP threads.
#pragma once

#include <cstddef>

namespace tapegrad {
namespace kernels {

// kParallelGrain: the smallest amount of work, in elements touched (or (query, key) pairs for the
// attention kernels), for which a loop is split across OpenMP threads. Below it one thread is
// faster: waking a second thread costs a few microseconds, about what one core needs for ~32k
// multiply-adds or ~10k exps. The chapter's 50-point tensors therefore always stay on one thread,
// and the (n, n) matrices of n >= 200 go parallel. Used as `#pragma omp parallel for if (work >=
// kParallelGrain)`.
constexpr std::size_t kParallelGrain = std::size_t(1) << 15;

}  // namespace kernels
}  // namespace tapegrad
