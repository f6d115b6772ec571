// The nadaraya_watson program end to end: it is run as a user would run it (std::system, output
// redirected to files in a fresh temporary directory), on the PyTorch reference data, and on bad
// input, where it must exit with status 2, print exactly one line on stderr naming the culprit,
// and write nothing.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../models/model_test_util.h"
#include "cli_test_util.h"
#include "examples/csv.h"
#include "examples/plots.h"

namespace fs = std::filesystem;
using namespace tapegrad;
using namespace tapegrad::testutil;

namespace {

// Reads a headerless CSV matrix (the attention files).
std::vector<std::vector<double>> read_matrix(const fs::path& p) {
  std::vector<std::vector<double>> m;
  std::ifstream f(p);
  std::string line;
  while (std::getline(f, line)) {
    std::vector<double> row;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) row.push_back(std::stod(cell));
    m.push_back(row);
  }
  return m;
}

double max_rel_diff(const std::vector<std::vector<double>>& a,
                    const std::vector<std::vector<double>>& ref) {
  if (a.size() != ref.size()) return INFINITY;
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, testutil::max_rel_diff(a[i], ref[i]));
  return m;
}

std::string ref_args() {
  return "--train " + quote(ref_path("train.csv")) + " --query " + quote(ref_path("query.csv"));
}

std::vector<double> epoch_losses(const std::string& out) {
  std::vector<double> v;
  for (const auto& l : epoch_lines(out)) v.push_back(std::stod(l.substr(l.find("loss ") + 5)));
  return v;
}

const char* kOutputs[] = {"predictions.csv", "attention_nonparametric.csv",
                          "attention_parametric.csv", "training.json"};

}  // namespace

