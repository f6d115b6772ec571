// Random tensors, PyTorch style: manual_seed, randn, rand, randint.
//
// Deterministic across platforms for a seed: the numbers come from Rng below, std::mt19937_64
// (whose output sequence the C++ standard fixes) turned into uniforms and normals by our own
// formulas. std::normal_distribution is not used: libstdc++ and
// libc++ turn the same engine output into different normals.
//
// One generator per thread (like the tape): manual_seed(s) seeds the calling thread's generator,
// and a thread that never called it starts from default_seed. Two threads never share a stream, so
// a run that draws on several threads is reproducible.
//
// Elements are drawn in row-major order, one draw per element, so randn<double>({2, 3}) gives the
// same six numbers as the first six of randn<double>({6}) after the same seed. float tensors round
// the double draws.
#pragma once

#include <cstdint>
#include <random>

#include "autograd/tensor.h"

namespace tapegrad {

// A seeded stream of uniforms and normals, the same on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : gen_(seed) {}
  double uniform();  // [0, 1), 53 random bits
  double normal();   // N(0, 1), Box-Muller

 private:
  std::mt19937_64 gen_;
};

constexpr std::uint64_t default_seed = 0;

void manual_seed(std::uint64_t seed);  // this thread's generator restarts from `seed`

// N(0, 1) entries (Box-Muller), torch.randn.
template <class T = double>
Tensor<T> randn(const Shape& shape, bool requires_grad = false);

// U[0, 1) entries (53 random bits), torch.rand.
template <class T = double>
Tensor<T> rand(const Shape& shape, bool requires_grad = false);

// Integers uniform in [low, high), stored as T, torch.randint(low, high, shape). Throws
// std::invalid_argument when low >= high.
template <class T = double>
Tensor<T> randint(std::int64_t low, std::int64_t high, const Shape& shape);

// torch-style sizes as separate arguments: randn(2, 3), rand<float>(4).
template <class T = double, class... I, std::enable_if_t<are_sizes_v<I...>, int> = 0>
Tensor<T> randn(I... extents) {
  return randn<T>(Shape{size_from("randn", extents)...});
}
template <class T = double, class... I, std::enable_if_t<are_sizes_v<I...>, int> = 0>
Tensor<T> rand(I... extents) {
  return rand<T>(Shape{size_from("rand", extents)...});
}

}  // namespace tapegrad
