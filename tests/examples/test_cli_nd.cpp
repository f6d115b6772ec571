// The nadaraya_watson program on d-dimensional inputs and on classes, run as a user runs
// it: hand-made CSVs for d = 1, 2 and 3, shared and per-coordinate widths, regression and
// classification with both losses, both dtypes. Checks the file formats and headers, training.json's
// fields, the numbers against a direct computation in double, the exit status and message of bad
// input, save and resume, and that d = 1 with the defaults prints exactly the chapter's numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "examples/csv.h"

namespace fs = std::filesystem;
using namespace tapegrad;
using namespace tapegrad::testutil;

namespace {

// A small data set: n points of d coordinates (a fixed pseudo-random pattern) and targets: a
// smooth function (regression) or labels 0..classes-1, each at least twice (classification).
struct Points {
  std::size_t d;
  std::vector<std::vector<double>> x;
  std::vector<double> y;
};

Points make_points(std::size_t n, std::size_t d, std::size_t classes) {
  Points p{d, {}, {}};
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> xi;
    for (std::size_t k = 0; k < d; ++k)
      xi.push_back(std::fmod(0.37 * double(i * (k + 2)) + 0.11 * double(k), 3.0));
    double y = 0;
    for (std::size_t k = 0; k < d; ++k) y += std::sin(xi[k] * double(k + 1));
    p.x.push_back(xi);
    p.y.push_back(classes ? double(i % classes) : y);
  }
  return p;
}

std::string x_header(std::size_t d) {
  if (d == 1) return "x";
  std::string h;
  for (std::size_t k = 1; k <= d; ++k) h += (k > 1 ? ",x" : "x") + std::to_string(k);
  return h;
}

std::vector<std::string> x_columns(std::size_t d) {
  if (d == 1) return {"x"};
  std::vector<std::string> names;
  for (std::size_t k = 1; k <= d; ++k) names.push_back("x" + std::to_string(k));
  return names;
}

std::string training_csv(const Points& p) {
  std::ostringstream os;
  os.precision(17);
  os << x_header(p.d) << ",y\n";
  for (std::size_t i = 0; i < p.x.size(); ++i) {
    for (double v : p.x[i]) os << v << ",";
    os << p.y[i] << "\n";
  }
  return os.str();
}

std::vector<std::string> prediction_columns(std::size_t d) {
  std::vector<std::string> names = x_columns(d);
  for (const char* c : {"average", "nonparametric", "parametric"}) names.push_back(c);
  return names;
}

std::vector<std::string> probability_columns(std::size_t classes) {
  std::vector<std::string> names;
  for (std::size_t c = 0; c < classes; ++c) names.push_back("p" + std::to_string(c));
  return names;
}

// Reads a headerless CSV matrix (the attention files).
std::vector<std::vector<double>> read_matrix(const fs::path& p) {
  std::vector<std::vector<double>> m;
  std::istringstream in(slurp(p));
  std::string line, cell;
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream ss(line);
    while (std::getline(ss, cell, ',')) row.push_back(std::stod(cell));
    m.push_back(row);
  }
  return m;
}

// The parametric class probabilities (or estimates) of the queries, computed directly in double:
// p_ij = softmax_j(-1/2 sum_k ((q_ik - x_jk) w_k)^2), f_i = sum_j p_ij v_j, v one-hot or y.
std::vector<std::vector<double>> direct_pooling(const Points& train,
                                                const std::vector<std::vector<double>>& queries,
                                                const std::vector<double>& w, std::size_t classes,
                                                bool leave_one_out) {
  std::vector<std::vector<double>> out;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    std::vector<double> logits;
    double largest = -INFINITY;
    for (std::size_t j = 0; j < train.x.size(); ++j) {
      double s = 0;
      for (std::size_t k = 0; k < train.d; ++k) {
        const double a = (queries[i][k] - train.x[j][k]) * w[w.size() == 1 ? 0 : k];
        s += a * a;
      }
      logits.push_back(leave_one_out && i == j ? -INFINITY : -0.5 * s);
      largest = std::max(largest, logits.back());
    }
    std::vector<double> f(classes ? classes : 1, 0.0);
    double total = 0;
    for (double& l : logits) total += (l = std::exp(l - largest));
    for (std::size_t j = 0; j < logits.size(); ++j) {
      const double p = logits[j] / total;
      if (classes)
        f[static_cast<std::size_t>(train.y[j])] += p;
      else
        f[0] += p * train.y[j];
    }
    out.push_back(f);
  }
  return out;
}

