// Helpers of the tests that run the nadaraya_watson program as a user would: a temporary
// directory, shell quoting, running the program with its output captured, reading files back.
#pragma once

#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace tapegrad::testutil {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "tapegrad_cli_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

  // Writes a file in this directory and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream f(path_ / name, std::ios::binary);
    f << text;
    return (path_ / name).string();
  }

 private:
  fs::path path_;
};

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

struct Result {
  int status = -1;  // exit status, -1 if killed by a signal
  std::string out, err;
};

// Runs the program with `args` (already quoted where needed); stdout and stderr go to files in
// `dir`, stdin is /dev/null.
// `prefix` goes before the program (environment assignments, "ulimit -v N;" in a subshell).
inline Result run_nw(const TempDir& dir, const std::string& args, const std::string& prefix = "") {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = "(" + prefix + " " + quote(NW_EXE) + " " + args + " >" +
                          quote(out.string()) + " 2>" + quote(err.string()) + " </dev/null)";
  const int rc = std::system(cmd.c_str());
  Result r;
  if (rc != -1 && WIFEXITED(rc)) r.status = WEXITSTATUS(rc);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

inline std::size_t count_lines(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

inline std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  if (!fs::exists(dir)) return names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

// Every file under `dir` (recursively) with its bytes.
inline std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  if (!fs::exists(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    files[fs::relative(e.path(), dir).string() + (e.is_directory() ? "/" : "")] =
        e.is_regular_file() ? slurp(e.path()) : "";
  return files;
}

// The lines "epoch k, loss L" of stdout, in order.
inline std::vector<std::string> epoch_lines(const std::string& out) {
  std::vector<std::string> lines;
  std::istringstream is(out);
  std::string line;
  while (std::getline(is, line))
    if (line.rfind("epoch ", 0) == 0) lines.push_back(line);
  return lines;
}

// Runs the program with `args` into `out` and expects the bad-input contract: exit status 2, one
// line on stderr starting "nadaraya_watson: error: " and containing every one of `fragments`, and
// nothing written into `out`.
inline void expect_bad_input(const TempDir& dir, const std::string& args,
                             const std::vector<std::string>& fragments, const fs::path& out) {
  const Result r = run_nw(dir, args + " --no-plots --out " + quote(out.string()));
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("nadaraya_watson: error: ", 0), 0u) << r.err;
  for (const auto& f : fragments)
    EXPECT_NE(r.err.find(f), std::string::npos) << f << " in: " << r.err;
  EXPECT_TRUE(files_in(out).empty()) << "wrote into " << out;
}

}  // namespace tapegrad::testutil
