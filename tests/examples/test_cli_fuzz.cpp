// A fuzzer of the program's command line: random flag vectors (valid values, edge values,
// garbage) over random input files (valid, binary, overlong lines, values out of range,
// checkpoints good and bad), each run as a subprocess into one shared --out. Every run must exit
// 0 or 2; on 2, --out is byte for byte as before and stderr is one line; on 0, --out holds one
// whole consistent set (rows and columns agree with training.json); inputs never change; no
// staging directory or temporary is left behind.
//
// In ctest it runs a fixed number of rounds (seconds). For a longer campaign:
//   TAPEGRAD_CLI_FUZZ_SECONDS=600 build/tests/models/test_models --gtest_filter=CliFuzz.*
// (bash scripts/fuzz_cli.sh [seconds] does that, with a random seed); TAPEGRAD_CLI_FUZZ_SEED=n
// replays a seed. ctest uses a fixed seed, so CI is deterministic.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"

using namespace tapegrad::testutil;

namespace {

std::size_t csv_rows(const std::string& text) {
  return count_lines(text);
}

std::size_t csv_columns(const std::string& text) {
  const std::string first = text.substr(0, text.find('\n'));
  return first.empty() ? 0 : 1 + std::count(first.begin(), first.end(), ',');
}

// One whole set from one run: the CSVs agree with training.json's sizes, and figures come with
// their script.
std::string inconsistency(const fs::path& out) {
  auto files = snapshot(out);
  for (const char* f : {"predictions.csv", "attention_nonparametric.csv",
                        "attention_parametric.csv", "training.json"})
    if (!files.count(f)) return std::string("missing ") + f;
  const auto json = nlohmann::json::parse(files["training.json"], nullptr, false);
  if (json.is_discarded()) return "training.json is not JSON";
  const std::size_t nq = json["n_query"].get<std::size_t>(),
                    nt = json["n_train"].get<std::size_t>();
  if (csv_rows(files["predictions.csv"]) != nq + 1) return "predictions.csv rows";
  for (const char* f : {"attention_nonparametric.csv", "attention_parametric.csv"})
    if (csv_rows(files[f]) != nq || csv_columns(files[f]) != nt) return std::string(f) + " shape";
  if (json["loss"].size() != json["epochs"].get<std::size_t>()) return "loss length";
  if (files.count("loss.png") && !files.count("plots.gp")) return "figures without plots.gp";
  return "";
}

struct Fuzzer {
  const TempDir& dir;
  std::mt19937_64 rng;

  template <class V>
  const V& pick(const std::vector<V>& values) {
    return values[rng() % values.size()];
  }

  std::string path(const std::string& name) { return quote((dir / name).string()); }

  // A random flag vector; --out is usually the shared directory.
  std::string arguments() {
    // Each flag: {values the program must accept, values it must refuse}.
    using Values = std::pair<std::vector<std::string>, std::vector<std::string>>;
    const std::map<std::string, Values> values = {
        {"--epochs", {{"0", "1", "2", "3"}, {"-1", "abc", "10000000", "1.5"}}},
        {"--lr", {{"0", "0.5", "0.1"}, {"-1", "nan", "1e39", "1e300", "x"}}},
        {"--w-init", {{"0", "0.3", "-2"}, {"1e39", "inf", "", "1e309"}}},
        {"--seed", {{"0", "1", "7", "18446744073709551615"}, {"-1", "18446744073709551616", "a"}}},
        {"--kernel", {{"gaussian", "boxcar", "constant", "epanechikov"}, {"triangle", ""}}},
        {"--sigma", {{"1", "0.1", "2"}, {"0", "-1", "1e-40", "1e-300", "1e39", "nan"}}},
        {"--dtype", {{"float32", "float64"}, {"float16"}}},
        {"--threads", {{"0", "1", "2"}, {"-1", "100000", "x"}}},
        {"--impl", {{"fused", "composed"}, {"magic"}}},
        {"--memory-budget", {{"1", "1024"}, {"0", "-3"}}},
        {"--n-train", {{"2", "3", "50", "200"}, {"1", "0", "100000000", "z"}}},
    };
    std::string args;
    for (const auto& [flag, accepted_refused] : values) {
      if (rng() % 3) continue;
      const bool refused = rng() % 6 == 0;
      args += " " + flag + " " +
              quote(pick(refused ? accepted_refused.second : accepted_refused.first));
    }
    const std::vector<std::string> files = {"good.csv",    "query.csv", "binary.csv", "long.csv",
                                            "huge.csv",    "nan.csv",   "header.csv", "dir.csv",
                                            "missing.csv", "ck_good",   "ck_bad",     "ck_new"};
    const std::map<std::string, std::string> usual = {
        {"--train", "good.csv"}, {"--query", "query.csv"}, {"--resume", "ck_good"}};
    const std::vector<std::string> outs = {
        "out", "out", "out", "out", "out/predictions.csv", "good.csv", "deep/er/out"};
    const std::string out = pick(outs);
    std::vector<std::string> saves = {"ck_new", "nodir/ck", "dir.csv"};
    if (out == "out") saves.push_back("out/training.json");  // an output: must be refused
    for (const char* flag : {"--train", "--query", "--resume"}) {
      if (rng() % 4) continue;
      const std::string file = rng() % 3 ? usual.at(flag) : pick(files);
      args += std::string(" ") + flag + " " + path(file);
      // --save onto --train or --query must be refused (onto --resume continues the checkpoint).
      if (std::string(flag) != "--resume") saves.push_back(file);
    }
    if (rng() % 4 == 0) args += " --save " + path(pick(saves));
    if (rng() % 2) args += " --no-plots";
    if (rng() % 8 == 0) args += " --keep-self";
    if (rng() % 10 == 0) args += " --bogus";
    return args + " --out " + path(out);
  }
};

void write_inputs(const TempDir& dir) {
  std::string good = "x,y\n", query = "x\n";
  for (int i = 0; i < 20; ++i)
    good += std::to_string(i * 0.25) + "," + std::to_string(i % 5) + "\n";
  for (int i = 0; i < 7; ++i) query += std::to_string(i * 0.7) + "\n";
  dir.write("good.csv", good);
  dir.write("query.csv", query);
  dir.write("binary.csv", std::string("x,y\n1,\0\xff\n", 9));  // 9 bytes with the NUL
  dir.write("long.csv", "x,y\n" + std::string(5000, '1') + ",2\n");
  dir.write("huge.csv", "x,y\n1,1e39\n2,1e300\n");
  dir.write("nan.csv", "x,y\n1,nan\n2,3\n");
  dir.write("header.csv", "x,y\n");
  fs::create_directory(dir / "dir.csv");
}

}  // namespace