// The loss at w (before any step), directly: squared 1/2 sum ||f_i - v_i||^2, or the
// cross-entropy -sum_i log p_i[y_i], with leave-one-out weights.
double direct_loss(const Points& p, const std::vector<double>& w, std::size_t classes,
                   bool cross_entropy) {
  const auto f = direct_pooling(p, p.x, w, classes, true);
  double loss = 0;
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (cross_entropy) {
      loss -= std::log(f[i][static_cast<std::size_t>(p.y[i])]);
      continue;
    }
    for (std::size_t c = 0; c < f[i].size(); ++c) {
      const double target = classes ? double(c == std::size_t(p.y[i])) : p.y[i];
      loss += 0.5 * (f[i][c] - target) * (f[i][c] - target);
    }
  }
  return loss;
}

Result run_ok(const TempDir& tmp, const std::string& args) {
  Result r = run_nw(tmp, args);
  EXPECT_EQ(r.status, 0) << args << "\n" << r.err;
  return r;
}

double rel(double a, double b) {
  return std::abs(a - b) / std::max(std::abs(b), 1e-300);
}

// Half a unit in the last printed digit of a number printed without an exponent ("0.0527668").
double half_unit(const std::string& printed) {
  const std::size_t point = printed.find('.');
  const int decimals = point == std::string::npos ? 0 : int(printed.size() - point - 1);
  return 0.5 * std::pow(10.0, -decimals);
}

// Two printings of numbers within 1e-6 relative of each other: the intervals the printed digits
// stand for come that close.
bool same_printed_number(const std::string& got, const std::string& want) {
  const double g = std::stod(got), w = std::stod(want);
  return std::abs(g - w) <= half_unit(got) + half_unit(want) + 1e-6 * std::abs(w);
}

}  // namespace

// d = 1 with the defaults prints the chapter's numbers: the chapter's program output line for line
// (same seed, --threads 1). The float32 results of training are compared as float32 rounding
// allows instead of digit for digit: the losses to 1e-6 relative (a few float32 ulps; another
// compiler or vector width sums the rows in another order: clang prints 20.124918 for 20.124916),
// the learned w and its MSE as printed numbers (six significant digits) within 1e-6 relative. The
// MSE sits on a rounding boundary of its sixth digit (0.05276685 in exact arithmetic on the float32
// data and w), so one float32 rounding moves it between 0.0527668 and 0.0527669.
TEST(CliND, D1DefaultsPrintTheChaptersNumbers) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const Result r = run_ok(tmp, "--threads 1 --no-plots --out " + quote(out.string()));
  const std::string expected =
      "data: the chapter's data (seed 0): 50 training points, 50 queries; dtype float32, 1 "
      "thread(s)\n"
      "average pooling: f(x) = 2.306 for every query; MSE vs truth 0.885113\n"
      "nonparametric pooling (gaussian, sigma = 1): MSE vs truth 0.423058\n"
      "parametric pooling: training w (w_init 0.623833, composed ops: nw_logits, softmax, bmm) "
      "on leave-one-out pairs (50 x 49), lr 0.5, 5 epochs\n"
      "epoch 1, loss 20.124916\n"
      "epoch 2, loss 8.820965\n"
      "epoch 3, loss 8.816549\n"
      "epoch 4, loss 8.812122\n"
      "epoch 5, loss 8.807675\n"
      "learned w = 9.58314\n"
      "parametric pooling: MSE vs truth 0.0527669\n"  // as PyTorch's float32 run prints it
      "wrote " +
      (out / "predictions.csv").string() + ", attention_*.csv, training.json in " + out.string() +
      "\n";
  std::istringstream got_lines(r.out), want_lines(expected);
  std::string got, want;
  while (std::getline(want_lines, want)) {
    ASSERT_TRUE(std::getline(got_lines, got)) << "missing line: " << want;
    const bool loss = want.rfind("epoch ", 0) == 0;
    if (!loss && want.rfind("learned w", 0) != 0 && want.rfind("parametric pooling: MSE", 0) != 0) {
      EXPECT_EQ(got, want);
      continue;
    }
    const std::size_t at = want.rfind(' ') + 1;  // the number after the last space
    EXPECT_EQ(got.substr(0, at), want.substr(0, at));
    const std::string g = got.substr(at), w = want.substr(at);
    if (loss)
      EXPECT_LE(rel(std::stod(g), std::stod(w)), 1e-6) << got;
    else
      EXPECT_TRUE(same_printed_number(g, w)) << got << " for " << want;
  }
  EXPECT_FALSE(std::getline(got_lines, got)) << "extra line: " << got;
  const auto j = nlohmann::json::parse(slurp(out / "training.json"));
  EXPECT_EQ(j["d"], 1);
  EXPECT_EQ(j["task"], "regression");
  EXPECT_EQ(j["widths"], "shared");
  EXPECT_EQ(j["loss_function"], "squared");
  EXPECT_TRUE(j["w"].is_number());
  EXPECT_TRUE(j["w_init"].is_number());
  EXPECT_FALSE(j.contains("classes"));
  EXPECT_FALSE(fs::exists(out / "probabilities_parametric.csv"));
}

