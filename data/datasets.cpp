#include "data/datasets.h"

#include <algorithm>
#include <cmath>

namespace tapegrad {

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

double surface_truth(double x1, double x2) {
  return 2.0 * std::sin(x1) * std::cos(x2);
}

namespace {

// (x1, x2) pairs ordered by x1 (a stable sort of point indices; the targets follow their points).
void sort_by_first(std::vector<double>& xy, std::vector<double>& y) {
  std::vector<std::size_t> order(y.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return xy[2 * a] < xy[2 * b]; });
  std::vector<double> xy_sorted, y_sorted;
  for (std::size_t i : order) {
    xy_sorted.push_back(xy[2 * i]), xy_sorted.push_back(xy[2 * i + 1]);
    y_sorted.push_back(y[i]);
  }
  xy = std::move(xy_sorted), y = std::move(y_sorted);
}

// Inputs on U(0, 5)^2 and targets truth(x1, x2) + N(0, noise_std^2), drawn point by point.
template <class Truth>
PlaneData make_regression_plane(Rng& rng, std::size_t n_train, double noise_std, Truth truth) {
  PlaneData d;
  for (std::size_t i = 0; i < n_train; ++i) {
    const double x1 = 5.0 * rng.uniform(), x2 = 5.0 * rng.uniform();
    d.x_train.push_back(x1), d.x_train.push_back(x2);
    d.y_train.push_back(truth(x1, x2) + noise_std * rng.normal());
  }
  sort_by_first(d.x_train, d.y_train);
  d.x_query = plane_grid(d.x_train, 20);
  for (std::size_t q = 0; q < d.x_query.size() / 2; ++q)
    d.y_truth.push_back(truth(d.x_query[2 * q], d.x_query[2 * q + 1]));
  return d;
}

}  // namespace

PlaneData make_chapter2d_data(Rng& rng, std::size_t n_train, double noise_std) {
  return make_regression_plane(rng, n_train, noise_std,
                               [](double x1, double) { return chapter_truth(x1); });
}

PlaneData make_surface_data(Rng& rng, std::size_t n_train, double noise_std) {
  return make_regression_plane(rng, n_train, noise_std, surface_truth);
}

PlaneData make_moons_data(Rng& rng, std::size_t n_train, double noise_std) {
  PlaneData d;
  const std::size_t n0 = (n_train + 1) / 2;
  for (std::size_t i = 0; i < n_train; ++i) {
    const int label = i < n0 ? 0 : 1;
    const double t = M_PI * rng.uniform();
    double x1 = label == 0 ? std::cos(t) : 1.0 - std::cos(t);
    double x2 = label == 0 ? std::sin(t) : 0.5 - std::sin(t);
    x1 += noise_std * rng.normal();
    x2 += noise_std * rng.normal();
    d.x_train.push_back(x1), d.x_train.push_back(x2);
    d.y_train.push_back(label);
  }
  d.x_query = plane_grid(d.x_train, 20);
  return d;
}

std::vector<double> plane_grid(const std::vector<double>& xy, std::size_t n) {
  double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
  for (std::size_t i = 0; i < xy.size(); ++i)
    lo[i % 2] = std::min(lo[i % 2], xy[i]), hi[i % 2] = std::max(hi[i % 2], xy[i]);
  for (int k = 0; k < 2; ++k)
    if (!(hi[k] > lo[k])) lo[k] -= 0.5, hi[k] += 0.5;
  std::vector<double> grid;
  const double steps = n > 1 ? double(n - 1) : 1.0;
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t c = 0; c < n; ++c) {
      grid.push_back(lo[0] + (hi[0] - lo[0]) * (double(c) / steps));
      grid.push_back(lo[1] + (hi[1] - lo[1]) * (double(r) / steps));
    }
  return grid;
}

}  // namespace tapegrad
