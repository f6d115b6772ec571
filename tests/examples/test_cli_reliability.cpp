// The nadaraya_watson program under hostile use: concurrent runs into one --out, a
// failing gnuplot, an output name that is a directory, endless input under a memory limit, values
// float32 cannot hold, flags out of bounds or not decimal, --out and --save paths that cannot work
// (loops, dangling links, names too long), --resume of what cannot be a checkpoint, concurrent
// runs resuming and saving one checkpoint, figures that are not whole PNGs, late validation,
// checkpoints wrong in meaning with a valid checksum, and the choice of implementation. Every
// failure must exit 2 (1 for a failing tool or write) with one line on stderr, and leave --out byte
// for byte as it was, with no debris. File system faults (mounts, full disks): test_cli_filesystem.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "../io/checkpoint_craft.h"
#include "cli_test_util.h"
#include "examples/csv.h"
#include "examples/plots.h"

using namespace tapegrad;
using namespace tapegrad::testutil;

namespace {

// Files the program left in `dir` besides `expected` and the captured stdout/stderr: staging
// directories, temporaries.
std::vector<std::string> debris(const fs::path& dir, const std::vector<std::string>& expected) {
  std::vector<std::string> left;
  for (const auto& name : files_in(dir)) {
    if (name == "stdout.txt" || name == "stderr.txt") continue;
    if (std::find(expected.begin(), expected.end(), name) == expected.end()) left.push_back(name);
  }
  return left;
}

// Exit `status`, one line on stderr holding `fragment`, and (for bad input) no epoch trained.
void expect_one_line_error(const Result& r, int status, const std::string& fragment,
                           bool before_training = true) {
  EXPECT_EQ(r.status, status) << r.out << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << fragment << " in: " << r.err;
  if (before_training) {
    EXPECT_TRUE(epoch_lines(r.out).empty()) << "trained first: " << r.out;
  }
}

bool have_gnuplot() {
  return std::system("command -v gnuplot >/dev/null 2>&1") == 0;
}

}  // namespace

// Two processes into one --out, many rounds. Each round's --out must equal, file
// for file, the solo output of the run its training.json names; both runs exit 0; no debris.
TEST(CliReliability, ConcurrentRunsNeverMixOrTear) {
  TempDir dir;
  const std::string common = " --n-train 400 --epochs 2 --no-plots --threads 1";
  std::map<std::string, std::map<std::string, std::string>> solo;
  for (const std::string seed : {"1", "2"}) {
    ASSERT_EQ(
        run_nw(dir, common + " --seed " + seed + " --out " + quote((dir / seed).string())).status,
        0);
    solo[seed] = snapshot(dir / seed);
    solo[seed].erase("training.json");  // holds the run time
  }
  const std::string out = quote((dir / "shared").string());
  const std::string nw = quote(NW_EXE);
#if defined(__SANITIZE_ADDRESS__)
  const int rounds = 6;  // ASan makes each run several times slower
#else
  const int rounds = 12;
#endif
  for (int round = 0; round < rounds; ++round) {
    const std::string cmd = "cd " + quote(dir.path().string()) + " && (" + nw + common +
                            " --seed 1 --out " + out + " >a.txt 2>&1 & " + nw + common +
                            " --seed 2 --out " + out + " >b.txt 2>&1 & wait %1 && wait %2)";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(dir / "a.txt") << slurp(dir / "b.txt");
    auto files = snapshot(dir / "shared");
    const auto json = nlohmann::json::parse(files["training.json"]);
    const std::string seed = std::to_string(json["seed"].get<int>());
    files.erase("training.json");
    EXPECT_EQ(files, solo.at(seed)) << "round " << round << ": a mix of two runs";
  }
  EXPECT_EQ(debris(dir.path(), {"1", "2", "shared", "a.txt", "b.txt"}), std::vector<std::string>());
}

