// The benchmark's data, bit-identical in C++ (here) and Python (bench/torch_bench.py, bench_data).
//
// Both sides must train on the same points, or their losses and gradients could not be
// cross-checked and their timings could differ by data (the softmax shift, denormals). Neither
// std::mt19937_64 nor torch.Generator exists on the other side, so the numbers come from a
// counter-based generator that is a few lines in both languages: splitmix64(stream << 32 | i).
//
//   x_i = sort(5 u_i)                                   (stream 1)
//   y_i = 2 sin(x_i) + x_i^0.8 + 0.5 eps_i              (eps: Box-Muller of streams 2 and 3)
// computed in double, then cast to the benchmark's dtype. Random matrices (W3, W4) are eps-style
// normals of their own streams; W4's uniform logits in [-R, 0] are -R u_i (stream 21).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

inline std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 random bits: the i-th number of `stream`.
inline double uniform(std::uint64_t stream, std::uint64_t i) {
  return static_cast<double>(splitmix64((stream << 32) | i) >> 11) * 0x1.0p-53;
}

// N(0, 1) by Box-Muller from streams (stream, stream + 100); 1 - u keeps the log finite.
inline std::vector<double> normals(std::size_t n, std::uint64_t stream) {
  const double two_pi = 6.283185307179586476925286766559;
  std::vector<double> r(n);
  for (std::size_t i = 0; i < n; ++i)
    r[i] = std::sqrt(-2.0 * std::log(1.0 - uniform(stream, i))) *
           std::cos(two_pi * uniform(stream + 100, i));
  return r;
}

struct Data {
  std::vector<double> x, y;  // x sorted
};

inline Data make_data(std::size_t n) {
  Data d;
  d.x.resize(n);
  for (std::size_t i = 0; i < n; ++i) d.x[i] = 5.0 * uniform(1, i);
  std::sort(d.x.begin(), d.x.end());
  const std::vector<double> eps = normals(n, 2);
  d.y.resize(n);
  for (std::size_t i = 0; i < n; ++i)
    d.y[i] = 2.0 * std::sin(d.x[i]) + std::pow(d.x[i], 0.8) + 0.5 * eps[i];
  return d;
}

// W5's data (d = 2): x_i uniform in [0, 5)^2 (streams 31, 32), row-major (n, 2);
//   y_i = 2 sin(x_i1) + cos(x_i2) + 0.5 eps_i                  (eps: normals of stream 33)
//   label_i = 1 if x_i2 > 2.5 + sin(2 x_i1), else 0             (two classes, both well populated)
struct Data2d {
  std::vector<double> x, y;         // x (n, 2) row-major
  std::vector<std::int64_t> label;  // (n,)
};

inline Data2d make_data_2d(std::size_t n) {
  Data2d d;
  d.x.resize(2 * n), d.y.resize(n), d.label.resize(n);
  const std::vector<double> eps = normals(n, 33);
  for (std::size_t i = 0; i < n; ++i) {
    const double x1 = 5.0 * uniform(31, i), x2 = 5.0 * uniform(32, i);
    d.x[2 * i] = x1, d.x[2 * i + 1] = x2;
    d.y[i] = 2.0 * std::sin(x1) + std::cos(x2) + 0.5 * eps[i];
    d.label[i] = x2 > 2.5 + std::sin(2.0 * x1) ? 1 : 0;
  }
  return d;
}

// W4's logits: "randn" gives N(0, 1) (stream 21); a number R gives -R u_i, uniform in [-R, 0].
inline std::vector<double> logits(std::size_t n, const std::string& kind) {
  if (kind == "randn") return normals(n, 21);
  const double range = std::stod(kind);
  if (!(range > 0)) throw std::invalid_argument("--logits must be randn or a positive number");
  std::vector<double> r(n);
  for (std::size_t i = 0; i < n; ++i) r[i] = -range * uniform(21, i);
  return r;
}

// torch.linspace(lo, hi, n) in double: lo + i * (hi - lo) / (n - 1).
inline std::vector<double> linspace(double lo, double hi, std::size_t n) {
  std::vector<double> r(n);
  for (std::size_t i = 0; i < n; ++i)
    r[i] = n == 1 ? lo : lo + static_cast<double>(i) * (hi - lo) / static_cast<double>(n - 1);
  return r;
}

}  // namespace bench
