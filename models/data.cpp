#include "models/data.h"

#include <algorithm>
#include <cmath>

namespace tapegrad {

double Rng::uniform() {
  return static_cast<double>(gen_() >> 11) * 0x1.0p-53;
}

double Rng::normal() {
  // Box-Muller: two uniforms -> one standard normal (the second is discarded, keeping the stream
  // simple to reason about).
  const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

double chapter_truth(double x) {
  return 2.0 * std::sin(x) + std::pow(x, 0.8);
}

ChapterData make_chapter_data(Rng& rng, std::size_t n_train, double noise_std) {
  ChapterData d;
  for (std::size_t i = 0; i < n_train; ++i) d.x_train.push_back(5.0 * rng.uniform());
  std::sort(d.x_train.begin(), d.x_train.end());
  for (double x : d.x_train) d.y_train.push_back(chapter_truth(x) + noise_std * rng.normal());
  for (int i = 0; i < 50; ++i) {
    d.x_query.push_back(0.1 * i);
    d.y_truth.push_back(chapter_truth(0.1 * i));
  }
  return d;
}

}  // namespace tapegrad
