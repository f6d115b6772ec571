// The nadaraya_watson program on long runs and large n, run as a user runs it: logs bounded by
// default and controlled by --log-every and --quiet, stdout flushed line by line into a pipe, the
// progress line on a terminal only, a warning for a hundredfold step of w, --impl composed over
// --memory-budget refused before any work, and at n = 20000 an --out of at most 15 MB whose
// "wrote" line lists every output.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_test_util.h"

namespace fs = std::filesystem;
using namespace tapegrad::testutil;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The epoch numbers of the "epoch k, loss L" lines.
std::vector<long> epoch_numbers(const std::string& out) {
  std::vector<long> numbers;
  for (const std::string& line : epoch_lines(out)) numbers.push_back(std::stol(line.substr(6)));
  return numbers;
}

// The line of `out` that starts with `prefix`, or "".
std::string line_starting(const std::string& out, const std::string& prefix) {
  std::istringstream is(out);
  std::string line;
  while (std::getline(is, line))
    if (line.rfind(prefix, 0) == 0) return line;
  return "";
}

// Runs the program on a pseudo-terminal (stdin, stdout and stderr all the terminal, as in an
// interactive shell) and returns everything it wrote there.
std::string run_on_terminal(const std::string& args) {
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) return "forkpty failed";
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", (std::string(NW_EXE) + " " + args).c_str(), (char*)nullptr);
    _exit(127);
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t got = read(master, buffer, sizeof buffer);
    if (got <= 0) break;  // EIO once the child has exited and closed the terminal
    text.append(buffer, std::size_t(got));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  return text;
}

}  // namespace

// The chapter's 5 epochs print every epoch; 2000 epochs print at most 60 lines in all, the first
// and the last epoch among them; 40 epochs still print every one.
TEST(CliLogs, LongRunsPrintABoundedLog) {
  TempDir tmp;
  const std::string common = "--n-train 20 --no-plots --out " + quote((tmp / "out").string());
  Result r = run_nw(tmp, common);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(epoch_numbers(r.out), (std::vector<long>{1, 2, 3, 4, 5}));

  r = run_nw(tmp, common + " --epochs 2000");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_LE(count_lines(r.out), 60u) << r.out;
  const std::vector<long> numbers = epoch_numbers(r.out);
  ASSERT_GE(numbers.size(), 20u) << r.out;
  EXPECT_EQ(numbers.front(), 1);
  EXPECT_EQ(numbers.back(), 2000);
  for (std::size_t i = 1; i < numbers.size(); ++i) EXPECT_LT(numbers[i - 1], numbers[i]);

  r = run_nw(tmp, common + " --epochs 40");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(epoch_numbers(r.out).size(), 40u);
}

// --log-every N prints every N-th epoch, the first and the last; --quiet the last alone; both
// flags are checked (N from 1, not both at once: exit 2, one line, nothing written).
TEST(CliLogs, LogEveryAndQuiet) {
  TempDir tmp;
  const std::string common = "--n-train 20 --no-plots --out " + quote((tmp / "out").string());
  Result r = run_nw(tmp, common + " --log-every 100 --epochs 1000");
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<long> expected = {1};
  for (long k = 100; k <= 1000; k += 100) expected.push_back(k);
  EXPECT_EQ(epoch_numbers(r.out), expected);
  EXPECT_LE(expected.size(), 15u);

  r = run_nw(tmp, common + " --log-every 7 --epochs 20");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(epoch_numbers(r.out), (std::vector<long>{1, 7, 14, 20}));

  r = run_nw(tmp, common + " --quiet --epochs 300");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(epoch_numbers(r.out), (std::vector<long>{300}));
  EXPECT_NE(r.out.find("learned w = "), std::string::npos) << r.out;

  for (const std::string bad :
       {"--log-every 0", "--log-every -3", "--log-every x", "--quiet --log-every 10"}) {
    SCOPED_TRACE(bad);
    expect_bad_input(tmp, bad, {"--"}, tmp / "bad");
  }
}

// Into a pipe, each line leaves when it is complete: the first epoch's line arrives before half of
// the run has passed (block buffering would hold every line until the end).
TEST(CliLogs, PipedRunStreamsItsLines) {
  TempDir tmp;
  const std::string cmd = quote(NW_EXE) +
                          " --n-train 1500 --impl fused --epochs 250 --lr 0.001 --threads 1 "
                          "--no-plots --out " +
                          quote((tmp / "out").string()) + " 2>/dev/null";
  const auto start = std::chrono::steady_clock::now();
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  double first_epoch = -1;
  char line[4096];
  while (fgets(line, sizeof line, pipe))
    if (first_epoch < 0 && std::string(line).rfind("epoch ", 0) == 0)
      first_epoch = seconds_since(start);
  ASSERT_EQ(pclose(pipe), 0);
  const double total = seconds_since(start);
  ASSERT_GE(first_epoch, 0.0);
  EXPECT_LT(first_epoch, total / 2) << "first epoch line at " << first_epoch << " s of " << total;
}

