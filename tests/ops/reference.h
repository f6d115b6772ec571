// Shared helpers for the op tests: PyTorch reference cases, approximate comparison, random inputs
// and error-message checks. Header-only; each tests/ops/*.cpp includes it.
//
// The reference cases live in tests/reference/ops_reference.json (the two bulky bmm cases in
// ops_reference_large.json), written by tests/reference/make_reference.py (PyTorch, float64). A
// case holds the op's inputs and arguments, torch's forward output, a fixed non-uniform upstream
// gradient and torch's gradient of every input. check_against_torch<T>() replays a case in tapegrad
// for T = double or float.
#pragma once

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <xtensor/xarray.hpp>

#include "../autograd/throws_with.h"
#include "autograd/gradcheck.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"
#include "ops/elementwise.h"
#include "ops/reduction.h"

#ifndef TAPEGRAD_REFERENCE_DIR
#error "TAPEGRAD_REFERENCE_DIR must name the directory holding ops_reference.json"
#endif

namespace tapegrad::test {

using json = nlohmann::json;

// --- the reference file ---------------------------------------------------------------------

inline std::string reference_path(const std::string& file = "ops_reference.json") {
  return std::string(TAPEGRAD_REFERENCE_DIR) + "/" + file;
}

// null when the file is missing or not valid JSON (the *TorchFile.HasCases tests report it).
inline json load_reference(const std::string& file) {
  std::ifstream f(reference_path(file));
  if (!f) return json();
  return json::parse(f, nullptr, /*allow_exceptions=*/false);
}

// Parsed once per process: every test process needs it to list the cases.
inline const json& reference() {
  static const json j = load_reference("ops_reference.json");
  return j;
}

// Case names of one family ("elementwise", "reduction", ...), sorted; empty when missing.
inline std::vector<std::string> case_names(const std::string& family) {
  std::vector<std::string> names;
  const json& r = reference();
  if (r.is_object() && r.contains(family))
    for (const auto& item : r.at(family).items()) names.push_back(item.key());
  return names;
}

// A case with "external": "<file>" keeps its data in that file (the bulky bmm cases), which is
// parsed only by the tests that use it.
inline const json& reference_case(const std::string& family, const std::string& name) {
  const json& c = reference().at(family).at(name);
  if (!c.contains("external")) return c;
  static std::map<std::string, json> external;
  const std::string file = c.at("external").get<std::string>();
  auto it = external.find(file);
  if (it == external.end()) it = external.emplace(file, load_reference(file)).first;
  return it->second.at(family).at(name);
}

// Names each parameterized test after its case, e.g.
// Reference/ElementwiseTorch.ForwardAndGradients/add_0d.
struct CaseName {
  std::string operator()(const ::testing::TestParamInfo<std::string>& info) const {
    return info.param;
  }
};

// {"shape": [2, 3], "data": [...row-major...]} -> xarray
template <class T>
xt::xarray<T> array_from_json(const json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  const auto data = j.at("data").get<std::vector<double>>();
  xt::xarray<T> a = xt::zeros<T>(shape);
  if (a.size() != data.size())
    throw std::runtime_error("reference: " + std::to_string(data.size()) + " values for shape " +
                             shape_str(shape));
  std::transform(data.begin(), data.end(), a.data(), [](double v) { return static_cast<T>(v); });
  return a;
}

inline xt::xarray<bool> mask_from_json(const json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  const json& data = j.at("data");
  xt::xarray<bool> m = xt::zeros<bool>(shape);
  if (m.size() != data.size()) throw std::runtime_error("reference: mask size mismatch");
  for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = data.at(i).get<bool>();
  return m;
}

// --- comparison -----------------------------------------------------------------------------

// float32 inputs are the float64 reference inputs rounded once, so float32 results are compared
// with the float64 answers at a float32-sized tolerance.
template <class T>
struct Tolerance;
template <>
struct Tolerance<double> {
  static constexpr double rtol = 1e-9, atol = 1e-12;
};
template <>
struct Tolerance<float> {
  static constexpr double rtol = 2e-5, atol = 2e-5;
};

// Passes when shapes match and |actual - expected| <= atol + rtol * |expected| everywhere; the
// failure names `what`, the first bad element and both values. NaN or inf never pass.
template <class T, class U>
::testing::AssertionResult all_close(const std::string& what, const xt::xarray<T>& actual,
                                     const xt::xarray<U>& expected, double rtol, double atol) {
  const Shape sa = to_shape(actual.shape()), se = to_shape(expected.shape());
  if (sa != se)
    return ::testing::AssertionFailure()
           << what << ": shape " << shape_str(sa) << ", expected " << shape_str(se);
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = static_cast<double>(actual.data()[i]);
    const double e = static_cast<double>(expected.data()[i]);
    if (!(std::abs(a - e) <= atol + rtol * std::abs(e))) {
      std::ostringstream os;
      os.precision(17);
      os << what << ": flat element " << i << " of shape " << shape_str(sa) << " is " << a
         << ", expected " << e << " (|diff| " << std::abs(a - e) << ", rtol " << rtol << ", atol "
         << atol << ")";
      return ::testing::AssertionFailure() << os.str();
    }
  }
  return ::testing::AssertionSuccess();
}

template <class T, class U>
::testing::AssertionResult all_close(const std::string& what, const xt::xarray<T>& actual,
                                     const xt::xarray<U>& expected) {
  return all_close(what, actual, expected, Tolerance<T>::rtol, Tolerance<T>::atol);
}

// --- replaying a reference case -------------------------------------------------------------