// A gnuplot that fails (exit status 3, or killed by a signal) leaves --out as it
// was, byte for byte, with no temporaries, and the message gives the status in words.
TEST(CliReliability, FailingGnuplotLeavesPreviousOutputs) {
  TempDir dir;
  const std::string out = quote((dir / "out").string());
  const std::string plots = have_gnuplot() ? "" : " --no-plots";
  ASSERT_EQ(run_nw(dir, "--epochs 1 --out " + out + plots).status, 0);
  const auto before = snapshot(dir / "out");
  fs::create_directory(dir / "bin");
  struct Case {
    std::string script, words;
  };
  for (const Case& c : {Case{"exit 3", "gnuplot exited with status 3"},
                        Case{"kill -9 $$", "gnuplot was killed by signal 9"}}) {
    dir.write("bin/gnuplot", "#!/bin/sh\n" + c.script + "\n");
    fs::permissions(dir / "bin/gnuplot", fs::perms::owner_all);
    const Result r = run_nw(dir, "--seed 5 --epochs 1 --out " + out,
                            "PATH=" + quote((dir / "bin").string()) + ":\"$PATH\"");
    expect_one_line_error(r, 1, c.words, /*before_training=*/false);
    EXPECT_TRUE(snapshot(dir / "out") == before) << "--out changed after: " << c.script;
    EXPECT_EQ(debris(dir.path(), {"out", "bin"}), std::vector<std::string>());
  }
}

// An output name that is a directory is refused before any work (exit 2), and
// nothing in --out changes.
TEST(CliReliability, OutputNameThatIsADirectory) {
  TempDir dir;
  const std::string out = quote((dir / "out").string());
  ASSERT_EQ(run_nw(dir, "--epochs 1 --no-plots --out " + out).status, 0);
  fs::remove(dir / "out" / "attention_parametric.csv");
  fs::create_directory(dir / "out" / "attention_parametric.csv");
  const auto before = snapshot(dir / "out");
  const Result r = run_nw(dir, "--seed 3 --no-plots --out " + out);
  expect_one_line_error(r, 2, "attention_parametric.csv is a directory");
  EXPECT_TRUE(snapshot(dir / "out") == before);
  EXPECT_EQ(debris(dir.path(), {"out"}), std::vector<std::string>());
  // --out itself a file.
  dir.write("a_file", "x");
  expect_one_line_error(run_nw(dir, "--out " + quote((dir / "a_file").string())), 2,
                        "not a directory");
}

// Input that never ends a line, or never ends, is refused in bounded memory:
// under a 1 GiB address-space limit (the program maps ~0.3 GiB of libraries and heap), /dev/zero,
// an endless line without NUL bytes and an endless file of valid rows all exit 2.
TEST(CliReliability, EndlessInputUnderAMemoryLimit) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan reserves terabytes of address space: ulimit -v does not apply";
#endif
  TempDir dir;
  const std::string limit = "ulimit -v 1048576;";
  const std::string out = " --no-plots --out " + quote((dir / "out").string());
  expect_one_line_error(run_nw(dir, "--train /dev/zero" + out, limit), 2, "/dev/zero:1:");
  const std::string nw = quote(NW_EXE);
  const std::string endless_line = "tr '\\0' a </dev/zero | (" + limit + nw +
                                   " --train /dev/stdin" + out + " 2>" +
                                   quote((dir / "e1.txt").string()) + " >/dev/null)";
  EXPECT_EQ(WEXITSTATUS(std::system(endless_line.c_str())), 2);
  EXPECT_NE(slurp(dir / "e1.txt").find("line longer than the limit of 4096 bytes"),
            std::string::npos)
      << slurp(dir / "e1.txt");
  const std::string endless_rows = "(echo x,y; yes 1,2) | (" + limit + nw + " --train /dev/stdin" +
                                   out + " 2>" + quote((dir / "e2.txt").string()) + " >/dev/null)";
  EXPECT_EQ(WEXITSTATUS(std::system(endless_rows.c_str())), 2);
  EXPECT_NE(slurp(dir / "e2.txt").find("more than the limit of 1000000 rows"), std::string::npos)
      << slurp(dir / "e2.txt");
  EXPECT_FALSE(fs::exists(dir / "out"));
}

