// The chapter's synthetic data, and three 2-D sets for the d-dimensional and classification
// forms of Nadaraya-Watson, reproducible from a seed on any platform.
//
//   chapter     y = 2 sin(x) + x^0.8 + eps,  eps ~ N(0, 0.5^2)
//               50 training inputs x ~ U(0, 5), sorted; queries 0, 0.1, ..., 4.9
//   chapter2d   x1, x2 ~ U(0, 5), y = 2 sin(x1) + x1^0.8 + eps: x2 is irrelevant (2nd ed.,
//               exercise 2: per-coordinate widths should learn to ignore it); sorted by x1
//   surface     x1, x2 ~ U(0, 5), y = 2 sin(x1) cos(x2) + eps: both coordinates matter;
//               sorted by x1
//   moons       two classes, each a half circle of radius 1 plus N(0, 0.2^2) noise per coordinate
//               (scikit-learn's make_moons with random angles): class 0 at (cos t, sin t),
//               class 1 at (1 - cos t, 1/2 - sin t), t ~ U(0, pi); ceil(n/2) points of class 0
//               first, then floor(n/2) of class 1 (not sorted)
//   The 2-D sets come with queries on a 20 x 20 grid over the training inputs' bounding box
//   (x1 fastest), and for the regression sets the truth at each query.
//
// The random numbers come from Rng (autograd/random.h), the same on every platform for a seed.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/random.h"

namespace tapegrad {

double chapter_truth(double x);  // 2 sin(x) + x^0.8

struct ChapterData {
  std::vector<double> x_train, y_train;  // sorted by x
  std::vector<double> x_query, y_truth;  // y_truth = chapter_truth(x_query)
};

// Draws n_train sorted inputs and noisy targets from rng; queries 0, 0.1, ..., 4.9.
ChapterData make_chapter_data(Rng& rng, std::size_t n_train = 50, double noise_std = 0.5);

double surface_truth(double x1, double x2);  // 2 sin(x1) cos(x2)

// A 2-D data set: inputs row-major (n, 2), targets (regression) or labels 0/1 as numbers
// (classification), the 20 x 20 query grid (400, 2) and, for regression, the truth there.
struct PlaneData {
  std::vector<double> x_train, y_train;  // x_train[2 i + k] is coordinate k of point i
  std::vector<double> x_query, y_truth;  // y_truth empty for moons
};

// Draws point by point: x1 then x2 (uniforms), then the noise. Points sorted by x1.
PlaneData make_chapter2d_data(Rng& rng, std::size_t n_train = 50, double noise_std = 0.5);
PlaneData make_surface_data(Rng& rng, std::size_t n_train = 50, double noise_std = 0.5);
// Two moons: per point the angle t, then the noise of x1 and of x2.
PlaneData make_moons_data(Rng& rng, std::size_t n_train = 50, double noise_std = 0.2);

// n x n points evenly spaced over the bounding box of the (m, 2) points xy, row-major (n * n, 2)
// with the first coordinate varying fastest. A degenerate side (all points at one value) spans
// that value +- 0.5.
std::vector<double> plane_grid(const std::vector<double>& xy, std::size_t n);

}  // namespace tapegrad