// d = 1: the header x1,y is the header x,y; --widths per-coordinate is the same model (w of
// shape (1,)), printed per epoch and written as a list of one number.
TEST(CliND, D1HeaderX1AndPerCoordinateAreTheChaptersModel) {
  TempDir tmp;
  const Points p = make_points(12, 1, 0);
  const std::string a = tmp.write("a.csv", training_csv(p));
  std::string text = training_csv(p);
  text.replace(0, 1, "x1");
  const std::string b = tmp.write("b.csv", text);
  const std::string common = " --dtype float64 --w-init 0.8 --epochs 3 --no-plots --out ";
  const Result ra = run_ok(tmp, "--train " + quote(a) + common + quote((tmp / "a").string()));
  const Result rb = run_ok(tmp, "--train " + quote(b) + common + quote((tmp / "b").string()));
  const Result rc = run_ok(tmp, "--train " + quote(a) + " --widths per-coordinate" + common +
                                    quote((tmp / "c").string()));
  EXPECT_EQ(slurp(tmp / "a" / "predictions.csv"), slurp(tmp / "b" / "predictions.csv"));
  EXPECT_EQ(slurp(tmp / "a" / "predictions.csv"), slurp(tmp / "c" / "predictions.csv"));
  EXPECT_EQ(epoch_lines(ra.out), epoch_lines(rb.out));
  const auto lines = epoch_lines(rc.out);
  ASSERT_EQ(lines.size(), 3u);
  for (std::size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(lines[e].rfind(epoch_lines(ra.out)[e] + ", w [", 0), 0u) << lines[e];
  }
  const auto ja = nlohmann::json::parse(slurp(tmp / "a" / "training.json"));
  const auto jc = nlohmann::json::parse(slurp(tmp / "c" / "training.json"));
  ASSERT_TRUE(jc["w"].is_array());
  ASSERT_EQ(jc["w"].size(), 1u);
  EXPECT_EQ(jc["w"][0].get<double>(), ja["w"].get<double>());
  EXPECT_EQ(jc["w_init"], nlohmann::json::array({0.8}));
  EXPECT_EQ(jc["widths"], "per-coordinate");
  EXPECT_EQ(jc["d"], 1);
}

