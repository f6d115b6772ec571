// The program's outputs as one transaction.
//
// Every output (CSVs, JSON, plots.gp, PNGs) is first written into a private staging directory
// inside --out itself (".tapegrad-staging.<pid>.XXXXXX", a short name, so a --out name of up to
// NAME_MAX bytes works), so every rename into --out stays on one file system whatever --out is: a
// directory, a mount point, a bind mount, a symbolic link to another disk. Each file is fsynced and
// each figure checked whole (a PNG signature and an IEND chunk) before the commit. commit() takes
// the --save checkpoint's lock, then an exclusive flock on --out, moves the previous outputs aside
// into the staging directory, renames each new file into --out, and renames the checkpoint last;
// when any rename fails it puts everything back: --out and the checkpoint change together or not
// at all. Outputs of an earlier run that this run did not produce (its figures when this run has
// --no-plots) are removed, so --out always holds one run's set. A failure before commit() (bad
// input, gnuplot failing, a full disk, an exception, SIGINT or SIGTERM) removes the staging
// directory and every directory this run created: --out keeps its previous files byte for byte.
//
// Concurrent runs into one --out each stage privately and commit one at a time under the lock: the
// last to commit wins, whole. A reader that wants a consistent set takes the same lock (flock on
// --out, shared). Limit: a process killed (SIGKILL) inside commit() (a few renames long) can
// leave --out with part of a set; the staging directories of killed runs are removed by the next
// run into the same --out.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "examples/errors.h"
#include "examples/plots.h"

namespace tapegrad {

class CheckpointLock;

// Writing an output failed (a full disk, the file size limit of `ulimit -f`, an I/O error): exit 1,
// like a failing tool, with the reason in words; --out and the checkpoint are left as they were.
struct WriteError : ToolError {
  using ToolError::ToolError;
};

// "exited with status 3", "was killed by signal 9 (Killed)": a wait status in words.
std::string describe_wait_status(int status);

// "" when `path` is a whole PNG file (the PNG signature, then chunks up to IEND at the end);
// otherwise what is wrong: "missing", "empty (0 bytes)", "not a PNG", "cut short (N bytes, no
// IEND chunk)".
std::string png_problem(const std::filesystem::path& path);

class OutputTransaction {
 public:
  // Checks --out before any work (a directory or absent, not a dangling symbolic link or a loop,
  // its path within PATH_MAX with the staging names, none of the output names a directory,
  // writable), creates it and its missing parents, removes stale staging directories of runs that
  // died, and creates the staging directory. Throws UsageError naming --out and the reason. `names`
  // is every file name the program may write into --out (nadaraya_watson's by default; commit()
  // removes those this run did not write). Ignores SIGXFSZ for the process: a write past the file
  // size limit (ulimit -f) then fails with EFBIG, reported in words, instead of killing the run;
  // opens a closed descriptor 0, 1 or 2 on /dev/null, so that no output file takes its number.
  explicit OutputTransaction(const std::string& out_dir,
                             std::vector<std::string> names = output_names());
  ~OutputTransaction();  // not committed: removes the staging directory and created directories
  OutputTransaction(const OutputTransaction&) = delete;
  OutputTransaction& operator=(const OutputTransaction&) = delete;

  // Every file name the nadaraya_watson program may write into --out.
  static std::vector<std::string> output_names();
  const std::filesystem::path& out_dir() const { return out_dir_; }
  const std::filesystem::path& staging_dir() const { return staging_dir_; }

  // Writes `text` as staging_dir/name. Throws WriteError with the reason in words.
  void write(const std::string& name, const std::string& text);
  // Registers a file that gnuplot (or anyone) wrote into staging_dir/name.
  void add_written(const std::string& name);
  // A file staged elsewhere (the checkpoint's temporary, beside its target) to rename onto `target`
  // (a symbolic link: the file it names) at commit time, after every output.
  void add_rename(const std::filesystem::path& staged, const std::filesystem::path& target);

  // --resume and --save naming one checkpoint: locks it now, before it is read, until the commit
  // (io/checkpoint.h, CheckpointLock). A second such run waits (saying so on stdout), then reads
  // the first one's save: both runs' epochs count. Does nothing otherwise.
  void hold_checkpoint(const std::string& resume_path, const std::string& save_path);

  // Moves everything into place (see above). Throws WriteError (nothing changed) when a file cannot
  // be synced or a rename fails, UsageError when an output name became a directory meanwhile.
  void commit();

 private:
  void open(const std::string& out_flag);
  void create_staging_dir(const std::string& out_flag);
  void sync_staged() const;
  void move_into_place();
  void abandon();  // removes what this run created
  // A fatal signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) before the commit removes what abandon()
  // would (staged files, the checkpoint's temporary, created directories) and then ends the run as
  // the signal would; the commit's renames run with those signals blocked.
  void update_signal_cleanup();
  void disarm_signal_cleanup();

  std::vector<std::string> names_;
  std::filesystem::path out_dir_, staging_dir_;
  std::vector<std::filesystem::path> created_dirs_;  // deepest last
  std::vector<std::string> staged_names_;
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> renames_;
  std::shared_ptr<CheckpointLock> held_checkpoint_;  // hold_checkpoint's lock
  std::filesystem::path held_path_;
  struct SavedHandlers;
  std::unique_ptr<SavedHandlers> saved_handlers_;
  std::unique_ptr<std::vector<char>> cleanup_;  // the signal handler's list (outputs.cpp)
  bool committed_ = false;
};

// Is `program` an executable on PATH?
bool on_path(const std::string& program);
// Runs argv (no shell) in `dir` with stdin from /dev/null and SIGXFSZ at its default; returns its
// wait status (127: could not be started). Throws ToolError when the process cannot be created or
// waited for.
int run_program(const std::filesystem::path& dir, const std::vector<std::string>& argv);
// Runs gnuplot on `script` (already written into the transaction's staging directory) there, to
// draw `figures`. Returns false (with a warning on stderr naming `program`) when gnuplot is not
// installed; throws ToolError with the exit status in words when gnuplot fails, or when it exits 0
// but a figure is missing, empty or cut short (png_problem; with the free space when the disk is
// full).
bool run_gnuplot_script(OutputTransaction& outputs, const std::string& program,
                        const std::string& script, const std::vector<std::string>& figures);

// Writes plots.gp into the transaction's staging directory and runs it there (run_gnuplot_script)
// to draw figure_files().
bool draw_figures(OutputTransaction& outputs, const PlotData& plot_data);

}  // namespace tapegrad