// Values the dtype cannot hold are refused before any work, naming the flag or
// the file and line.
TEST(CliReliability, Float32OverflowInputs) {
  TempDir dir;
  const std::string huge_y = dir.write("huge_y.csv", "x,y\n1,2\n2,1e300\n3,4\n");
  const std::string loss_y = dir.write("loss_y.csv", "x,y\n1,2\n2,1e20\n3,4\n");
  const std::string wide_x = dir.write("wide_x.csv", "x,y\n-3e38,2\n3e38,1\n");
  const std::string huge_q = dir.write("huge_q.csv", "x\n1\n1e39\n");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--train " + quote(huge_y) + " --epochs 0", huge_y + ":3: column y"},
      {"--train " + quote(huge_y), "float32"},
      {"--train " + quote(loss_y), "overflow the float32 loss"},
      {"--train " + quote(wide_x), "differences overflow float32"},
      {"--query " + quote(huge_q), huge_q + ":3: column x"},
      {"--sigma 1e-40", "--sigma 1e-40 is too small for float32"},
      {"--sigma 1e-300", "--sigma 1e-300 is too small for float32"},
      {"--sigma 1e39", "--sigma"},
      {"--w-init 1e39", "--w-init"},
      {"--lr 1e39", "--lr"},
      {"--dtype float64 --sigma 1e-320", "--sigma"},
  };
  for (const auto& [args, fragment] : cases) {
    SCOPED_TRACE(args);
    expect_one_line_error(run_nw(dir, args + " --out " + quote((dir / "out").string())), 2,
                          fragment);
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
  // float64 holds y = 1e20 and learns finite numbers.
  const Result r = run_nw(dir, "--dtype float64 --no-plots --train " + quote(loss_y) + " --out " +
                                   quote((dir / "ok").string()));
  EXPECT_EQ(r.status, 0) << r.err;
}

// Resource flags outside their stated bounds.
TEST(CliReliability, ResourceFlagsHaveBounds) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--threads 100000", "--threads must be an integer from 0 to 256, got '100000'"},
      {"--seed -1", "--seed"},
      {"--seed 18446744073709551616", "--seed"},
      {"--seed 0x10", "--seed"},
      {"--n-train 100000000", "--n-train must be an integer from 2 to 1000000, got '100000000'"},
      {"--n-train 300000", "attention matrices"},
      {"--epochs 10000000", "--epochs"},
      {"--memory-budget 0", "--memory-budget"},
      {"--out ''", "--out"},
  };
  for (const auto& [args, fragment] : cases) {
    SCOPED_TRACE(args);
    expect_one_line_error(run_nw(dir, args + " --out " + quote((dir / "out").string())), 2,
                          fragment);
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
  // The largest seed is valid.
  EXPECT_EQ(run_nw(dir, "--seed 18446744073709551615 --epochs 0 --no-plots --out " +
                            quote((dir / "ok").string()))
                .status,
            0);
}

// --save and --out are checked before the first epoch; --save never overwrites an
// input; a read-only --out stops the run before the checkpoint is written.
TEST(CliReliability, OutputsValidatedBeforeTraining) {
  TempDir dir;
  const std::string train = dir.write("train.csv", "x,y\n1,2\n2,3\n3,5\n");
  const std::string out = " --no-plots --out " + quote((dir / "out").string());
  expect_one_line_error(run_nw(dir, "--save " + quote((dir / "nodir/ck").string()) + out), 2,
                        "--save");
  expect_one_line_error(run_nw(dir, "--train " + quote(train) + " --save " + quote(train) + out), 2,
                        "--save would overwrite the --train file");
  EXPECT_EQ(slurp(train), "x,y\n1,2\n2,3\n3,5\n");
  expect_one_line_error(run_nw(dir, "--save " + quote(dir.path().string()) + out), 2,
                        "is a directory");
  // An input inside --out under an output's name.
  fs::create_directory(dir / "o2");
  const std::string inside = dir.write("o2/predictions.csv", "x\n1\n");
  expect_one_line_error(
      run_nw(dir, "--query " + quote(inside) + " --no-plots --out " + quote((dir / "o2").string())),
      2, "--out would overwrite the --query file");
  EXPECT_FALSE(fs::exists(dir / "out"));
  // An --out that cannot be created (its parent is a file) stops the run before the checkpoint
  // is written: the saved state never runs ahead of the outputs.
  const std::string ck = (dir / "ck").string();
  dir.write("a_file", "x");
  expect_one_line_error(run_nw(dir, "--save " + quote(ck) + " --no-plots --out " +
                                        quote((dir / "a_file" / "out").string())),
                        2, "--out");
  EXPECT_FALSE(fs::exists(ck));
  if (::geteuid() != 0) {  // root writes into read-only directories
    fs::create_directory(dir / "ro");
    fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    expect_one_line_error(
        run_nw(dir, "--save " + quote(ck) + " --no-plots --out " + quote((dir / "ro").string())), 2,
        "--out");
    EXPECT_FALSE(fs::exists(ck)) << "the checkpoint ran ahead of the outputs";
    fs::permissions(dir / "ro", fs::perms::owner_all);
  }
  EXPECT_EQ(debris(dir.path(), {"train.csv", "o2", "a_file", "ro"}), std::vector<std::string>());
}