template <class T>
using OpFn = std::function<Tensor<T>(const std::vector<Tensor<T>>&)>;

// Builds the case's inputs as Tensor<T>, runs `f`, and checks the output against torch's; then
// backpropagates torch's upstream gradient and checks every input's gradient against torch's.
template <class T>
void check_against_torch(const json& c, const OpFn<T>& f) {
  const char* type = std::is_same_v<T, double> ? "double" : "float";
  SCOPED_TRACE(std::string("element type ") + type);
  std::vector<Tensor<T>> inputs;
  for (const json& in : c.at("inputs")) {
    Tensor<T> t(array_from_json<T>(in), in.at("requires_grad").get<bool>());
    t.set_name(in.at("name").get<std::string>());
    inputs.push_back(t);
  }
  const Tensor<T> out = f(inputs);
  EXPECT_TRUE(all_close("forward", out.value(), array_from_json<double>(c.at("output"))));
  if (!c.contains("grads")) return;  // no input requires grad (e.g. eye)

  ASSERT_TRUE(out.requires_grad());
  out.backward(array_from_json<T>(c.at("grad_output")));
  const json& grads = c.at("grads");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::string what = "gradient of input '" + inputs[i].name() + "'";
    if (grads.at(i).is_null()) {
      EXPECT_FALSE(inputs[i].has_grad()) << what << " should not exist";
      continue;
    }
    ASSERT_TRUE(inputs[i].has_grad()) << what << " was not computed";
    EXPECT_TRUE(all_close(what, inputs[i].grad(), array_from_json<double>(grads.at(i))));
  }
}

// f's output times a fixed tensor w, summed: a scalar whose upstream gradient into f is w, so the
// backward rule is exercised with a non-uniform seed (as inside a real loss) and not just with the
// one-hot seeds gradcheck uses for the Jacobian.
inline GradcheckFn weighted_sum(GradcheckFn f, Tensor<double> w) {
  return
      [f = std::move(f), w](const std::vector<Tensor<double>>& in) { return sum(mul(f(in), w)); };
}

// Arguments of a case, for the per-family dispatchers.
inline std::vector<long> longs(const json& args, const char* key) {
  return args.at(key).get<std::vector<long>>();
}

// --- random inputs --------------------------------------------------------------------------

// Values uniform in [lo, hi).
inline Tensor<double> uniform(std::mt19937& rng, const Shape& shape, double lo, double hi,
                              bool requires_grad = true) {
  std::uniform_real_distribution<double> d(lo, hi);
  xt::xarray<double> a = xt::zeros<double>(shape);
  for (auto& v : a) v = d(rng);
  return Tensor<double>(std::move(a), requires_grad);
}

// Magnitudes in [lo, hi) with random signs: keeps |x| >= lo > 0, away from the kinks of abs and
// relu and from the pole of 1/x, where finite differences are meaningless.
inline Tensor<double> away_from_zero(std::mt19937& rng, const Shape& shape, double lo = 0.2,
                                     double hi = 2.0, bool requires_grad = true) {
  std::uniform_real_distribution<double> d(lo, hi);
  std::bernoulli_distribution sign(0.5);
  xt::xarray<double> a = xt::zeros<double>(shape);
  for (auto& v : a) v = sign(rng) ? d(rng) : -d(rng);
  return Tensor<double>(std::move(a), requires_grad);
}

// Distinct values at least 0.05 apart, shuffled: no ties, so max has a well-defined gradient that
// finite differences (step 1e-6) can see.
inline Tensor<double> distinct(std::mt19937& rng, const Shape& shape, bool requires_grad = true) {
  xt::xarray<double> a = xt::zeros<double>(shape);
  std::vector<double> v(a.size());
  std::uniform_real_distribution<double> jitter(0.0, 0.05);
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = 0.1 * static_cast<double>(i) - 0.05 * static_cast<double>(v.size()) + jitter(rng);
  std::shuffle(v.begin(), v.end(), rng);
  std::copy(v.begin(), v.end(), a.data());
  return Tensor<double>(std::move(a), requires_grad);
}

// --- error messages -------------------------------------------------------------------------

// Passes when f throws std::invalid_argument whose message contains every one of `parts`.
template <class F>
::testing::AssertionResult throws_invalid_argument(F&& f, const std::vector<std::string>& parts) {
  return throws_with_all<std::invalid_argument>(std::forward<F>(f), parts);
}

// The parametrised test every op family declares: each PyTorch case of `family` in the reference
// JSON is replayed through the file's run_case(c, inputs), forward values and input gradients, in
// float64 and float32; and the family must have cases (a renamed family would otherwise pass
// vacuously). Use inside the test file's namespace, where run_case is visible.
#define TAPEGRAD_TORCH_REFERENCE_TESTS(Suite, family)                                              \
  class Suite : public ::testing::TestWithParam<std::string> {};                                   \
  TEST_P(Suite, ForwardAndGradients) {                                                             \
    const json& c = reference_case(family, GetParam());                                            \
    check_against_torch<double>(c, [&](const auto& in) { return run_case(c, in); });               \
    check_against_torch<float>(c, [&](const auto& in) { return run_case(c, in); });                \
  }                                                                                                \
  INSTANTIATE_TEST_SUITE_P(Reference, Suite, ::testing::ValuesIn(case_names(family)), CaseName()); \
  TEST(Suite##File, HasCases) {                                                                    \
    EXPECT_FALSE(case_names(family).empty()) << "no cases in " << reference_path();                \
  }

}  // namespace tapegrad::test
