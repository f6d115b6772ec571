// The program's outputs as one transaction.
//
// Every output (CSVs, JSON, plots.gp, PNGs, and the --save checkpoint) is first written into a
// private staging directory beside --out (".<out name>.staging.<pid>.XXXXXX" in --out's parent,
// so renames stay on one file system). Only when all of it succeeded does commit() take an
// exclusive flock on --out's parent directory and, under it, rename each file into --out and
// remove the program's outputs this run did not produce (the figures of an earlier run when this
// one has --no-plots), so --out always holds one run's set. A failure before commit() (bad input,
// gnuplot failing, a full disk, an exception) removes the staging directory and any parent
// directory this run created: --out keeps its previous files byte for byte.
//
// Concurrent runs into one --out each stage privately and commit one at a time under the lock:
// the last to commit wins, whole. Limit: commit() renames file by file, so a process killed inside
// commit() (a few renames long) can leave a mix of two runs' files; a reader that wants a
// consistent set takes the same lock (flock on the parent directory, shared).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "examples/errors.h"
#include "examples/plots.h"

namespace tapegrad {

// "exited with status 3", "was killed by signal 9 (Killed)": a wait status in words.
std::string describe_wait_status(int status);

class OutputTransaction {
 public:
  // Checks --out (a directory or absent; none of the output names a directory; writable), creates
  // missing parent directories and the staging directory, and removes stale staging directories
  // of runs that died. Throws UsageError naming --out. `names` is every file name the program may
  // write into --out (nadaraya_watson's by default; commit() removes those this run did not write).
  explicit OutputTransaction(const std::string& out_dir,
                             std::vector<std::string> names = output_names());
  ~OutputTransaction();  // not committed: removes the staging directory and created parents
  OutputTransaction(const OutputTransaction&) = delete;
  OutputTransaction& operator=(const OutputTransaction&) = delete;

  // Every file name the nadaraya_watson program may write into --out.
  static std::vector<std::string> output_names();
  const std::filesystem::path& out_dir() const { return out_dir_; }
  const std::filesystem::path& staging_dir() const { return staging_dir_; }

  // Writes `text` as staging_dir/name.
  void write(const std::string& name, const std::string& text);
  // Registers a file that gnuplot (or anyone) wrote into staging_dir/name.
  void add_written(const std::string& name);
  // A file staged elsewhere (the checkpoint's temporary) to rename onto `target` at commit time.
  void add_rename(const std::filesystem::path& staged, const std::filesystem::path& target);

  // Moves everything into place under the lock (see above). Throws UsageError when an output
  // name became a directory meanwhile (nothing moved).
  void commit();

 private:
  void open(const std::string& out_flag);
  void abandon();  // removes what this run created

  std::vector<std::string> names_;
  std::filesystem::path out_dir_, parent_, staging_dir_;
  std::vector<std::filesystem::path> created_parents_;  // deepest last
  std::vector<std::string> staged_names_;
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> renames_;
  bool committed_ = false;
};

// Is `program` an executable on PATH?
bool on_path(const std::string& program);
// Runs argv (no shell) in `dir` with stdin from /dev/null; returns its wait status (127: could
// not be started). Throws ToolError when the process cannot be created or waited for.
int run_program(const std::filesystem::path& dir, const std::vector<std::string>& argv);
// Runs gnuplot on `script` (already written into the transaction's staging directory) there, to
// draw `figures`. Returns false (with a warning on stderr naming `program`) when gnuplot is not
// installed; throws ToolError with the exit status in words when gnuplot fails.
bool run_gnuplot_script(OutputTransaction& outputs, const std::string& program,
                        const std::string& script, const std::vector<std::string>& figures);

// Writes plots.gp into the transaction's staging directory and runs it there (run_gnuplot_script)
// to draw figure_files().
bool draw_figures(OutputTransaction& outputs, const PlotData& plot_data);

}  // namespace tapegrad