// The chapter's run on the reference data in float64: the printed losses are torch's to 6 decimals,
// and every output file holds torch's numbers (17 significant digits, compared to 1e-9 relative).
static void check_reference_run_float64(const std::string& impl) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const Result r =
      run_nw(tmp, ref_args() + " --dtype float64 --w-init 0.3 --epochs 5 --no-plots" +
                      (impl.empty() ? "" : " --impl " + impl) + " --out " + quote(out.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto& ref = reference();
  const auto& par = ref["parametric"];
  const std::string tag = "cli float64 " + (impl.empty() ? std::string("default") : impl) + " ";

  // stdout: "epoch k, loss L" exactly as the chapter prints them.
  const auto losses = json_vec(par["loss"]);
  const auto lines = epoch_lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  for (std::size_t e = 0; e < 5; ++e) {
    char expected[64];
    std::snprintf(expected, sizeof expected, "epoch %zu, loss %.6f", e + 1, losses[e]);
    EXPECT_EQ(lines[e], expected);
  }

  // predictions.csv: one row per query.
  const Columns p =
      read_csv((out / "predictions.csv").string(), {"x", "average", "nonparametric", "parametric"});
  ASSERT_EQ(p[0].size(), 50u);
  EXPECT_EQ(p[0], ref_data().x_query);
  for (double a : p[1]) EXPECT_LE(rel_diff(a, ref["average"].get<double>()), 1e-12);
  EXPECT_TRUE(within_rel(
      tag + "nonparametric predictions",
      testutil::max_rel_diff(p[2], json_vec(ref["nonparametric"]["predictions"])), 1e-9));
  EXPECT_TRUE(within_rel(tag + "parametric predictions",
                         testutil::max_rel_diff(p[3], json_vec(par["predictions"])), 1e-9));

  // The attention matrices, (n_query, n_train) = 50 x 50.
  const auto anp = read_matrix(out / "attention_nonparametric.csv");
  const auto apar = read_matrix(out / "attention_parametric.csv");
  ASSERT_EQ(anp.size(), 50u);
  ASSERT_EQ(apar.size(), 50u);
  for (std::size_t i = 0; i < 50; ++i) {
    ASSERT_EQ(anp[i].size(), 50u);
    ASSERT_EQ(apar[i].size(), 50u);
  }
  EXPECT_TRUE(within_rel(tag + "nonparametric weights",
                         max_rel_diff(anp, json_mat(ref["nonparametric"]["weights"])), 1e-9));
  EXPECT_TRUE(
      within_rel(tag + "parametric weights", max_rel_diff(apar, json_mat(par["weights"])), 1e-9));

  // training.json: the run's settings and results.
  const auto j = nlohmann::json::parse(slurp(out / "training.json"));
  for (const char* key : {"w_init", "w", "loss", "lr", "epochs", "kernel", "sigma", "dtype",
                          "n_train", "n_query", "train_seconds"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["w_init"].get<double>(), 0.3);
  EXPECT_TRUE(within_rel(tag + "w", rel_diff(j["w"].get<double>(), par["w"].get<double>()), 1e-9));
  EXPECT_TRUE(within_rel(tag + "loss", testutil::max_rel_diff(json_vec(j["loss"]), losses), 1e-9));
  EXPECT_EQ(j["lr"].get<double>(), 0.5);
  EXPECT_EQ(j["epochs"].get<int>(), 5);
  EXPECT_EQ(j["kernel"].get<std::string>(), "gaussian");
  EXPECT_EQ(j["sigma"].get<double>(), 1.0);
  EXPECT_EQ(j["dtype"].get<std::string>(), "float64");
  EXPECT_EQ(j["n_train"].get<int>(), 50);
  EXPECT_EQ(j["n_query"].get<int>(), 50);
  EXPECT_GE(j["train_seconds"].get<double>(), 0.0);
  // No --impl: the chapter's composed ops (the data is far below --memory-budget).
  EXPECT_EQ(j["impl"].get<std::string>(), impl.empty() ? "composed" : impl);

  // Only the four outputs: no plots (--no-plots), no leftover temporaries.
  std::set<std::string> names;
  for (const auto& n : files_in(out)) names.insert(n);
  EXPECT_EQ(names, (std::set<std::string>(std::begin(kOutputs), std::end(kOutputs))));
}

// The default implementation (composed), and each one named explicitly.
TEST(Cli, ReferenceRunFloat64MatchesTorch) {
  check_reference_run_float64("");
}
TEST(Cli, ReferenceRunFloat64ComposedMatchesTorch) {
  check_reference_run_float64("composed");
}
TEST(Cli, ReferenceRunFloat64FusedMatchesTorch) {
  check_reference_run_float64("fused");
}

// float32 (the default dtype) agrees with torch's float64 to 1e-4 relative.
TEST(Cli, ReferenceRunFloat32MatchesTorch) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const Result r =
      run_nw(tmp, ref_args() + " --w-init 0.3 --no-plots --out " + quote(out.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto& par = reference()["parametric"];
  EXPECT_TRUE(within_rel("cli float32 loss",
                         testutil::max_rel_diff(epoch_losses(r.out), json_vec(par["loss"])), 1e-4));
  const auto j = nlohmann::json::parse(slurp(out / "training.json"));
  EXPECT_EQ(j["dtype"].get<std::string>(), "float32");
  EXPECT_TRUE(
      within_rel("cli float32 w", rel_diff(j["w"].get<double>(), par["w"].get<double>()), 1e-4));
  const Columns p =
      read_csv((out / "predictions.csv").string(), {"x", "average", "nonparametric", "parametric"});
  EXPECT_TRUE(within_rel("cli float32 parametric predictions",
                         testutil::max_rel_diff(p[3], json_vec(par["predictions"])), 1e-4));
}

// --keep-self trains without leave-one-out, as torch does with keys of shape (n, n).
TEST(Cli, KeepSelfMatchesTorch) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const Result r =
      run_nw(tmp, ref_args() + " --dtype float64 --w-init 0.3 --keep-self --no-plots --out " +
                      quote(out.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto& ks = reference()["keep_self"];
  const auto j = nlohmann::json::parse(slurp(out / "training.json"));
  EXPECT_TRUE(within_rel("cli keep-self loss",
                         testutil::max_rel_diff(json_vec(j["loss"]), json_vec(ks["loss"])), 1e-9));
  EXPECT_TRUE(
      within_rel("cli keep-self w", rel_diff(j["w"].get<double>(), ks["w"].get<double>()), 1e-9));
}

// With no data flags the program runs the chapter on its own seeded data and writes every output.
TEST(Cli, DefaultsRunOnChapterData) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const Result r = run_nw(tmp, "--no-plots --out " + quote(out.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(epoch_lines(r.out).size(), 5u) << r.out;
  for (const char* f : kOutputs) EXPECT_TRUE(fs::is_regular_file(out / f)) << f;
  const Columns p =
      read_csv((out / "predictions.csv").string(), {"x", "average", "nonparametric", "parametric"});
  ASSERT_EQ(p[0].size(), 50u);
  EXPECT_DOUBLE_EQ(p[0][49], 4.9);
  const auto j = nlohmann::json::parse(slurp(out / "training.json"));
  EXPECT_EQ(j["n_train"].get<int>(), 50);
  EXPECT_EQ(j["epochs"].get<int>(), 5);
  EXPECT_EQ(j["dtype"].get<std::string>(), "float32");
  const auto losses = json_vec(j["loss"]);
  ASSERT_EQ(losses.size(), 5u);
  EXPECT_LT(losses.back(), losses.front());
  // Same seed, same run: the output is reproducible.
  const fs::path out2 = tmp / "out2";
  ASSERT_EQ(run_nw(tmp, "--no-plots --out " + quote(out2.string())).status, 0);
  EXPECT_EQ(slurp(out / "predictions.csv"), slurp(out2 / "predictions.csv"));
}

// --help prints the usage and exits 0.
TEST(Cli, HelpExitsZero) {
  TempDir tmp;
  const Result r = run_nw(tmp, "--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--train"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--kernel"), std::string::npos) << r.out;
}

// Every bad input is reported the same way: exit status 2, exactly one line on stderr that names
// the file (and line) or the flag, and no output files.
TEST(Cli, BadInputExitsTwoWithOneLineAndNoOutput) {
  TempDir tmp;
  const std::string good_train = ref_path("train.csv");
  fs::create_directory(tmp / "a_directory.csv");
  struct Case {
    std::string name, args;
    std::vector<std::string> fragments;  // each must appear in the stderr line
  };
  const std::string missing = (tmp / "missing.csv").string();
  const std::string dir = (tmp / "a_directory.csv").string();
  const std::string header = tmp.write("header.csv", "x,z\n1,2\n3,4\n");
  const std::string nonnum = tmp.write("nonnum.csv", "x,y\n1,2\n3,abc\n4,5\n");
  const std::string nan = tmp.write("nan.csv", "x,y\n1,2\n\nnan,2\n");
  const std::string inf = tmp.write("inf.csv", "x,y\n1,inf\n2,3\n");
  const std::string one = tmp.write("one_row.csv", "x,y\n1,2\n");
  const std::string qempty = tmp.write("query_empty.csv", "x\n");
  const std::string qbad = tmp.write("query_bad.csv", "x\n1\n2,3\n");
  const std::vector<Case> cases = {
      {"missing train file", "--train " + quote(missing), {missing}},
      {"directory as train file", "--train " + quote(dir), {dir}},
      {"wrong header", "--train " + quote(header), {header + ":1:"}},
      {"non-numeric cell", "--train " + quote(nonnum), {nonnum + ":3:", "abc"}},
      {"NaN", "--train " + quote(nan), {nan + ":4:"}},
      {"inf", "--train " + quote(inf), {inf + ":2:"}},
      {"one training row", "--train " + quote(one), {one, "2"}},
      {"empty query file", "--train " + quote(good_train) + " --query " + quote(qempty), {qempty}},
      {"bad query row", "--train " + quote(good_train) + " --query " + quote(qbad), {qbad + ":3:"}},
      {"unknown kernel", "--kernel triangle", {"triangle"}},
      {"sigma 0", "--sigma 0", {"--sigma"}},
      {"sigma -1", "--sigma -1", {"--sigma"}},
      {"dtype float16", "--dtype float16", {"float16"}},
      {"unknown flag", "--bogus", {"--bogus"}},
      {"negative epochs", "--epochs -1", {"--epochs"}},
      {"unknown impl", "--impl magic", {"magic"}},
      {"non-numeric flag value", "--lr fast", {"--lr"}},
      {"negative lr", "--lr -1", {"--lr"}},
      {"one generated training point", "--n-train 1", {"--n-train"}},
      {"negative threads", "--threads -1", {"--threads"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    expect_bad_input(tmp, c.args, c.fragments, tmp / ("out_" + std::to_string(&c - cases.data())));
  }
}

// With gnuplot installed, the program draws the 9 figures of figure_files() (and keeps plots.gp),
// renaming them into place only when gnuplot succeeded: no *.tmp file remains.
TEST(Cli, FiguresWithGnuplot) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot not installed";
  TempDir tmp;
  const fs::path out = tmp / "out";
  const Result r = run_nw(tmp, ref_args() + " --out " + quote(out.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto figures = figure_files();
  EXPECT_EQ(figures.size(), 9u);
  for (const auto& f : figures) {
    ASSERT_TRUE(fs::is_regular_file(out / f)) << f;
    EXPECT_EQ(slurp(out / f).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << f;
  }
  EXPECT_TRUE(fs::is_regular_file(out / "plots.gp"));
  for (const auto& n : files_in(out)) EXPECT_NE(fs::path(n).extension(), ".tmp") << n;

  // --epochs 0 is valid input: an empty loss curve must not make gnuplot fail (it did: exit 1).
  const fs::path out0 = tmp / "out0";
  const Result r0 = run_nw(tmp, ref_args() + " --epochs 0 --out " + quote(out0.string()));
  ASSERT_EQ(r0.status, 0) << r0.err;
  for (const auto& f : figures) EXPECT_TRUE(fs::is_regular_file(out0 / f)) << f;
  for (const auto& n : files_in(out0)) EXPECT_NE(fs::path(n).extension(), ".tmp") << n;
}

// The gnuplot script never plots an empty datablock (gnuplot rejects "plot" without points): with
// no epochs the loss figure is an empty frame.
TEST(Cli, PlotScriptWithoutEpochs) {
  PlotData d;
  d.x_train = {0, 1}, d.y_train = {1, 2}, d.x_query = {0.5};
  d.average = {1.5}, d.nonparametric = {1.5}, d.parametric = {1.5};
  d.attention_nonparametric = d.attention_parametric = {{0.5, 0.5}};
  d.kernel_label = "gaussian, sigma = 1";
  EXPECT_EQ(gnuplot_script(d).find("plot $loss"), std::string::npos);
  d.loss = {2.0, 1.0};
  EXPECT_NE(gnuplot_script(d).find("plot $loss"), std::string::npos);
  EXPECT_NE(gnuplot_script(d).find("set output 'loss.png'"), std::string::npos);
}

// --epochs 3 --save, then --epochs 2 --resume, is the same training as --epochs 5 straight: the
// same printed losses (epochs numbered 4 and 5), the same final w to the last bit, and
// training.json's loss lists only the resumed run's epochs.
TEST(Cli, SaveThenResumeEqualsTrainingStraight) {
  for (const std::string dtype : {"float64", "float32"}) {
    for (const std::string impl : {"fused", "composed"}) {
      SCOPED_TRACE(dtype + " " + impl);
      TempDir dir;
      const std::string common =
          ref_args() + " --dtype " + dtype + " --impl " + impl + " --no-plots";
      const std::string ck = (dir / "ck").string();
      const Result straight =
          run_nw(dir, common + " --epochs 5 --out " + quote((dir / "a").string()));
      ASSERT_EQ(straight.status, 0) << straight.err;
      const Result first = run_nw(dir, common + " --epochs 3 --save " + quote(ck) + " --out " +
                                           quote((dir / "b").string()));
      ASSERT_EQ(first.status, 0) << first.err;
      const Result second = run_nw(dir, common + " --epochs 2 --resume " + quote(ck) + " --out " +
                                            quote((dir / "c").string()));
      ASSERT_EQ(second.status, 0) << second.err;

      std::vector<std::string> joined = epoch_lines(first.out);
      for (const auto& l : epoch_lines(second.out)) joined.push_back(l);
      EXPECT_EQ(joined, epoch_lines(straight.out));
      const auto ja = nlohmann::json::parse(slurp(dir / "a" / "training.json"));
      const auto jc = nlohmann::json::parse(slurp(dir / "c" / "training.json"));
      EXPECT_EQ(jc["w"].get<double>(), ja["w"].get<double>());  // bit for bit
      ASSERT_EQ(jc["loss"].size(), 2u);
      EXPECT_EQ(jc["loss"][1].get<double>(), ja["loss"][4].get<double>());
    }
  }
}

// A checkpoint that fails validation stops the program before any training, with status 2, one
// line on stderr naming the checkpoint, and no output files.
TEST(Cli, BadCheckpointExitsTwoBeforeTraining) {
  TempDir dir;
  const std::string ck = (dir / "ck").string();
  ASSERT_EQ(run_nw(dir, ref_args() + " --dtype float64 --no-plots --epochs 1 --save " + quote(ck) +
                            " --out " + quote((dir / "a").string()))
                .status,
            0);
  const std::string good = slurp(ck);
  struct Case {
    std::string what, content, extra;
  };
  std::string corrupted = good;
  corrupted[good.size() / 2] ^= 0x20;
  const std::vector<Case> cases = {
      {"truncated", good.substr(0, good.size() / 2), "--dtype float64"},
      {"corrupted", corrupted, "--dtype float64"},
      {"wrong dtype", good, "--dtype float32"},
      {"not a checkpoint", "x,y\n1,2\n", "--dtype float64"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string bad = dir.write("bad_" + std::to_string(&c - cases.data()), c.content);
    const fs::path out = dir / ("out_" + std::to_string(&c - cases.data()));
    const Result r = run_nw(dir, ref_args() + " " + c.extra + " --no-plots --resume " + quote(bad) +
                                     " --out " + quote(out.string()));
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(bad), std::string::npos) << r.err;
    EXPECT_TRUE(epoch_lines(r.out).empty()) << r.out;
    EXPECT_TRUE(files_in(out).empty());
  }
  const Result missing =
      run_nw(dir, ref_args() + " --no-plots --resume " + quote((dir / "nope").string()) +
                      " --out " + quote((dir / "o").string()));
  EXPECT_EQ(missing.status, 2);
}
