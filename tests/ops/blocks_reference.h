// The PyTorch cases of the building blocks (tests/reference/blocks_reference.json, written by
// tests/reference/make_blocks_reference.py), in the form of reference.h's: the same replay
// (check_against_torch, float64 and float32), from their own file. Integer arguments (class
// targets, indices) are {"shape", "data"} objects in a case's args.
#pragma once

#include <string>
#include <vector>

#include "ops/index_array.h"
#include "reference.h"

namespace tapegrad::test {

inline const json& blocks_reference() {
  static const json j = load_reference("blocks_reference.json");
  return j;
}

// Case names of one family, sorted; empty when the file or the family is missing.
inline std::vector<std::string> blocks_case_names(const std::string& family) {
  std::vector<std::string> names;
  const json& r = blocks_reference();
  if (r.is_object() && r.contains(family))
    for (const auto& item : r.at(family).items()) names.push_back(item.key());
  return names;
}

inline const json& blocks_case(const std::string& family, const std::string& name) {
  return blocks_reference().at(family).at(name);
}

// {"shape": [...], "data": [integers]} -> IndexArray
inline IndexArray index_array_from_json(const json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  const auto data = j.at("data").get<std::vector<std::int64_t>>();
  IndexArray a = IndexArray::from_shape(shape);
  if (a.size() != data.size()) throw std::runtime_error("reference: index array size mismatch");
  std::copy(data.begin(), data.end(), a.begin());
  return a;
}

// TAPEGRAD_TORCH_REFERENCE_TESTS for a family of blocks_reference.json.
#define TAPEGRAD_BLOCKS_REFERENCE_TESTS(Suite, family)                                       \
  class Suite : public ::testing::TestWithParam<std::string> {};                             \
  TEST_P(Suite, ForwardAndGradients) {                                                       \
    const json& c = blocks_case(family, GetParam());                                         \
    check_against_torch<double>(c, [&](const auto& in) { return run_case(c, in); });         \
    check_against_torch<float>(c, [&](const auto& in) { return run_case(c, in); });          \
  }                                                                                          \
  INSTANTIATE_TEST_SUITE_P(Reference, Suite, ::testing::ValuesIn(blocks_case_names(family)), \
                           CaseName());                                                      \
  TEST(Suite##File, HasCases) {                                                              \
    EXPECT_FALSE(blocks_case_names(family).empty())                                          \
        << "no cases in " << reference_path("blocks_reference.json");                        \
  }

}  // namespace tapegrad::test