TEST(CliFuzz, RandomFlagVectorsExitZeroOrTwoAndNeverTearOut) {
  const char* seconds_env = std::getenv("TAPEGRAD_CLI_FUZZ_SECONDS");
  const char* seed_env = std::getenv("TAPEGRAD_CLI_FUZZ_SEED");
  const double seconds = seconds_env ? std::atof(seconds_env) : 0;
  const std::uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : 20261123;
#if defined(__SANITIZE_ADDRESS__)
  const int fixed_runs = 8;  // each run is several times slower under ASan
#else
  const int fixed_runs = 24;
#endif
  const int max_runs = seconds > 0 ? 1 << 30 : fixed_runs;
  std::cout << "[cli fuzz] seed " << seed << " (TAPEGRAD_CLI_FUZZ_SEED replays it)\n";
  TempDir dir;
  write_inputs(dir);
  ASSERT_EQ(
      run_nw(dir, "--dtype float64 --epochs 1 --no-plots --save " +
                      quote((dir / "ck_good").string()) + " --out " + quote((dir / "out").string()))
          .status,
      0);
  std::string bad = slurp(dir / "ck_good");
  bad[bad.size() / 2] ^= 1;
  dir.write("ck_bad", bad);
  Fuzzer fuzz{dir, std::mt19937_64(seed)};
  const auto start = std::chrono::steady_clock::now();
  int runs = 0, successes = 0;
  for (; runs < max_runs; ++runs) {
    if (seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > seconds)
      break;
    const std::string args = fuzz.arguments();
    SCOPED_TRACE("run " + std::to_string(runs) + ": nadaraya_watson" + args);
    auto before = snapshot(dir.path());
    const Result r = run_nw(dir, args);
    ASSERT_TRUE(r.status == 0 || r.status == 2) << "exit " << r.status << ": " << r.err;
    auto after = snapshot(dir.path());
    for (auto* s : {&before, &after}) s->erase("stdout.txt"), s->erase("stderr.txt");
    if (r.status == 2) {
      ASSERT_EQ(count_lines(r.err), 1u) << r.err;
      ASSERT_TRUE(after == before) << "a failed run changed files: " << r.err;
      continue;
    }
    ++successes;
    ASSERT_EQ(inconsistency(dir / "out"), "") << r.out;
    for (const char* input : {"good.csv", "query.csv", "ck_good", "ck_bad"})
      ASSERT_EQ(after[input], before[input]) << input << " changed";
    for (const auto& [name, bytes] : after)
      ASSERT_TRUE(name.find(".staging.") == std::string::npos &&
                  name.find(".tmp.") == std::string::npos)
          << "debris: " << name;
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[cli fuzz] " << runs << " runs (" << successes << " exit 0) in " << elapsed
            << " s\n";
}
