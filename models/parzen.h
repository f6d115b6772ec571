// Parzen windows and Nadaraya-Watson classification (d2l 2nd edition, "Attention Pooling by
// Similarity", exercise 1).
//
// The Parzen-window estimate of the joint density of an input x and a class c, from n training
// pairs (x_i, y_i) and the Gaussian kernel of width sigma in d dimensions:
//   p(x, y = c) = (1/n) sum_{i: y_i = c} k(x, x_i),
//   k(x, x_i)   = (2 pi sigma^2)^(-d/2) exp(-||x - x_i||^2 / (2 sigma^2))
// Nadaraya-Watson classification with the same kernel pools one-hot labels:
//   p(c | x) = sum_{i: y_i = c} k(x, x_i) / sum_i k(x, x_i) = p(x, y = c) / p(x),
// where p(x) = sum_c p(x, y = c) > 0. So for two classes
//   p(x, y = 1) - p(x, y = 0) = p(x) (p(1 | x) - p(0 | x)),
// and the two have the same sign: Parzen's rule "pick the class of larger joint density" and NW's
// "pick the class of larger pooled probability" make the same decisions.
//
// In floating point the direct densities underflow far from the data (exp(-745) is 0 in double;
// exp(-104) in float), and then both are 0 and decide nothing, while NW's softmax, which subtracts
// the row's largest logit, still decides. The log densities below (log-sum-exp per class) keep the
// equivalence at every distance.
#pragma once

#include <cstdint>
#include <vector>

#include <xtensor/xarray.hpp>

namespace tapegrad {

// p(x, y = c) for every query and class, directly as the exercise writes it (it underflows to 0
// far from the data). x_train (n, d), labels (n,) in 0..classes-1, x_query (q, d) -> (q, classes).
template <class T>
xt::xarray<T> parzen_joint_density(const xt::xarray<T>& x_train,
                                   const std::vector<std::int64_t>& labels, std::size_t classes,
                                   const xt::xarray<T>& x_query, T sigma);

// log p(x, y = c), computed as log-sum-exp over the class's training inputs (finite wherever the
// class has a training input, however far the query): (q, classes); -inf for an empty class.
template <class T>
xt::xarray<T> parzen_log_joint_density(const xt::xarray<T>& x_train,
                                       const std::vector<std::int64_t>& labels, std::size_t classes,
                                       const xt::xarray<T>& x_query, T sigma);

// The class of largest value in each row of scores (q, classes), ties to the smallest class; a row
// whose scores are all equal (e.g. all 0 after underflow) gives -1: no decision.
template <class T>
std::vector<std::int64_t> decide(const xt::xarray<T>& scores);

}  // namespace tapegrad