// Regression for d = 2 and 3, shared and per-coordinate, both dtypes: the files' headers and
// shapes, training.json's fields, and (float64) the first loss and the predictions of --epochs 0
// against the direct computation.
TEST(CliND, RegressionFormatsAndNumbers) {
  for (std::size_t d : {2, 3})
    for (const std::string widths : {"shared", "per-coordinate"})
      for (const std::string dtype : {"float32", "float64"}) {
        SCOPED_TRACE("d " + std::to_string(d) + " " + widths + " " + dtype);
        TempDir tmp;
        const Points p = make_points(9, d, 0);
        const std::string train = tmp.write("train.csv", training_csv(p));
        const fs::path out = tmp / "out";
        const Result r = run_ok(
            tmp, "--train " + quote(train) + " --widths " + widths + " --dtype " + dtype +
                     " --w-init 0.6 --epochs 2 --lr 0.05 --no-plots --out " + quote(out.string()));
        // Default queries for d >= 2: the training inputs themselves.
        const Columns q = read_csv((out / "predictions.csv").string(), prediction_columns(d));
        ASSERT_EQ(q[0].size(), 9u);
        for (std::size_t i = 0; i < 9; ++i)
          for (std::size_t k = 0; k < d; ++k) EXPECT_NEAR(q[k][i], p.x[i][k], 1e-6);
        const auto att = read_matrix(out / "attention_parametric.csv");
        ASSERT_EQ(att.size(), 9u);
        for (const auto& row : att) EXPECT_EQ(row.size(), 9u);
        const auto j = nlohmann::json::parse(slurp(out / "training.json"));
        EXPECT_EQ(j["d"], d);
        EXPECT_EQ(j["task"], "regression");
        EXPECT_EQ(j["widths"], widths);
        EXPECT_EQ(j["loss_function"], "squared");
        EXPECT_EQ(j["w"].is_array(), widths == "per-coordinate");
        if (widths == "per-coordinate") {
          EXPECT_EQ(j["w"].size(), d);
        }
        EXPECT_EQ(j["w_init"], widths == "shared" ? nlohmann::json(0.6)
                                                  : nlohmann::json(std::vector<double>(d, 0.6)));
        EXPECT_FALSE(fs::exists(out / "probabilities_parametric.csv"));
        const auto lines = epoch_lines(r.out);
        ASSERT_EQ(lines.size(), 2u);
        EXPECT_NE(lines[0].find(", w ["), std::string::npos) << lines[0];
        const double tol = dtype == "float64" ? 1e-12 : 1e-5;
        EXPECT_LE(rel(j["loss"][0].get<double>(), direct_loss(p, {0.6}, 0, false)), tol);
      }
}

