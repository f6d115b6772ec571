// Between the programs' plain numbers (std::vector<double>, Matrix rows, as CSVs and plots take
// them) and tensors of the run's dtype.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.h"
#include "examples/plots.h"

namespace tapegrad {

// Row-major values (rows * cols) -> a (rows, cols) tensor of the run's dtype.
template <class T>
Tensor<T> as_tensor(const std::vector<double>& values, std::size_t rows, std::size_t cols) {
  xt::xarray<T> a = xt::zeros<T>({rows, cols});
  for (std::size_t i = 0; i < rows * cols; ++i) a.data()[i] = static_cast<T>(values[i]);
  return Tensor<T>(std::move(a));
}

template <class T>
std::vector<double> to_vector(const xt::xarray<T>& a) {
  return std::vector<double>(a.begin(), a.end());
}

template <class T>
Matrix to_matrix(const xt::xarray<T>& a) {
  Matrix m(a.shape()[0], std::vector<double>(a.shape()[1]));
  for (std::size_t r = 0; r < m.size(); ++r)
    for (std::size_t c = 0; c < m[r].size(); ++c) m[r][c] = a(r, c);
  return m;
}

}  // namespace tapegrad