// Checkpoints with a valid checksum but wrong in meaning exit 2 with one line
// naming the checkpoint, before any epoch.
TEST(CliReliability, CheckpointsValidatedByMeaning) {
  TempDir dir;
  auto header = [](const std::string& tensors, const std::string& meta) {
    return "{\"dtype\":\"float64\",\"tensors\":" + tensors + ",\"meta\":" + meta + "}";
  };
  const std::string w = "[{\"name\":\"w\",\"shape\":[1]}]";
  const std::string good_meta = "{\"epochs_done\":3,\"dtype\":\"float64\",\"seed\":0}";
  struct Case {
    std::string what, bytes, fragment;
  };
  const std::vector<Case> cases = {
      {"dtype a number", craft_checkpoint("{\"dtype\":64,\"tensors\":" + w + "}", doubles({1})),
       "'dtype'"},
      {"meta an array", craft_checkpoint(header(w, "[1]"), doubles({1})), "'meta'"},
      {"epochs_done negative", craft_checkpoint(header(w, "{\"epochs_done\":-5}"), doubles({1})),
       "epochs_done"},
      {"epochs_done absurd", craft_checkpoint(header(w, "{\"epochs_done\":1e300}"), doubles({1})),
       "epochs_done"},
      {"epochs_done a string", craft_checkpoint(header(w, "{\"epochs_done\":\"3\"}"), doubles({1})),
       "epochs_done"},
      {"NaN parameter", craft_checkpoint(header(w, good_meta), doubles({std::nan("")})), "NaN"},
      {"inf parameter", craft_checkpoint(header(w, good_meta), doubles({INFINITY})), "inf"},
      {"duplicated name",
       craft_checkpoint(
           header("[{\"name\":\"w\",\"shape\":[1]},{\"name\":\"w\",\"shape\":[1]}]", good_meta),
           doubles({1, 2})),
       "appears twice"},
      {"name a number",
       craft_checkpoint(header("[{\"name\":7,\"shape\":[1]}]", good_meta), doubles({1})),
       "malformed tensor record"},
      {"shape negative",
       craft_checkpoint(header("[{\"name\":\"w\",\"shape\":[-1]}]", good_meta), doubles({1})),
       "malformed shape"},
      {"meta dtype differs",
       craft_checkpoint(header(w, "{\"epochs_done\":1,\"dtype\":\"float32\"}"), doubles({1})),
       "meta.dtype"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string ck = dir.write("ck", c.bytes);
    const Result r = run_nw(dir, "--dtype float64 --no-plots --resume " + quote(ck) + " --out " +
                                     quote((dir / "out").string()));
    expect_one_line_error(r, 2, c.fragment);
    EXPECT_NE(r.err.find(ck), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
  // The same crafting with sensible contents resumes (the crafting itself is right).
  const std::string ck = dir.write("ck", craft_checkpoint(header(w, good_meta), doubles({2.5})));
  const Result r = run_nw(dir, "--dtype float64 --epochs 1 --no-plots --resume " + quote(ck) +
                                   " --out " + quote((dir / "out").string()));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("w = 2.5 after 3 epochs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch 4, loss"), std::string::npos) << r.out;
}

// No --impl runs the chapter's composed ops and says so; over --memory-budget it switches
// to the fused op in one line; --impl forces either within the budget; training.json records
// "impl".
TEST(CliReliability, DefaultImplIsComposedWithinTheMemoryBudget) {
  TempDir dir;
  auto impl_of = [&](const std::string& out) {
    return nlohmann::json::parse(slurp(dir / out / "training.json"))["impl"].get<std::string>();
  };
  Result r = run_nw(dir, "--epochs 1 --no-plots --out " + quote((dir / "a").string()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("composed ops: nw_logits, softmax, bmm"), std::string::npos);
  EXPECT_EQ(impl_of("a"), "composed");
  // 11 arrays of 400 x 399 float32 = 6.7 MiB > 1 MiB.
  r = run_nw(dir, "--n-train 400 --memory-budget 1 --epochs 1 --no-plots --out " +
                      quote((dir / "b").string()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("11 arrays of 400 x 399 alive (7 MiB > --memory-budget 1 MiB): using the "
                       "fused op"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("fused op) on leave-one-out pairs (400 x 399)"), std::string::npos) << r.out;
  EXPECT_EQ(impl_of("b"), "fused");
  r = run_nw(dir, "--n-train 400 --memory-budget 8 --impl composed --epochs 1 --no-plots --out " +
                      quote((dir / "c").string()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("using the fused op"), std::string::npos) << r.out;
  EXPECT_EQ(impl_of("c"), "composed");
  // --impl composed over the budget is refused (tests/examples/test_cli_logs.cpp).
  r = run_nw(dir, "--n-train 400 --memory-budget 1 --impl composed --epochs 1 --no-plots --out " +
                      quote((dir / "d").string()));
  EXPECT_EQ(r.status, 2) << r.err;
}

// A --no-plots run after a run with figures removes the earlier figures: --out holds one run's set.
TEST(CliReliability, OutHoldsOneRunsSet) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot not installed";
  TempDir dir;
  const std::string out = " --out " + quote((dir / "out").string());
  ASSERT_EQ(run_nw(dir, "--epochs 1" + out).status, 0);
  EXPECT_TRUE(fs::exists(dir / "out" / "loss.png"));
  dir.write("out/notes.txt", "mine");
  ASSERT_EQ(run_nw(dir, "--epochs 1 --no-plots" + out).status, 0);
  EXPECT_FALSE(fs::exists(dir / "out" / "loss.png"));
  EXPECT_FALSE(fs::exists(dir / "out" / "plots.gp"));
  EXPECT_EQ(slurp(dir / "out" / "notes.txt"), "mine");  // files that are not outputs stay
}

// Integer flags take decimal integers only, as --seed does, and a refusal quotes the value as
// typed (not a clamped 9223372036854775807); number flags refuse hexadecimal; empty values are
// refused; a refusal names its flag.
TEST(CliReliability, FlagValuesQuotedAsTyped) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--epochs 9223372036854775808",
       "--epochs must be an integer from 0 to 1000000, got '9223372036854775808'"},
      {"--memory-budget 99999999999999999999",
       "--memory-budget must be an integer from 1 to 1048576, got '99999999999999999999'"},
      {"--epochs 0x10", "--epochs must be an integer from 0 to 1000000, got '0x10'"},
      {"--epochs -9223372036854775809", "got '-9223372036854775809'"},
      {"--n-train 1e3", "--n-train must be an integer from 2 to 1000000, got '1e3'"},
      {"--threads +1", "--threads must be an integer from 0 to 256, got '+1'"},
      {"--threads ' 1'", "got ' 1'"},
      {"--epochs 5.0", "got '5.0'"},
      {"--lr 0x10", "--lr must be a decimal number, got '0x10'"},
      {"--sigma 0x1p-2", "--sigma must be a decimal number, got '0x1p-2'"},
      {"--w-init ' 1'", "--w-init must be a decimal number, got ' 1'"},
  };
  for (const auto& [args, fragment] : cases) {
    SCOPED_TRACE(args);
    expect_one_line_error(run_nw(dir, args + " --out " + quote((dir / "out").string())), 2,
                          fragment);
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
  // An empty value is refused, never taken for the default: `--save "$CK"` with CK unset must not
  // run without saving, `--train "$F"` must not train on the generated data.
  for (const std::string flag : {"--save", "--resume", "--train", "--query", "--impl", "--dataset",
                                 "--loss", "--epochs", "--lr"}) {
    SCOPED_TRACE(flag);
    expect_one_line_error(run_nw(dir, flag + " '' --out " + quote((dir / "out").string())), 2,
                          flag + ": the value is empty");
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
  expect_one_line_error(
      run_nw(dir, "--kernel Gaussian --out " + quote((dir / "out").string())), 2,
      "--kernel must be gaussian, boxcar, constant or epanechikov, got 'Gaussian'");
  // Leading zeros are still decimal.
  const Result r =
      run_nw(dir, "--epochs 002 --n-train 0010 --no-plots --out " + quote((dir / "ok").string()));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(epoch_lines(r.out).size(), 2u) << r.out;
}

// Every --out problem is found before the first epoch: exit 2, one line naming --out and the
// reason (a loop of symbolic links, a dangling link, a path over PATH_MAX, a file in the path);
// and a legal 240- or 255-byte directory name is usable (the staging name is short and inside it).
TEST(CliReliability, OutPathProblemsFoundBeforeTraining) {
  TempDir dir;
  fs::create_symlink(dir / "loop_a", dir / "loop_b");
  fs::create_symlink(dir / "loop_b", dir / "loop_a");
  fs::create_symlink(dir / "nowhere" / "x", dir / "dangling");
  dir.write("a_file", "x");
  std::string deep = dir.path().string();
  while (deep.size() < 4200) deep += "/" + std::string(200, 'd');
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {(dir / "loop_a").string(), {"--out", "a loop of symbolic links"}},
      {(dir / "loop_a" / "sub").string(), {"--out", "a loop of symbolic links"}},
      {(dir / "dangling").string(), {"--out", "is a symbolic link to", "which does not exist"}},
      {(dir / "dangling" / "sub").string(), {"--out", "which does not exist"}},
      {deep, {"--out", "too long"}},
      {(dir / "a_file" / "out").string(), {"--out", "a_file is not a directory"}},
  };
  for (const auto& [out, fragments] : cases) {
    SCOPED_TRACE(out.substr(0, 100));
    const Result r = run_nw(dir, "--no-plots --out " + quote(out));
    for (const auto& f : fragments) expect_one_line_error(r, 2, f);
  }
  EXPECT_EQ(debris(dir.path(), {"loop_a", "loop_b", "dangling", "a_file"}),
            std::vector<std::string>());
  for (const std::size_t length : {240, 255}) {
    const fs::path out = dir / std::string(length, 'n');
    const Result r = run_nw(dir, "--epochs 1 --no-plots --out " + quote(out.string()));
    EXPECT_EQ(r.status, 0) << length << ": " << r.err;
    EXPECT_TRUE(fs::is_regular_file(out / "predictions.csv")) << length;
    fs::remove_all(out);
  }
}

// --save problems are found before the first epoch too; a 250-byte checkpoint name works (its
// temporary's name is cut to fit NAME_MAX); a --save that is a symbolic link saves into the file
// it names and stays a link.
TEST(CliReliability, SavePathProblemsFoundBeforeTraining) {
  TempDir dir;
  fs::create_symlink(dir / "loop_a", dir / "loop_b");
  fs::create_symlink(dir / "loop_b", dir / "loop_a");
  fs::create_symlink(dir / "nowhere" / "ck", dir / "dangling");
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {(dir / "loop_a").string(), "a loop of symbolic links"},
      {(dir / "dangling").string(), "does not exist"},
      {(dir / "fifo").string(), "not a regular file"},
      {(dir / std::string(256, 'c')).string(), "File name too long"},
  };
  const std::string out = " --no-plots --out " + quote((dir / "out").string());
  for (const auto& [save, fragment] : cases) {
    SCOPED_TRACE(save);
    expect_one_line_error(run_nw(dir, "--save " + quote(save) + out), 2, fragment);
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
  const fs::path long_ck = dir / std::string(250, 'c');
  Result r = run_nw(dir, "--epochs 1 --save " + quote(long_ck.string()) + out);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::is_regular_file(long_ck));
  fs::create_directory(dir / "elsewhere");
  fs::create_symlink(dir / "elsewhere" / "ck", dir / "link_ck");
  r = run_nw(dir, "--epochs 1 --save " + quote((dir / "link_ck").string()) + out);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(dir / "link_ck"));
  EXPECT_TRUE(fs::is_regular_file(dir / "elsewhere" / "ck"));
  r = run_nw(dir, "--epochs 1 --resume " + quote((dir / "link_ck").string()) + " --save " +
                      quote((dir / "link_ck").string()) + out);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("epoch 2, loss"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::is_symlink(dir / "link_ck"));
  EXPECT_EQ(files_in(dir / "elsewhere"), std::vector<std::string>{"ck"});
}

// --resume of what cannot be a checkpoint is refused before it is read whole: a FIFO (which would
// block), a device, a directory, a 2 GiB file without the magic bytes and one with them (under a
// 1.5 GB address-space limit); each in well under a second, exit 2, naming the file.
TEST(CliReliability, ResumeRefusesWhatCannotBeACheckpoint) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  fs::create_directory(dir / "a_dir");
  const fs::path big = dir / "big", magic = dir / "big_magic";
  std::ofstream(big) << "not a checkpoint";
  fs::resize_file(big, std::uintmax_t(2) << 30);  // sparse: no disk used
  std::ofstream(magic) << "tapegrad-checkpoint 1\n";
  fs::resize_file(magic, std::uintmax_t(2) << 30);
  const std::vector<std::pair<fs::path, std::string>> cases = {
      {dir / "fifo", "is a FIFO"},
      {"/dev/zero", "is a character device"},
      {dir / "a_dir", "is a directory"},
      {big, "not a tapegrad checkpoint"},
      {magic, "larger than a checkpoint of this model can be"},
  };
#if defined(__SANITIZE_ADDRESS__)
  const std::string limit = "";  // ASan reserves terabytes of address space
#else
  const std::string limit = "ulimit -v 1500000;";
#endif
  for (const auto& [ck, fragment] : cases) {
    SCOPED_TRACE(ck.string());
    const auto start = std::chrono::steady_clock::now();
    const Result r = run_nw(
        dir,
        "--no-plots --resume " + quote(ck.string()) + " --out " + quote((dir / "out").string()),
        limit + " timeout 20");
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    expect_one_line_error(r, 2, fragment);
    EXPECT_NE(r.err.find(ck.string()), std::string::npos) << r.err;
    EXPECT_LT(seconds, 2.0);
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
}

// Two runs --resume ck --save ck --epochs 3 at once on a 1-epoch checkpoint: they take turns (the
// second waits for the first's save and continues from it), so the checkpoint ends at 7 epochs;
// both exit 0. A plain --save racing them commits in turn too.
TEST(CliReliability, ConcurrentResumeAndSaveBothCount) {
  TempDir dir;
  const std::string ck = quote((dir / "ck").string());
  ASSERT_EQ(
      run_nw(dir, "--epochs 1 --no-plots --save " + ck + " --out " + quote((dir / "o").string()))
          .status,
      0);
  const std::string nw = quote(NW_EXE);
  const std::string run = nw + " --epochs 3 --no-plots --resume " + ck + " --save " + ck;
  const std::string cmd = "cd " + quote(dir.path().string()) + " && (" + run +
                          " --out a >a.txt 2>&1 & " + run + " --out b >b.txt 2>&1 & wait %1 && " +
                          "wait %2)";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(dir / "a.txt") << slurp(dir / "b.txt");
  const std::string both = slurp(dir / "a.txt") + slurp(dir / "b.txt");
  EXPECT_NE(both.find("after 1 epochs"), std::string::npos) << both;
  EXPECT_NE(both.find("after 4 epochs"), std::string::npos) << both;
  const std::string bytes = slurp(dir / "ck");
  EXPECT_NE(bytes.find("\"epochs_done\":7"), std::string::npos) << bytes.substr(0, 200);
  EXPECT_EQ(debris(dir.path(), {"ck", "o", "a", "b", "a.txt", "b.txt"}),
            std::vector<std::string>());
}

namespace {

// A fake tool in dir/bin that writes `content` into each of `files` (or, with "@args", into every
// argument ending in .png or .png.tmp) and exits 0.
void fake_tool(const TempDir& dir, const std::string& name, const std::string& files,
               const std::string& content) {
  fs::create_directories(dir / "bin");
  dir.write("content.bin", content);
  const std::string copy = "cat " + quote((dir / "content.bin").string());
  const std::string body =
      files == "@args"
          ? "for a; do case \"$a\" in *.png|*.png.tmp) " + copy + " > \"$a\";; esac; done\n"
          : "for f in " + files + "; do " + copy + " > \"$f\"; done\n";
  dir.write("bin/" + name, "#!/bin/sh\n" + body + "exit 0\n");
  fs::permissions(dir / "bin" / name, fs::perms::owner_all);
}

}  // namespace

// A gnuplot or a Graphviz dot that exits 0 but writes empty or truncated PNGs is an error in words
// (exit 1), and --out keeps the previous run's files.
TEST(CliReliability, FiguresAreCheckedWholeBeforeTheCommit) {
  TempDir dir;
  const std::string out = quote((dir / "out").string());
  ASSERT_EQ(run_nw(dir, "--epochs 1 --no-plots --out " + out).status, 0);
  const auto before = snapshot(dir / "out");
  std::string figures;
  for (const auto& f : figure_files()) figures += f + " ";
  const std::string half_png = std::string("\x89PNG\r\n\x1a\n", 8) + std::string(500, 'p');
  const std::string path = "PATH=" + quote((dir / "bin").string()) + ":\"$PATH\"";
  struct Case {
    std::string tool, files, content, args, words;
  };
  for (const Case& c : {Case{"gnuplot", figures, "", "", "pred_average.png is empty (0 bytes)"},
                        Case{"gnuplot", figures, half_png, "", "is cut short (508 bytes"},
                        Case{"gnuplot", figures, "GIF89a", "", "is not a PNG"},
                        Case{"dot", "@args", "", " --no-plots --graph", "graph.png is empty"},
                        Case{"dot", "@args", half_png, " --no-plots --graph", "cut short"}}) {
    SCOPED_TRACE(c.tool + " " + c.words);
    fs::remove_all(dir / "bin");
    fake_tool(dir, c.tool, c.files, c.content);
    const Result r = run_nw(dir, "--seed 5 --epochs 1 --out " + out + c.args, path);
    expect_one_line_error(r, 1, c.words, /*before_training=*/false);
    EXPECT_TRUE(snapshot(dir / "out") == before) << "--out changed";
    EXPECT_EQ(debris(dir.path(), {"out", "bin", "content.bin"}), std::vector<std::string>());
  }
  // A dot that fails: its status in words.
  dir.write("bin/dot", "#!/bin/sh\nexit 3\n");
  const Result r = run_nw(dir, "--seed 5 --epochs 1 --no-plots --graph --out " + out, path);
  expect_one_line_error(r, 1, "Graphviz's dot exited with status 3", /*before_training=*/false);
  EXPECT_TRUE(snapshot(dir / "out") == before);
}

// SIGINT, SIGTERM or SIGHUP during training: the run ends by that signal, --out stays as it was
// (an absent --out, with its missing parents, stays absent) and no staging directory is left.
TEST(CliReliability, FatalSignalsLeaveNoTrace) {
  TempDir dir;
  const fs::path out = dir / "out";
  ASSERT_EQ(run_nw(dir, "--epochs 1 --no-plots --out " + quote(out.string())).status, 0);
  const auto before = snapshot(out);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    for (const fs::path& target : {out, dir / "new" / "deeper"}) {
      SCOPED_TRACE(std::to_string(sig) + " " + target.string());
      const fs::path log = dir / "log.txt";
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        for (const int s : {SIGINT, SIGTERM, SIGHUP}) ::signal(s, SIG_DFL);
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::execl(NW_EXE, NW_EXE, "--n-train", "1000", "--epochs", "1000000", "--no-plots", "--out",
                target.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
      }
      // The staging directory appears before the first epoch (stdout, a file, is buffered).
      const auto staging = [&target] {
        for (const auto& name : files_in(target))
          if (name.rfind(".tapegrad-staging.", 0) == 0) return true;
        return false;
      };
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!staging() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // into training
      ::kill(pid, sig);
      int status = 0;
      ::waitpid(pid, &status, 0);
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << "wait status " << status;
      EXPECT_TRUE(snapshot(out) == before) << "--out changed";
      EXPECT_FALSE(fs::exists(dir / "new"));
      EXPECT_EQ(debris(dir.path(), {"out", "log.txt"}), std::vector<std::string>());
    }
  }
}