// --epochs 0: the parametric predictions at w_init, for queries from --query, are the direct
// computation's (float64, 1e-12).
TEST(CliND, RegressionPredictionsAtWInit) {
  TempDir tmp;
  const Points p = make_points(10, 3, 0);
  const std::string train = tmp.write("train.csv", training_csv(p));
  const std::string query = tmp.write("q.csv", "x1,x2,x3\n0.5,1,1.5\n2,0.1,2.9\n-1,4,0\n");
  const fs::path out = tmp / "out";
  run_ok(tmp, "--train " + quote(train) + " --query " + quote(query) +
                  " --widths per-coordinate --dtype float64 --w-init 1.3 --epochs 0 --no-plots "
                  "--out " +
                  quote(out.string()));
  const Columns c = read_csv((out / "predictions.csv").string(), prediction_columns(3));
  const auto expected =
      direct_pooling(p, {{0.5, 1, 1.5}, {2, 0.1, 2.9}, {-1, 4, 0}}, {1.3}, 0, false);
  ASSERT_EQ(c[5].size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_LE(rel(c[5][i], expected[i][0]), 1e-12) << i;
  double mean = 0;
  for (double y : p.y) mean += y / 10;
  for (std::size_t i = 0; i < 3; ++i) EXPECT_LE(rel(c[3][i], mean), 1e-12);
}

// Classification for d = 1, 2 and 3, both losses, both widths, both dtypes: labels in
// predictions.csv, probabilities files (rows sum to 1), classes and train_accuracy, and the first
// loss against the direct computation.
TEST(CliND, ClassificationFormatsAndNumbers) {
  for (std::size_t d : {1, 2, 3})
    for (const std::string loss : {"cross-entropy", "squared"})
      for (const std::string widths : {"shared", "per-coordinate"})
        for (const std::string dtype : {"float32", "float64"}) {
          SCOPED_TRACE("d " + std::to_string(d) + " " + loss + " " + widths + " " + dtype);
          TempDir tmp;
          const Points p = make_points(12, d, 3);
          const std::string train = tmp.write("train.csv", training_csv(p));
          const fs::path out = tmp / "out";
          const Result r = run_ok(
              tmp, "--train " + quote(train) + " --task classification --loss " + loss +
                       " --widths " + widths + " --dtype " + dtype +
                       " --w-init 0.9 --epochs 2 --lr 0.1 --no-plots --out " + quote(out.string()));
          const std::size_t nq = d == 1 ? 50 : 12;
          const Columns c = read_csv((out / "predictions.csv").string(), prediction_columns(d));
          ASSERT_EQ(c[0].size(), nq);
          for (std::size_t col = d; col < d + 3; ++col)
            for (double label : c[col]) {
              EXPECT_EQ(label, std::floor(label));
              EXPECT_TRUE(label >= 0 && label <= 2) << label;
            }
          for (const char* f :
               {"probabilities_nonparametric.csv", "probabilities_parametric.csv"}) {
            const Columns pc = read_csv((out / f).string(), probability_columns(3));
            ASSERT_EQ(pc[0].size(), nq) << f;
            for (std::size_t i = 0; i < nq; ++i)
              EXPECT_NEAR(pc[0][i] + pc[1][i] + pc[2][i], 1, 1e-5);
          }
          const auto j = nlohmann::json::parse(slurp(out / "training.json"));
          EXPECT_EQ(j["task"], "classification");
          EXPECT_EQ(j["classes"], 3);
          EXPECT_EQ(j["loss_function"], loss);
          EXPECT_EQ(j["d"], d);
          const double accuracy = j["train_accuracy"].get<double>();
          EXPECT_TRUE(accuracy >= 0 && accuracy <= 1) << accuracy;
          EXPECT_EQ(epoch_lines(r.out).size(), 2u);
          const double tol = dtype == "float64" ? 1e-12 : 1e-5;
          EXPECT_LE(
              rel(j["loss"][0].get<double>(), direct_loss(p, {0.9}, 3, loss == "cross-entropy")),
              tol);
        }
}

// --epochs 0 classification: the probabilities, labels (argmax) and the leave-one-out training
// accuracy at w_init are the direct computation's.
TEST(CliND, ClassificationProbabilitiesAndAccuracyAtWInit) {
  TempDir tmp;
  const Points p = make_points(14, 2, 2);
  const std::string train = tmp.write("train.csv", training_csv(p));
  const fs::path out = tmp / "out";
  run_ok(tmp, "--train " + quote(train) +
                  " --task classification --dtype float64 --w-init 2.5 --epochs 0 --no-plots "
                  "--out " +
                  quote(out.string()));
  const auto expected = direct_pooling(p, p.x, {2.5}, 2, false);
  const Columns pc = read_csv((out / "probabilities_parametric.csv").string(), {"p0", "p1"});
  const Columns labels = read_csv((out / "predictions.csv").string(), prediction_columns(2));
  for (std::size_t i = 0; i < 14; ++i) {
    EXPECT_NEAR(pc[0][i], expected[i][0], 1e-12);
    EXPECT_NEAR(pc[1][i], expected[i][1], 1e-12);
    EXPECT_EQ(labels[4][i], expected[i][1] > expected[i][0] ? 1 : 0);
  }
  const auto loo = direct_pooling(p, p.x, {2.5}, 2, true);
  double right = 0;
  for (std::size_t i = 0; i < 14; ++i) right += (loo[i][1] > loo[i][0] ? 1 : 0) == p.y[i];
  const auto j = nlohmann::json::parse(slurp(out / "training.json"));
  EXPECT_DOUBLE_EQ(j["train_accuracy"].get<double>(), right / 14);
}

// The fused ops give the composed ops' training to rounding (float64), for regression and both
// classification losses.
TEST(CliND, FusedMatchesComposed) {
  for (const std::string task :
       {"--loss squared", "--task classification", "--task classification --loss squared"}) {
    SCOPED_TRACE(task);
    TempDir tmp;
    const Points p = make_points(15, 2, task == "--loss squared" ? 0 : 2);
    const std::string train = tmp.write("train.csv", training_csv(p));
    const std::string common = "--train " + quote(train) + " " + task +
                               " --widths per-coordinate --dtype float64 --w-init 0.7 --epochs 3 "
                               "--lr 0.1 --no-plots --out ";
    run_ok(tmp, common + quote((tmp / "c").string()) + " --impl composed");
    run_ok(tmp, common + quote((tmp / "f").string()) + " --impl fused");
    const auto jc = nlohmann::json::parse(slurp(tmp / "c" / "training.json"));
    const auto jf = nlohmann::json::parse(slurp(tmp / "f" / "training.json"));
    EXPECT_EQ(jf["impl"], "fused");
    for (std::size_t k = 0; k < 2; ++k)
      EXPECT_LE(rel(jf["w"][k].get<double>(), jc["w"][k].get<double>()), 1e-9);
    for (std::size_t e = 0; e < 3; ++e)
      EXPECT_LE(rel(jf["loss"][e].get<double>(), jc["loss"][e].get<double>()), 1e-9);
    const auto ac = read_matrix(tmp / "c" / "attention_parametric.csv");
    const auto af = read_matrix(tmp / "f" / "attention_parametric.csv");
    ASSERT_EQ(ac.size(), af.size());
    for (std::size_t i = 0; i < ac.size(); ++i)
      for (std::size_t j = 0; j < ac[i].size(); ++j) EXPECT_NEAR(af[i][j], ac[i][j], 1e-12);
  }
}

// The generated data sets: 2-D with a 20 x 20 query grid, the truth's MSE for the regression ones,
// seeded (the same run twice gives the same files).
TEST(CliND, GeneratedDataSets) {
  for (const std::string set : {"chapter2d", "surface", "moons"}) {
    SCOPED_TRACE(set);
    TempDir tmp;
    const std::string args = "--dataset " + set + (set == "moons" ? " --task classification" : "") +
                             " --epochs 2 --no-plots --out ";
    const Result r = run_ok(tmp, args + quote((tmp / "a").string()));
    run_ok(tmp, args + quote((tmp / "b").string()));
    EXPECT_EQ(slurp(tmp / "a" / "predictions.csv"), slurp(tmp / "b" / "predictions.csv"));
    const Columns c = read_csv((tmp / "a" / "predictions.csv").string(), prediction_columns(2));
    EXPECT_EQ(c[0].size(), 400u);
    EXPECT_EQ(r.out.find("parametric pooling: MSE vs truth") != std::string::npos, set != "moons")
        << r.out;
    const auto j = nlohmann::json::parse(slurp(tmp / "a" / "training.json"));
    EXPECT_EQ(j["n_train"], 50);
    EXPECT_EQ(j["d"], 2);
  }
}

// The exercise's runs print w per epoch (scripts/exercises_nd.sh asks for every epoch with
// --log-every 1): chapter2d, per-coordinate widths, with and without --keep-self.
TEST(CliND, ExerciseRunsPrintWPerEpoch) {
  for (const std::string keep : {"", " --keep-self"}) {
    TempDir tmp;
    const Result r = run_ok(tmp,
                            "--dataset chapter2d --widths per-coordinate --n-train 200 "
                            "--epochs 50 --log-every 1 --no-plots --out " +
                                quote((tmp / "o").string()) + keep);
    const auto lines = epoch_lines(r.out);
    ASSERT_EQ(lines.size(), 50u);
    for (const auto& l : lines) {
      const auto open = l.find(", w [");
      ASSERT_NE(open, std::string::npos) << l;
      EXPECT_EQ(std::count(l.begin() + long(open), l.end(), ','), 2) << l;  // two coordinates
    }
  }
}

// --save then --resume is training straight through, for d = 2 per-coordinate classification;
// a checkpoint of another d, widths or task is refused with exit 2 before training.
TEST(CliND, SaveResumeAndMismatchedCheckpoints) {
  for (const std::string impl : {"composed", "fused"}) {
    SCOPED_TRACE(impl);
    TempDir tmp;
    const std::string ck = (tmp / "ck").string();
    const std::string common =
        "--dataset moons --task classification --widths per-coordinate --dtype float64 --impl " +
        impl + " --no-plots ";
    const Result straight = run_ok(tmp, common + "--epochs 5 --out " + quote((tmp / "a").string()));
    const Result first = run_ok(
        tmp, common + "--epochs 3 --save " + quote(ck) + " --out " + quote((tmp / "b").string()));
    const Result second = run_ok(
        tmp, common + "--epochs 2 --resume " + quote(ck) + " --out " + quote((tmp / "c").string()));
    std::vector<std::string> joined = epoch_lines(first.out);
    for (const auto& l : epoch_lines(second.out)) joined.push_back(l);
    EXPECT_EQ(joined, epoch_lines(straight.out));
    const auto ja = nlohmann::json::parse(slurp(tmp / "a" / "training.json"));
    const auto jc = nlohmann::json::parse(slurp(tmp / "c" / "training.json"));
    EXPECT_EQ(jc["w"], ja["w"]);
    for (const std::string other :
         {"--dataset moons --task classification --dtype float64",        // widths shared
          "--dataset chapter2d --widths per-coordinate --dtype float64",  // task regression
          "--widths per-coordinate --dtype float64"}) {                   // d = 1
      const fs::path out = tmp / "bad";
      const Result r = run_nw(
          tmp, other + " --no-plots --resume " + quote(ck) + " --out " + quote(out.string()));
      EXPECT_EQ(r.status, 2) << other << r.err;
      EXPECT_EQ(count_lines(r.err), 1u) << r.err;
      EXPECT_NE(r.err.find("checkpoint " + ck), std::string::npos) << r.err;
      EXPECT_TRUE(epoch_lines(r.out).empty());
      EXPECT_FALSE(fs::exists(out));
    }
  }
}

// A classification run, then a regression run into the same --out: the probabilities files of the
// first are removed (the --out holds one run's set).
TEST(CliND, StaleClassificationOutputsAreRemoved) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  run_ok(tmp, "--dataset moons --task classification --epochs 1 --no-plots --out " +
                  quote(out.string()));
  EXPECT_TRUE(fs::exists(out / "probabilities_parametric.csv"));
  run_ok(tmp, "--dataset surface --epochs 1 --no-plots --out " + quote(out.string()));
  EXPECT_FALSE(fs::exists(out / "probabilities_parametric.csv"));
  EXPECT_FALSE(fs::exists(out / "probabilities_nonparametric.csv"));
}

