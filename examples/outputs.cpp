#include "examples/outputs.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "examples/options.h"

namespace fs = std::filesystem;

namespace tapegrad {

namespace {

// An exclusive flock on a directory, released (with the descriptor) at scope exit.
class DirectoryLock {
 public:
  explicit DirectoryLock(const fs::path& dir) {
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0)
      throw UsageError("cannot open " + dir.string() + " to lock it: " + std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR)
        throw UsageError("cannot lock " + dir.string() + ": " + std::strerror(errno));
  }
  ~DirectoryLock() { ::close(fd_); }  // closing the descriptor releases the lock
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

bool is_directory_entry(const fs::path& p) {
  std::error_code ec;
  return fs::symlink_status(p, ec).type() == fs::file_type::directory;
}

// The pid in "<prefix><pid>.<anything>", or 0 when the name does not have that form.
pid_t pid_after_prefix(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return 0;
  long pid = 0;
  std::size_t i = prefix.size();
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && pid < 1 << 30; ++i)
    pid = pid * 10 + (name[i] - '0');
  return i < name.size() && name[i] == '.' ? static_cast<pid_t>(pid) : 0;
}

bool process_is_gone(pid_t pid) {
  return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
}

void check_not_directory(const fs::path& out_dir, const std::string& out_flag,
                         const std::vector<std::string>& names) {
  for (const auto& name : names)
    if (is_directory_entry(out_dir / name))
      throw UsageError("--out " + out_flag + ": the output " + (out_dir / name).string() +
                       " is a directory");
}

}  // namespace

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "stopped (wait status " + std::to_string(status) + ")";
}

std::vector<std::string> OutputTransaction::output_names() {
  std::vector<std::string> names = {"predictions.csv",
                                    "attention_nonparametric.csv",
                                    "attention_parametric.csv",
                                    "probabilities_nonparametric.csv",
                                    "probabilities_parametric.csv",
                                    "training.json",
                                    "plots.gp",
                                    "graph.dot",
                                    "graph.png"};
  for (const auto& f : all_figure_files()) names.push_back(f);
  return names;
}

OutputTransaction::OutputTransaction(const std::string& out_flag, std::vector<std::string> names)
    : names_(std::move(names)) {
  try {
    open(out_flag);
  } catch (...) {
    abandon();
    throw;
  }
}

void OutputTransaction::open(const std::string& out_flag) {
  fs::path out = fs::absolute(out_flag).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  if (out == out.root_path()) throw UsageError("--out " + out_flag + ": cannot be the root");
  out_dir_ = out;
  parent_ = out.parent_path();
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw UsageError("--out " + out_flag + ": exists and is not a directory");
  check_not_directory(out, out_flag, names_);
  if (fs::exists(out, ec) && ::access(out.c_str(), W_OK | X_OK) != 0)
    throw UsageError("--out " + out_flag + ": not writable: " + std::strerror(errno));
  // Missing parents are created now (the staging directory lives there) and removed on failure.
  for (fs::path p = parent_; !fs::exists(p, ec); p = p.parent_path()) created_parents_.push_back(p);
  std::reverse(created_parents_.begin(), created_parents_.end());
  for (const auto& p : created_parents_)
    if (!fs::create_directory(p, ec) && !fs::is_directory(p))
      throw UsageError("--out " + out_flag + ": cannot create " + p.string() + ": " + ec.message());
  if (::access(parent_.c_str(), W_OK | X_OK) != 0)
    throw UsageError("--out " + out_flag + ": cannot write in " + parent_.string() + ": " +
                     std::strerror(errno));
  const std::string prefix = "." + out.filename().string() + ".staging.";
  {
    DirectoryLock lock(parent_);  // a run that is committing is alive: its staging dir stays
    for (const auto& entry : fs::directory_iterator(parent_, ec))
      if (process_is_gone(pid_after_prefix(entry.path().filename().string(), prefix)))
        fs::remove_all(entry.path(), ec);
  }
  std::string tmpl = (parent_ / (prefix + std::to_string(::getpid()) + ".XXXXXX")).string();
  if (!::mkdtemp(tmpl.data()))
    throw UsageError("--out " + out_flag + ": cannot create a staging directory in " +
                     parent_.string() + ": " + std::strerror(errno));
  staging_dir_ = tmpl;
}

