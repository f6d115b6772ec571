// The chapter's synthetic data, reproducible from a seed on any platform.
//
//   y = 2 sin(x) + x^0.8 + eps,  eps ~ N(0, 0.5^2)
//   50 training inputs x ~ U(0, 5), sorted; queries 0, 0.1, ..., 4.9
//
// The random numbers come from std::mt19937_64 (its output sequence is fixed by the C++ standard)
// turned into uniforms and normals by our own formulas, because std::uniform_real_distribution and
// std::normal_distribution may differ between standard libraries.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace tapegrad {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : gen_(seed) {}
  double uniform();  // [0, 1), 53 random bits
  double normal();   // N(0, 1), Box-Muller

 private:
  std::mt19937_64 gen_;
};

double chapter_truth(double x);  // 2 sin(x) + x^0.8

struct ChapterData {
  std::vector<double> x_train, y_train;  // sorted by x
  std::vector<double> x_query, y_truth;  // y_truth = chapter_truth(x_query)
};

// Draws n_train sorted inputs and noisy targets from rng; queries 0, 0.1, ..., 4.9.
ChapterData make_chapter_data(Rng& rng, std::size_t n_train = 50, double noise_std = 0.5);

}  // namespace tapegrad