// Bad input of the new flags and files: exit 2, one line naming the flag or file (and line),
// nothing written.
TEST(CliND, BadInputExitsTwoWithOneLineAndNoOutput) {
  TempDir tmp;
  const std::string r3 = tmp.write("r3.csv", training_csv(make_points(6, 3, 0)));
  const std::string q2 = tmp.write("q2.csv", "x1,x2\n1,2\n");
  const std::string q1 = tmp.write("q1.csv", "x\n1\n");
  const std::string h = tmp.write("h.csv", "x1,x3,y\n1,2,3\n4,5,6\n");
  const std::string frac = tmp.write("frac.csv", "x,y\n1,0\n2,0\n\n3,1.5\n4,1\n");
  const std::string neg = tmp.write("neg.csv", "x,y\n1,0\n2,-1\n");
  const std::string big = tmp.write("big.csv", "x,y\n1,0\n2,1000\n");
  const std::string once = tmp.write("once.csv", "x,y\n1,0\n2,0\n3,2\n4,2\n5,1\n");
  const std::string far = tmp.write("far.csv", "x1,x2,y\n0,0,1\n1e20,0,2\n3,3,3\n");
  std::string wide = "x1";
  for (int k = 2; k <= 65; ++k) wide += ",x" + std::to_string(k);
  const std::string d65 = tmp.write("d65.csv", wide + ",y\n");
  struct Case {
    std::string args;
    std::vector<std::string> fragments;
  };
  const std::vector<Case> cases = {
      {"--train " + quote(r3) + " --dataset chapter", {"--dataset"}},
      {"--dataset moons", {"--dataset", "--task classification"}},
      {"--task classification", {"--dataset"}},
      {"--dataset surface --task classification", {"--dataset"}},
      {"--loss cross-entropy", {"--loss"}},
      {"--loss hinge", {"--loss", "hinge"}},
      {"--widths wide", {"--widths", "wide"}},
      {"--task clustering", {"--task", "clustering"}},
      {"--dataset spiral", {"--dataset", "spiral"}},
      {"--dataset moons --task classification --n-train 3", {"--n-train"}},
      {"--train " + quote(r3) + " --query " + quote(q2), {q2 + ":1:", "d = 3"}},
      {"--dataset chapter2d --query " + quote(q1), {q1 + ":1:"}},
      {"--train " + quote(h), {h + ":1:"}},
      {"--train " + quote(d65), {d65 + ":1:", "64"}},
      {"--train " + quote(frac) + " --task classification", {frac + ":5:", "1.5"}},
      {"--train " + quote(neg) + " --task classification", {neg + ":3:", "-1"}},
      {"--train " + quote(big) + " --task classification", {big + ":3:", "1000"}},
      {"--train " + quote(once) + " --task classification", {once, "label 1"}},
      {"--train " + quote(far), {far, "float32"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    expect_bad_input(tmp, c.args, c.fragments, tmp / ("out_" + std::to_string(&c - cases.data())));
  }
}

// With gnuplot: the plane figures for d = 2, the class probabilities for d = 1 classification,
// no plane for d = 3; the attention heatmaps, loss and kernels for every run; --graph for d = 2.
TEST(CliND, FiguresAndGraph) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot not installed";
  TempDir tmp;
  const std::string r3 = tmp.write("r3.csv", training_csv(make_points(8, 3, 0)));
  const std::string c1 = tmp.write("c1.csv", training_csv(make_points(10, 1, 2)));
  struct Case {
    std::string args;
    std::vector<std::string> figures;
  };
  const std::vector<std::string> common = {"attention_nonparametric.png",
                                           "attention_parametric.png", "loss.png", "kernels.png"};
  const std::vector<Case> cases = {
      {"--dataset moons --task classification --graph",
       {"plane_nonparametric.png", "plane_parametric.png"}},
      {"--dataset surface", {"plane_nonparametric.png", "plane_parametric.png"}},
      {"--train " + quote(c1) + " --task classification",
       {"probabilities_nonparametric.png", "probabilities_parametric.png"}},
      {"--train " + quote(r3), {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const fs::path out = tmp / ("out_" + std::to_string(&c - cases.data()));
    run_ok(tmp, c.args + " --epochs 2 --out " + quote(out.string()));
    std::set<std::string> pngs, expected(c.figures.begin(), c.figures.end());
    expected.insert(common.begin(), common.end());
    for (const auto& n : files_in(out))
      if (fs::path(n).extension() == ".png" && n != "graph.png") pngs.insert(n);
    EXPECT_EQ(pngs, expected);
    for (const auto& f : pngs)
      EXPECT_EQ(slurp(out / f).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << f;
    EXPECT_TRUE(fs::is_regular_file(out / "plots.gp"));
  }
  EXPECT_TRUE(fs::is_regular_file(tmp / "out_0" / "graph.dot"));
}

// --graph for classification: a label seen once among the first 20 training points gets its second
// example into the graph's points (the leave-one-out cross-entropy needs it), for any d.
TEST(CliND, GraphWithALabelOnceAmongTheFirstPoints) {
  TempDir tmp;
  std::ostringstream csv;
  csv << "x1,x2,y\n";
  for (int i = 0; i < 30; ++i)
    csv << 0.1 * i << "," << 0.3 * (i * 7 % 5) << "," << (i == 19 || i == 25 ? 3 : i % 3) << "\n";
  const std::string train = tmp.write("train.csv", csv.str());
  const fs::path out = tmp / "out";
  run_ok(tmp, "--train " + quote(train) + " --task classification --graph --no-plots --out " +
                  quote(out.string()));
  EXPECT_TRUE(fs::is_regular_file(out / "graph.dot"));
  EXPECT_NE(slurp(out / "graph.dot").find("digraph"), std::string::npos);
}