OutputTransaction::~OutputTransaction() {
  if (!committed_) abandon();
}

void OutputTransaction::abandon() {
  std::error_code ec;
  if (!staging_dir_.empty()) fs::remove_all(staging_dir_, ec);
  for (const auto& r : renames_) fs::remove(r.first, ec);
  for (auto p = created_parents_.rbegin(); p != created_parents_.rend(); ++p) fs::remove(*p, ec);
}

void OutputTransaction::write(const std::string& name, const std::string& text) {
  const fs::path path = staging_dir_ / name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.flush();
  if (!f) throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
  add_written(name);
}

void OutputTransaction::add_written(const std::string& name) {
  staged_names_.push_back(name);
}

void OutputTransaction::add_rename(const fs::path& staged, const fs::path& target) {
  renames_.emplace_back(staged, target);
}

void OutputTransaction::commit() {
  DirectoryLock lock(parent_);
  check_not_directory(out_dir_, out_dir_.string(), names_);  // may have changed while we worked
  std::error_code ec;
  if (!fs::is_directory(out_dir_) && !fs::create_directory(out_dir_, ec))
    throw UsageError("--out " + out_dir_.string() + ": cannot create: " + ec.message());
  for (const auto& [staged, target] : renames_)
    if (std::rename(staged.c_str(), target.c_str()) != 0)
      throw UsageError("cannot move " + staged.string() + " to " + target.string() + ": " +
                       std::strerror(errno));
  for (const auto& name : staged_names_)
    if (std::rename((staging_dir_ / name).c_str(), (out_dir_ / name).c_str()) != 0)
      throw std::runtime_error("cannot move " + name + " into " + out_dir_.string() + ": " +
                               std::strerror(errno));
  for (const auto& name : names_)  // an earlier run's outputs that this run did not make
    if (std::find(staged_names_.begin(), staged_names_.end(), name) == staged_names_.end())
      fs::remove(out_dir_ / name, ec);
  for (const fs::path& dir : {out_dir_, parent_}) {  // make the renames durable
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) ::fsync(fd), ::close(fd);
  }
  fs::remove_all(staging_dir_, ec);
  committed_ = true;
}

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    const std::size_t colon = std::min(dirs.find(':', start), dirs.size());
    const std::string dir = dirs.substr(start, colon - start);
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / program;
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return true;
    start = colon + 1;
  }
  return false;
}

int run_program(const fs::path& dir, const std::vector<std::string>& argv) {
  const pid_t pid = ::fork();
  if (pid < 0) throw ToolError("cannot start " + argv[0] + ": " + std::strerror(errno));
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (::chdir(dir.c_str()) == 0) ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw ToolError("waiting for " + argv[0] + ": " + std::strerror(errno));
  return status;
}

bool run_gnuplot_script(OutputTransaction& outputs, const std::string& program,
                        const std::string& script, const std::vector<std::string>& figures) {
  if (!on_path("gnuplot")) {
    std::cerr << program
              << ": warning: gnuplot not found, figures skipped (apt-get install gnuplot-nox); the "
                 "script is "
              << script << " in " << outputs.out_dir().string() << "\n";
    return false;
  }
  const int status = run_program(outputs.staging_dir(), {"gnuplot", script});
  if (status != 0)
    throw ToolError("gnuplot " + describe_wait_status(status) + "; " + outputs.out_dir().string() +
                    " was left as it was");
  for (const auto& f : figures) {
    if (!fs::is_regular_file(outputs.staging_dir() / f))
      throw ToolError("gnuplot exited with status 0 but did not draw " + f + "; " +
                      outputs.out_dir().string() + " was left as it was");
    outputs.add_written(f);
  }
  return true;
}

bool draw_figures(OutputTransaction& outputs, const PlotData& plot_data) {
  outputs.write("plots.gp", gnuplot_script(plot_data));
  return run_gnuplot_script(outputs, "nadaraya_watson", "plots.gp", figure_files(plot_data));
}

}  // namespace tapegrad
