// repeat_interleave kernels (see repeat.h): rows of the (outer * len, inner) view copied or summed,
// split across threads above kParallelGrain output elements.
#include "ops/kernels/repeat.h"

#include <algorithm>

#include "ops/kernels/parallel.h"

namespace tapegrad {
namespace kernels {

template <class T>
void repeat_interleave(const T* x, T* out, const AxisSplit& s, std::size_t repeats) {
  const std::size_t r = repeats, inner = s.inner;
  const long rows = static_cast<long>(s.outer * s.len);
#pragma omp parallel for if (s.outer * s.len * r * inner >= kParallelGrain)
  for (long row = 0; row < rows; ++row) {
    if (inner == 1) {  // the chapter's case: each query value repeated r times
      std::fill(out + row * r, out + (row + 1) * r, x[row]);
      continue;
    }
    for (std::size_t t = 0; t < r; ++t)
      std::copy(x + row * inner, x + (row + 1) * inner, out + (row * r + t) * inner);
  }
}

template <class T>
void repeat_interleave_backward(const T* grad_out, T* grad_in, const AxisSplit& s,
                                std::size_t repeats) {
  const std::size_t r = repeats, inner = s.inner;
  const long rows = static_cast<long>(s.outer * s.len);
#pragma omp parallel for if (s.outer * s.len * r * inner >= kParallelGrain)
  for (long row = 0; row < rows; ++row) {
    T* gi = grad_in + row * inner;
    std::fill(gi, gi + inner, T(0));
    for (std::size_t t = 0; t < r; ++t) {
      const T* go = grad_out + (row * r + t) * inner;
      for (std::size_t i = 0; i < inner; ++i) gi[i] += go[i];
    }
  }
}

template void repeat_interleave(const float*, float*, const AxisSplit&, std::size_t);
template void repeat_interleave(const double*, double*, const AxisSplit&, std::size_t);
template void repeat_interleave_backward(const float*, float*, const AxisSplit&, std::size_t);
template void repeat_interleave_backward(const double*, double*, const AxisSplit&, std::size_t);

}  // namespace kernels
}  // namespace tapegrad
