#include "models/parzen.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace tapegrad {

namespace {

// Checks the shapes and labels shared by both estimates.
template <class T>
void check_parzen_inputs(const xt::xarray<T>& x_train, const std::vector<std::int64_t>& labels,
                         std::size_t classes, const xt::xarray<T>& x_query, T sigma) {
  if (x_train.dimension() != 2 || x_query.dimension() != 2 ||
      x_train.shape()[1] != x_query.shape()[1])
    throw std::invalid_argument(
        "parzen: x_train (n, d) and x_query (q, d) must be 2-D with equal d");
  if (labels.size() != x_train.shape()[0])
    throw std::invalid_argument("parzen: labels has " + std::to_string(labels.size()) +
                                " entries for " + std::to_string(x_train.shape()[0]) +
                                " training inputs");
  for (std::int64_t y : labels)
    if (y < 0 || std::size_t(y) >= classes)
      throw std::invalid_argument("parzen: label " + std::to_string(y) + " is not in 0.." +
                                  std::to_string(classes) + "-1");
  if (!(sigma > 0)) throw std::invalid_argument("parzen: sigma must be positive");
}

// The Gaussian kernel's exponent -||x_q - x_i||^2 / (2 sigma^2).
template <class T>
T log_kernel_exponent(const xt::xarray<T>& x_train, std::size_t i, const xt::xarray<T>& x_query,
                      std::size_t q, T sigma) {
  T dist2 = 0;
  for (std::size_t k = 0; k < x_train.shape()[1]; ++k) {
    const T diff = x_query(q, k) - x_train(i, k);
    dist2 += diff * diff;
  }
  return -dist2 / (2 * sigma * sigma);
}

// log of the kernel's normalising constant divided by n: -(d/2) log(2 pi sigma^2) - log n.
template <class T>
T log_normaliser(std::size_t n, std::size_t d, T sigma) {
  const double two_pi_sigma2 = 2 * M_PI * double(sigma) * double(sigma);
  return static_cast<T>(-0.5 * double(d) * std::log(two_pi_sigma2) - std::log(double(n)));
}

}  // namespace

template <class T>
xt::xarray<T> parzen_joint_density(const xt::xarray<T>& x_train,
                                   const std::vector<std::int64_t>& labels, std::size_t classes,
                                   const xt::xarray<T>& x_query, T sigma) {
  check_parzen_inputs(x_train, labels, classes, x_query, sigma);
  const std::size_t n = x_train.shape()[0], nq = x_query.shape()[0];
  const T scale = std::exp(log_normaliser(n, x_train.shape()[1], sigma));
  xt::xarray<T> density = xt::zeros<T>({nq, classes});
  for (std::size_t q = 0; q < nq; ++q)  // p(x_q, c) = (1/n) sum_{i in c} k(x_q, x_i)
    for (std::size_t i = 0; i < n; ++i)
      density(q, std::size_t(labels[i])) +=
          scale * std::exp(log_kernel_exponent(x_train, i, x_query, q, sigma));
  return density;
}

template <class T>
xt::xarray<T> parzen_log_joint_density(const xt::xarray<T>& x_train,
                                       const std::vector<std::int64_t>& labels, std::size_t classes,
                                       const xt::xarray<T>& x_query, T sigma) {
  check_parzen_inputs(x_train, labels, classes, x_query, sigma);
  const std::size_t n = x_train.shape()[0], nq = x_query.shape()[0];
  const T inf = std::numeric_limits<T>::infinity();
  const T log_scale = log_normaliser(n, x_train.shape()[1], sigma);
  xt::xarray<T> log_density = xt::zeros<T>({nq, classes});
  std::vector<T> largest(classes), sum(classes);
  for (std::size_t q = 0; q < nq; ++q) {
    // log sum_{i in c} exp(e_i) = m_c + log sum_{i in c} exp(e_i - m_c), m_c = max_{i in c} e_i
    std::fill(largest.begin(), largest.end(), -inf);
    std::fill(sum.begin(), sum.end(), T(0));
    for (std::size_t i = 0; i < n; ++i) {
      T& m = largest[std::size_t(labels[i])];
      m = std::max(m, log_kernel_exponent(x_train, i, x_query, q, sigma));
    }
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t c = std::size_t(labels[i]);
      sum[c] += std::exp(log_kernel_exponent(x_train, i, x_query, q, sigma) - largest[c]);
    }
    for (std::size_t c = 0; c < classes; ++c)
      log_density(q, c) = sum[c] > 0 ? largest[c] + std::log(sum[c]) + log_scale : -inf;
  }
  return log_density;
}

template <class T>
std::vector<std::int64_t> decide(const xt::xarray<T>& scores) {
  std::vector<std::int64_t> decisions(scores.shape()[0], -1);
  for (std::size_t q = 0; q < scores.shape()[0]; ++q) {
    std::size_t best = 0;
    bool all_equal = true;
    for (std::size_t c = 1; c < scores.shape()[1]; ++c) {
      all_equal = all_equal && scores(q, c) == scores(q, 0);
      if (scores(q, c) > scores(q, best)) best = c;
    }
    if (!all_equal || scores.shape()[1] == 1) decisions[q] = std::int64_t(best);
  }
  return decisions;
}

#define TAPEGRAD_INSTANTIATE(T)                                                                  \
  template xt::xarray<T> parzen_joint_density(const xt::xarray<T>&,                              \
                                              const std::vector<std::int64_t>&, std::size_t,     \
                                              const xt::xarray<T>&, T);                          \
  template xt::xarray<T> parzen_log_joint_density(const xt::xarray<T>&,                          \
                                                  const std::vector<std::int64_t>&, std::size_t, \
                                                  const xt::xarray<T>&, T);                      \
  template std::vector<std::int64_t> decide(const xt::xarray<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