// On a terminal, stderr carries a progress line redrawn in place (epochs per second, time left);
// into a file or with --quiet, none. The run is long enough (seconds) for the line's first draw,
// which waits 0.5 s.
TEST(CliLogs, ProgressLineOnlyOnATerminal) {
  TempDir tmp;
  const std::string args =
      "--n-train 2000 --impl fused --dtype float64 --epochs 400 --lr 0.0005 --threads 1 "
      "--no-plots --out " +
      quote((tmp / "out").string());
  const std::string terminal = run_on_terminal(args);
  EXPECT_NE(terminal.find("epochs/s"), std::string::npos) << terminal;
  EXPECT_NE(terminal.find(" left"), std::string::npos) << terminal;
  // Redrawn in place: a carriage return, the line, the rest of the row cleared.
  EXPECT_NE(terminal.find("\repoch "), std::string::npos) << terminal;
  EXPECT_NE(terminal.find("left\x1b[K"), std::string::npos) << terminal;
  EXPECT_NE(terminal.find("epoch 400, loss"), std::string::npos) << terminal;

  const std::string quiet = run_on_terminal(args + " --quiet");
  EXPECT_EQ(quiet.find("epochs/s"), std::string::npos) << quiet;
  EXPECT_NE(quiet.find("epoch 400, loss"), std::string::npos) << quiet;

  const Result piped = run_nw(tmp, args);
  ASSERT_EQ(piped.status, 0) << piped.err;
  EXPECT_EQ(piped.err.find("epochs/s"), std::string::npos) << piped.err;
  EXPECT_EQ(piped.err.find('\r'), std::string::npos) << piped.err;
}

// One SGD step that changes w more than a hundredfold gets one warning on stderr naming the cause (the
// loss sums over n) and the remedy (--lr / n); the smaller learning rate gets none.
TEST(CliLogs, HundredfoldStepWarnsWithCauseAndRemedy) {
  TempDir tmp;
  const std::string common =
      "--n-train 2000 --impl fused --epochs 3 --no-plots --out " + quote((tmp / "out").string());
  Result r = run_nw(tmp, common);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  for (const char* words : {"nadaraya_watson: warning: epoch 1's step changed w from ",
                            "is a sum over the n = 2000 training points", "--lr 0.00025"})
    EXPECT_NE(r.err.find(words), std::string::npos) << words << " in: " << r.err;
  r = run_nw(tmp, common + " --lr 0.00025");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // The chapter's own run (w 0.62 -> 9.8 in its first step) converges: no warning.
  r = run_nw(tmp, "--no-plots --out " + quote((tmp / "chapter").string()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

// --impl composed whose intermediates exceed --memory-budget exits 2 in seconds, before any work,
// naming the estimate and the budget; the default (no --impl) still switches to the fused op.
TEST(CliLogs, ComposedOverTheMemoryBudgetIsRefusedAtOnce) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const auto start = std::chrono::steady_clock::now();
  const Result r = run_nw(tmp, "--n-train 20000 --impl composed --out " + quote(out.string()));
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  for (const char* words : {"--impl composed would keep about 11 arrays of 20000 x 19999 float32",
                            "16784 MiB", "over --memory-budget 1024 MiB", "--impl fused"})
    EXPECT_NE(r.err.find(words), std::string::npos) << words << " in: " << r.err;
  EXPECT_TRUE(epoch_lines(r.out).empty()) << r.out;
  EXPECT_FALSE(fs::exists(out));
}

// The last line names every output: the figures, graph.dot (and graph.png with Graphviz) and the
// checkpoint.
TEST(CliLogs, WroteLineListsEveryOutput) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const std::string ck = (tmp / "ck").string();
  const Result r = run_nw(tmp, "--n-train 30 --epochs 2 --no-plots --graph --save " + quote(ck) +
                                   " --out " + quote(out.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string wrote = line_starting(r.out, "wrote ");
  EXPECT_NE(wrote.find(", graph.dot"), std::string::npos) << wrote;
  EXPECT_EQ(wrote.find(", graph.png") != std::string::npos, fs::exists(out / "graph.png")) << wrote;
  EXPECT_NE(wrote.find("; checkpoint " + ck), std::string::npos) << wrote;
  EXPECT_TRUE(fs::exists(ck));
  EXPECT_EQ(r.out.find("saved checkpoint"), std::string::npos) << r.out;  // one line says it all
  // The graph is the tape of one step on its own: its positions start at #1, and unsqueeze is
  // named as the model calls it.
  const std::string dot = slurp(out / "graph.dot");
  EXPECT_NE(dot.find("label=\"#1 "), std::string::npos) << dot;
  EXPECT_NE(dot.find(" unsqueeze\\n"), std::string::npos) << dot;
}

// n = 20000 with figures: --out holds at most 15 MB (the figures draw at most kMaxPlotPoints
// points and reduced heatmaps; plots.gp stays small), and the wrote line counts the figures.
TEST(CliLogs, LargeRunWithFiguresWritesAtMost15MB) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot not installed";
  TempDir tmp;
  const fs::path out = tmp / "out";
  const Result r = run_nw(tmp, "--n-train 20000 --out " + quote(out.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  std::uintmax_t bytes = 0;
  for (const auto& e : fs::directory_iterator(out)) bytes += e.file_size();
  EXPECT_LE(bytes, 15000000u);
  EXPECT_LE(fs::file_size(out / "plots.gp"), 1000000u);
  EXPECT_NE(line_starting(r.out, "wrote ").find("plots.gp and 9 figures"), std::string::npos)
      << r.out;
  const std::string script = slurp(out / "plots.gp");
  EXPECT_NE(script.find("Training data (2000 of 20000 drawn)"), std::string::npos);
  EXPECT_NE(script.find("Sorted training inputs (20000: weights summed in cells of 50)"),
            std::string::npos);
}
