// Helpers shared by the model tests: the PyTorch reference (tests/reference/chapter), conversions
// between std::vector and tensors, and relative-difference bookkeeping.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/tensor.h"
#include "examples/csv.h"

namespace tapegrad::testutil {

inline std::string ref_path(const std::string& file) {
  return std::string(TAPEGRAD_CHAPTER_REF_DIR) + "/" + file;
}

// chapter_reference.json, parsed once per process.
inline const nlohmann::json& reference() {
  static const nlohmann::json j = [] {
    std::ifstream in(ref_path("chapter_reference.json"));
    if (!in) throw std::runtime_error("cannot open " + ref_path("chapter_reference.json"));
    return nlohmann::json::parse(in);
  }();
  return j;
}

// The reference data exactly as PyTorch saw it (written with repr, read back with strtod).
struct RefData {
  std::vector<double> x_train, y_train, x_query;
};
inline const RefData& ref_data() {
  static const RefData d = [] {
    RefData r;
    Columns t = read_csv(ref_path("train.csv"), {"x", "y"});
    Columns q = read_csv(ref_path("query.csv"), {"x"});
    r.x_train = t[0], r.y_train = t[1], r.x_query = q[0];
    return r;
  }();
  return d;
}

inline std::vector<double> json_vec(const nlohmann::json& j) {
  return j.get<std::vector<double>>();
}
inline std::vector<std::vector<double>> json_mat(const nlohmann::json& j) {
  return j.get<std::vector<std::vector<double>>>();
}

template <class T>
Tensor<T> to_tensor(const std::vector<double>& v, bool requires_grad = false) {
  xt::xarray<T> a = xt::zeros<T>({v.size()});
  for (std::size_t i = 0; i < v.size(); ++i) a(i) = static_cast<T>(v[i]);
  return Tensor<T>(std::move(a), requires_grad);
}

template <class T>
std::vector<double> to_vec(const Tensor<T>& t) {
  return std::vector<double>(t.value().begin(), t.value().end());
}

// |a - ref| / max(|ref|, floor): relative difference, with a floor for values near zero.
inline double rel_diff(double a, double ref, double floor = 1e-300) {
  if (std::isnan(a) || std::isnan(ref)) return INFINITY;
  return std::abs(a - ref) / std::max(std::abs(ref), floor);
}

inline double max_rel_diff(const std::vector<double>& a, const std::vector<double>& ref,
                           double floor = 1e-300) {
  if (a.size() != ref.size()) return INFINITY;
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, rel_diff(a[i], ref[i], floor));
  return m;
}

// Prints the observed difference so a run documents how close we are, then checks the bound.
inline ::testing::AssertionResult within_rel(const std::string& what, double observed,
                                             double bound) {
  std::cout << "[ rel diff ] " << what << ": " << observed << " (bound " << bound << ")\n";
  if (observed <= bound) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": max relative difference " << observed << " > " << bound;
}

}  // namespace tapegrad::testutil
