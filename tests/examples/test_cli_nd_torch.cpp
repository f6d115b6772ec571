// The nadaraya_watson program on vectors and on classes, against PyTorch through the
// program's contract: tests/reference/nd_cli/make_nd_cli_reference.py implements the contract in
// torch float64 and committed its numbers (nd_cli_reference.json). Each case runs the program on
// the case's CSV files and flags, and compares predictions.csv, the probability files and
// training.json with torch:
//   --dtype float64, composed and fused ops: 1e-6 (relative to max(1, |torch|)), labels exactly;
//   --dtype float32: 1e-5 (measured: at most 4e-7), labels not compared (a near tie could flip).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "examples/csv.h"

namespace tapegrad {
namespace {

using testutil::quote;
using testutil::Result;
using testutil::run_nw;
using testutil::slurp;
using testutil::TempDir;

const nlohmann::json& nd_reference() {
  static const nlohmann::json j = nlohmann::json::parse(
      std::ifstream(std::string(TAPEGRAD_CHAPTER_REF_DIR) + "/../nd_cli/nd_cli_reference.json"));
  return j;
}

std::vector<std::string> x_header(int d) {
  if (d == 1) return {"x"};
  std::vector<std::string> h;
  for (int k = 1; k <= d; ++k) h.push_back("x" + std::to_string(k));
  return h;
}

struct Run {
  std::string dtype, impl;
  double tol;
  bool labels;  // compare predicted labels exactly
};

// max over entries of |got - want| / max(1, |want|), with a message for the first offender.
// The largest error of the current run (check_all prints it: the measured agreement).
double worst_error = 0;
std::string worst_where;

void expect_close(const std::string& what, const std::vector<double>& got,
                  const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i]));
    if (err > worst_error) worst_error = err, worst_where = what;
    ASSERT_LE(err, tol) << what << "[" << i << "]: got " << got[i] << ", torch " << want[i];
  }
}

// Column c of rows (the JSON's row-major table).
std::vector<double> column(const nlohmann::json& rows, std::size_t c) {
  std::vector<double> col;
  for (const auto& row : rows) col.push_back(row[c].get<double>());
  return col;
}

void check_probabilities(const TempDir& tmp, const nlohmann::json& c, const char* name,
                         const Run& run) {
  const std::size_t classes = c["classes"].get<std::size_t>();
  std::vector<std::string> header;
  for (std::size_t k = 0; k < classes; ++k) header.push_back("p" + std::to_string(k));
  const Columns p = read_csv((tmp / "out" / (std::string(name) + ".csv")).string(), header);
  for (std::size_t k = 0; k < classes; ++k)
    expect_close(c["name"].get<std::string>() + " " + name + " p" + std::to_string(k), p[k],
                 column(c[name], k), run.tol);
}

void check_training_json(const nlohmann::json& c, const nlohmann::json& j, const Run& run) {
  const std::string name = c["name"];
  EXPECT_EQ(j["d"].get<int>(), c["d"].get<int>()) << name;
  EXPECT_EQ(j["task"], c["task"]) << name;
  EXPECT_EQ(j["widths"], c["widths"]) << name;
  std::vector<double> w_got, w_want;
  if (c["w"].is_array()) {
    ASSERT_TRUE(j["w"].is_array()) << name << ": per-coordinate w must be a list";
    w_got = j["w"].get<std::vector<double>>(), w_want = c["w"].get<std::vector<double>>();
  } else {
    ASSERT_TRUE(j["w"].is_number()) << name << ": shared w must be a number";
    w_got = {j["w"].get<double>()}, w_want = {c["w"].get<double>()};
  }
  expect_close(name + " w", w_got, w_want, run.tol);
  expect_close(name + " loss", j["loss"].get<std::vector<double>>(),
               c["loss"].get<std::vector<double>>(), run.tol);
  // w after each epoch's step: as many as epochs, the last one the learned w.
  ASSERT_EQ(j["w_per_epoch"].size(), c["loss"].size()) << name;
  EXPECT_EQ(j["w_per_epoch"].back(), j["w"]) << name;
  if (c["task"] != "classification") return;
  // Exercise 1: with the Gaussian kernel, the Parzen rule decides as NW at every query.
  const bool gaussian =
      std::find(c["args"].begin(), c["args"].end(), "gaussian") != c["args"].end();
  EXPECT_EQ(j.contains("parzen_agreement"), gaussian) << name;
  if (gaussian) {
    EXPECT_EQ(j["parzen_agreement"]["agree"], j["parzen_agreement"]["queries"]) << name;
  }
  EXPECT_EQ(j["classes"].get<int>(), c["classes"].get<int>()) << name;
  if (run.labels) {
    EXPECT_DOUBLE_EQ(j["train_accuracy"].get<double>(), c["train_accuracy"].get<double>()) << name;
  }
}

void check_case(const nlohmann::json& c, const Run& run) {
  const std::string name = c["name"];
  const int d = c["d"];
  TempDir tmp;
  const std::string train = tmp.write("train.csv", c["train_csv"]);
  const std::string query = tmp.write("query.csv", c["query_csv"]);
  std::string args = "--train " + quote(train) + " --query " + quote(query) + " --dtype " +
                     run.dtype + " --no-plots --out " + quote((tmp / "out").string());
  if (!run.impl.empty()) args += " --impl " + run.impl;
  for (const auto& a : c["args"]) args += " " + quote(a.get<std::string>());
  const Result r = run_nw(tmp, args);
  ASSERT_EQ(r.status, 0) << name << ": " << r.err;

  std::vector<std::string> header = x_header(d);
  for (const char* col : {"average", "nonparametric", "parametric"}) header.push_back(col);
  const Columns p = read_csv((tmp / "out" / "predictions.csv").string(), header);
  for (int k = 0; k < d; ++k)
    expect_close(name + " query column " + header[k], p[k], column(c["predictions"], k), 1e-12);
  const bool classes = c["task"] == "classification";
  for (int k = d; k < d + 3; ++k) {
    if (classes && !run.labels) continue;  // float32 labels: a near tie could flip
    expect_close(name + " " + header[k], p[k], column(c["predictions"], k), classes ? 0 : run.tol);
  }
  if (classes) {
    check_probabilities(tmp, c, "probabilities_nonparametric", run);
    check_probabilities(tmp, c, "probabilities_parametric", run);
  }
  check_training_json(c, nlohmann::json::parse(slurp(tmp / "out" / "training.json")), run);
}

void check_all(const Run& run) {
  const auto& cases = nd_reference()["cases"];
  ASSERT_GE(cases.size(), 10u);
  worst_error = 0, worst_where.clear();
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>() + " " + run.dtype + " " + run.impl);
    check_case(c, run);
  }
  std::printf("%s %s: largest error against torch float64 %.2e (%s)\n", run.dtype.c_str(),
              run.impl.empty() ? "default" : run.impl.c_str(), worst_error, worst_where.c_str());
}

TEST(CliNdTorch, Float64ComposedMatchesTorch) {
  check_all({"float64", "composed", 1e-6, true});
}
TEST(CliNdTorch, Float64FusedMatchesTorch) {
  check_all({"float64", "fused", 1e-6, true});
}
TEST(CliNdTorch, Float64DefaultImplMatchesTorch) {
  check_all({"float64", "", 1e-6, true});
}
TEST(CliNdTorch, Float32MatchesTorch) {
  check_all({"float32", "", 1e-5, false});
}
TEST(CliNdTorch, Float32FusedMatchesTorch) {
  check_all({"float32", "fused", 1e-5, false});
}

}  // namespace
}  // namespace tapegrad
