// What the exercise programs (poolings, kernel_to_attention, bandwidth) share: the bad-input
// contract of nadaraya_watson and staged outputs.
//
//   bad input     -> exit 2, one line on stderr naming the flag or file, nothing written
//   internal fault -> exit 1
//   outputs       -> written into a private staging directory inside --out, drawn there by
//                    gnuplot, and renamed into place only when everything succeeded; a failure
//                    removes the staging directory, so --out never holds half a run.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace tapegrad::exercise {

namespace fs = std::filesystem;

// Bad user input: a flag value or the output directory. main() turns it into exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws UsageError("--flag must ...") unless ok.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A private directory <out>/.staging-<pid> for one run's files. commit() renames every file into
// <out>; the destructor removes whatever is left (everything, when commit() was never reached).
class StagedOutput {
 public:
  explicit StagedOutput(const std::string& out) : out_(out) {
    std::error_code ec;
    fs::create_directories(out_, ec);
    if (!fs::is_directory(out_))
      throw UsageError("--out " + out + ": not a directory and cannot be created");
    stage_ = out_ / (".staging-" + std::to_string(::getpid()));
    fs::remove_all(stage_, ec);
    if (!fs::create_directory(stage_, ec))
      throw UsageError("--out " + out + ": cannot write in it (" + ec.message() + ")");
  }
  ~StagedOutput() {
    std::error_code ec;
    fs::remove_all(stage_, ec);
  }
  StagedOutput(const StagedOutput&) = delete;
  StagedOutput& operator=(const StagedOutput&) = delete;

  void write(const std::string& name, const std::string& text) {
    std::ofstream f(stage_ / name, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) throw std::runtime_error("cannot write " + (stage_ / name).string());
    names_.push_back(name);
  }

  // Runs the gnuplot script `name` (already written) inside the staging directory; the figures
  // it names are listed in `figures`. Without gnuplot: a warning, and the script is kept.
  bool plot(const std::string& program, const std::string& name,
            const std::vector<std::string>& figures) {
    if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
      std::cerr << program << ": warning: gnuplot not found, figures skipped "
                << "(apt-get install gnuplot-nox)\n";
      return false;
    }
    const std::string cmd = "cd " + shell_quote(stage_.string()) + " && gnuplot " + name;
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("gnuplot failed on " + name);
    for (const auto& f : figures) names_.push_back(f);
    return true;
  }

  // Moves every staged file into the output directory.
  void commit() {
    for (const auto& n : names_) fs::rename(stage_ / n, out_ / n);
  }
  const fs::path& out() const { return out_; }

 private:
  fs::path out_, stage_;
  std::vector<std::string> names_;
};

// Parses the command line and runs `body`, mapping errors to the exit statuses above.
inline int run_main(CLI::App& app, const std::string& program, int argc, char** argv,
                    const std::function<int()>& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << program << ": error: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    return body();
  } catch (const UsageError& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": internal error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace tapegrad::exercise
