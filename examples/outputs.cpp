#include "examples/outputs.h"

#include "io/files.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "examples/options.h"
#include "io/checkpoint.h"

namespace fs = std::filesystem;

namespace tapegrad {

namespace {

const std::string kStagingPrefix = ".tapegrad-staging.";
const std::string kPrevious = "previous";  // staging_dir/previous: --out's files set aside

// A path for a message: whole up to 160 bytes, else its ends and its length.
std::string shown(const std::string& path) {
  if (path.size() <= 160) return path;
  return path.substr(0, 80) + "..." + path.substr(path.size() - 60) + " (" +
         std::to_string(path.size()) + " bytes)";
}

// "; the file system of DIR has N bytes free" when it has less than 1 MiB free, else "".
std::string free_space_note(const fs::path& dir) {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) != 0) return "";
  const unsigned long long free_bytes =
      static_cast<unsigned long long>(vfs.f_bavail) * static_cast<unsigned long long>(vfs.f_frsize);
  if (free_bytes >= (1u << 20)) return "";
  return "; the file system of " + shown(dir.string()) + " has " + std::to_string(free_bytes) +
         " bytes free";
}

// errno in words, with what caused it where the bare words would puzzle: the file size limit for
// EFBIG, a loop for ELOOP.
std::string reason(int err) {
  std::string why = std::strerror(err);
  rlimit limit{};
  if (err == EFBIG && ::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    why += " (the file size limit, ulimit -f, is " + std::to_string(limit.rlim_cur) + " bytes)";
  if (err == ELOOP) why += " (a loop of symbolic links)";
  return why;
}

// An exclusive flock on a directory, released (with the descriptor) at scope exit. On a file system
// without locks (ENOLCK, EOPNOTSUPP) the run goes on unlocked rather than not at all.
class DirectoryLock {
 public:
  explicit DirectoryLock(const fs::path& dir) {
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0)
      throw UsageError("cannot open " + shown(dir.string()) + " to lock it: " + reason(errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err == ENOLCK || err == EOPNOTSUPP || err == EINVAL) break;  // no locks here: go on
      ::close(fd_);
      throw UsageError("cannot lock " + shown(dir.string()) + ": " + reason(err));
    }
  }
  ~DirectoryLock() { ::close(fd_); }  // closing the descriptor releases the lock
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

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

void check_not_directory(const fs::path& out_dir, const std::string& out_flag,
                         const std::vector<std::string>& names) {
  for (const auto& name : names)
    if (is_directory_entry(out_dir / name))
      throw UsageError("--out " + shown(out_flag) + ": the output " +
                       shown((out_dir / name).string()) + " is a directory");
}

// The directories to create for --out (deepest last), after checking every part of its path: an
// existing part must be a directory; a symbolic link must lead somewhere; stat's other failures
// (a loop, a name too long, no permission) are refused in words.
std::vector<fs::path> missing_directories(const fs::path& out, const std::string& flag) {
  std::vector<fs::path> missing;
  for (fs::path p = out;; p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) break;
      throw UsageError("--out " + shown(flag) + ": " +
                       (p == out ? std::string("exists and is not a directory")
                                 : shown(p.string()) + " is not a directory"));
    }
    const int err = errno;
    if (err != ENOENT && err != ENOTDIR)
      throw UsageError("--out " + shown(flag) + ": " + reason(err));
    std::error_code ec;
    if (err == ENOENT && fs::is_symlink(p, ec))
      throw UsageError("--out " + shown(flag) + ": " + shown(p.string()) +
                       " is a symbolic link to " + shown(fs::read_symlink(p, ec).string()) +
                       ", which does not exist");
    if (err == ENOENT) missing.push_back(p);
    if (p == p.root_path() || p.parent_path() == p) break;
  }
  std::reverse(missing.begin(), missing.end());
  return missing;
}

// The longest path the transaction forms inside --out fits in PATH_MAX.
void check_path_length(const fs::path& out, const std::string& flag,
                       const std::vector<std::string>& names) {
  std::size_t longest = 0;
  for (const auto& name : names) longest = std::max(longest, name.size());
  // out/.tapegrad-staging.<pid>.XXXXXX/previous/<name>.tmp and its NUL
  const std::size_t needed = out.string().size() + 1 + kStagingPrefix.size() + 10 + 7 + 1 +
                             kPrevious.size() + 1 + longest + 4 + 1;
  if (needed > PATH_MAX)
    throw UsageError("--out " + shown(flag) +
                     ": the path is too long: the outputs' paths inside it "
                     "would pass the system's limit of " +
                     std::to_string(PATH_MAX) + " bytes (PATH_MAX)");
}

// fsync(2) of one file or directory; returns errno, 0 on success.
int sync_path(const fs::path& path, int flags) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | flags);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  return ::close(fd) == 0 ? rc : (rc ? rc : errno);
}

// The file a rename onto `target` must replace: the file a symbolic link names (as
// io/checkpoint.cpp stages beside it).
fs::path final_target(const fs::path& target) {
  return checkpoint_target(target.string());
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// What a fatal signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) removes before the process dies: the
// staged files (every output name, and the ".tmp" names of graph files), the checkpoint's
// temporary, the staging directory and the directories the run created, as entries "f<path>\0"
// (unlink) or "d<path>\0" (rmdir) in one buffer, so the handler needs only unlink, rmdir and raise
// (async-signal-safe). The buffer is swapped with the signals blocked.
const std::vector<char>* volatile g_cleanup = nullptr;
const int kFatalSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

extern "C" void remove_staging_and_die(int sig) {
  if (const std::vector<char>* entries = g_cleanup) {
    for (std::size_t i = 0; i < entries->size();) {
      const char* path = entries->data() + i + 1;
      if ((*entries)[i] == 'f')
        ::unlink(path);
      else
        ::rmdir(path);
      i += 2 + std::strlen(path);
    }
  }
  ::raise(sig);  // SA_RESETHAND: the default action now, which ends the process
}

// Blocks the fatal signals while in scope (the swap of the cleanup list, and the commit's renames:
// a signal arriving meanwhile is delivered when they are done).
class FatalSignalsBlocked {
 public:
  FatalSignalsBlocked() {
    sigset_t set;
    sigemptyset(&set);
    for (const int sig : kFatalSignals) sigaddset(&set, sig);
    ::sigprocmask(SIG_BLOCK, &set, &previous_);
  }
  ~FatalSignalsBlocked() { ::sigprocmask(SIG_SETMASK, &previous_, nullptr); }
  FatalSignalsBlocked(const FatalSignalsBlocked&) = delete;
  FatalSignalsBlocked& operator=(const FatalSignalsBlocked&) = delete;

 private:
  sigset_t previous_;
};

}  // namespace

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "stopped (wait status " + std::to_string(status) + ")";
}

std::string png_problem(const fs::path& path) {
  static const std::string signature("\x89PNG\r\n\x1a\n", 8);
  static const std::string iend("\0\0\0\0IEND\xae\x42\x60\x82", 12);  // length 0, type, CRC
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return "missing";
  if (st.st_size == 0) return "empty (0 bytes)";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string("unreadable: ") + std::strerror(errno);
  std::string head(8, '\0'), tail(12, '\0');
  const bool read_ok = ::pread(fd, head.data(), 8, 0) == 8 && st.st_size >= 8 + 12 &&
                       ::pread(fd, tail.data(), 12, st.st_size - 12) == 12;
  ::close(fd);
  if (head != signature)
    return "not a PNG (" + std::to_string(st.st_size) + " bytes, no PNG signature)";
  if (!read_ok || tail != iend)
    return "cut short (" + std::to_string(st.st_size) + " bytes, no IEND chunk at the end)";
  return "";
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

struct OutputTransaction::SavedHandlers {
  std::vector<std::pair<int, struct sigaction>> previous;  // restored by disarm_signal_cleanup
};

OutputTransaction::OutputTransaction(const std::string& out_flag, std::vector<std::string> names)
    : names_(std::move(names)) {
  try {
    open(out_flag);
    update_signal_cleanup();
  } catch (...) {
    abandon();
    throw;
  }
}

void OutputTransaction::update_signal_cleanup() {
  auto entries = std::make_unique<std::vector<char>>();
  const auto add = [&entries](char kind, const fs::path& path) {
    entries->push_back(kind);
    entries->insert(entries->end(), path.native().begin(), path.native().end());
    entries->push_back('\0');
  };
  for (const auto& name : names_) {
    add('f', staging_dir_ / name);
    add('f', staging_dir_ / (name + ".tmp"));  // write_graph's temporaries
  }
  for (const auto& r : renames_) add('f', r.first);
  add('d', staging_dir_);
  for (auto p = created_dirs_.rbegin(); p != created_dirs_.rend(); ++p) add('d', *p);
  FatalSignalsBlocked blocked;
  g_cleanup = entries.get();
  cleanup_ = std::move(entries);
  if (saved_handlers_) return;
  saved_handlers_ = std::make_unique<SavedHandlers>();
  for (const int sig : kFatalSignals) {
    struct sigaction previous {
    }, action{};
    if (::sigaction(sig, nullptr, &previous) != 0 || previous.sa_handler == SIG_IGN) continue;
    action.sa_handler = remove_staging_and_die;
    action.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (::sigaction(sig, &action, nullptr) == 0)
      saved_handlers_->previous.emplace_back(sig, previous);
  }
}

void OutputTransaction::disarm_signal_cleanup() {
  FatalSignalsBlocked blocked;
  if (g_cleanup == cleanup_.get()) g_cleanup = nullptr;
  if (saved_handlers_)
    for (const auto& [sig, previous] : saved_handlers_->previous)
      ::sigaction(sig, &previous, nullptr);
  saved_handlers_.reset();
}

void OutputTransaction::open(const std::string& out_flag) {
  ::signal(SIGXFSZ, SIG_IGN);  // writes past ulimit -f fail with EFBIG, reported in words
  // A closed stdin, stdout or stderr is opened on /dev/null, so that no output file (nor a tool's)
  // takes its number and receives the log.
  for (int fd = 0; fd <= 2; ++fd)
    if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) ::open("/dev/null", O_RDWR);
  std::error_code ec;
  fs::path out = fs::absolute(out_flag, ec).lexically_normal();
  if (ec)
    throw UsageError("--out " + shown(out_flag) +
                     ": cannot resolve it against the current "
                     "directory: " +
                     ec.message());
  if (out.filename().empty()) out = out.parent_path();
  if (out == out.root_path()) throw UsageError("--out " + out_flag + ": cannot be the root");
  out_dir_ = out;
  check_path_length(out, out_flag, names_);
  const std::vector<fs::path> missing = missing_directories(out, out_flag);
  check_not_directory(out, out_flag, names_);
  if (missing.empty() && ::access(out.c_str(), W_OK | X_OK) != 0)
    throw UsageError("--out " + shown(out_flag) + ": not writable: " + reason(errno));
  for (const auto& p : missing) {  // removed again (when still empty) if the run fails
    if (::mkdir(p.c_str(), 0777) == 0) {
      created_dirs_.push_back(p);
    } else if (errno != EEXIST || !fs::is_directory(p, ec)) {
      throw UsageError("--out " + shown(out_flag) + ": cannot create " + shown(p.string()) + ": " +
                       reason(errno));
    }
  }
  {
    DirectoryLock lock(out);  // a run that is committing is alive: its staging directory stays
    for (const auto& entry : fs::directory_iterator(out, ec))
      if (process_is_gone(pid_after_prefix(entry.path().filename().string(), kStagingPrefix)))
        fs::remove_all(entry.path(), ec);
  }
  create_staging_dir(out_flag);
}

void OutputTransaction::create_staging_dir(const std::string& out_flag) {
  const std::string tmpl =
      (out_dir_ / (kStagingPrefix + std::to_string(::getpid()) + ".XXXXXX")).string();
  std::string name = tmpl;
  if (!::mkdtemp(name.data()))
    throw UsageError("--out " + shown(out_flag) + ": cannot create a staging directory in " +
                     shown(out_dir_.string()) + ": " + reason(errno));
  staging_dir_ = name;
}

OutputTransaction::~OutputTransaction() {
  if (!committed_) abandon();
  disarm_signal_cleanup();
}

void OutputTransaction::abandon() {
  std::error_code ec;
  if (!staging_dir_.empty()) fs::remove_all(staging_dir_, ec);
  for (const auto& r : renames_) fs::remove(r.first, ec);
  for (auto p = created_dirs_.rbegin(); p != created_dirs_.rend(); ++p)
    ::rmdir(p->c_str());  // only when empty: a concurrent run may be staging there
}

void OutputTransaction::write(const std::string& name, const std::string& text) {
  const fs::path path = staging_dir_ / name;
  const int err = write_file(path.string(), text);
  if (err)
    throw WriteError("cannot write " + shown((out_dir_ / name).string()) + ": " + reason(err) +
                     free_space_note(out_dir_) + "; " + shown(out_dir_.string()) +
                     " was left as it was");
  add_written(name);
}

void OutputTransaction::add_written(const std::string& name) {
  staged_names_.push_back(name);
}

void OutputTransaction::add_rename(const fs::path& staged, const fs::path& target) {
  renames_.emplace_back(staged, final_target(target));
  update_signal_cleanup();
}

void OutputTransaction::hold_checkpoint(const std::string& resume_path,
                                        const std::string& save_path) {
  if (resume_path.empty() || save_path.empty() || !same_file(resume_path, save_path)) return;
  held_checkpoint_ = std::make_shared<CheckpointLock>(save_path, [&save_path] {
    std::cout << "waiting for checkpoint " << save_path
              << ": another run is resuming from it and saving it" << std::endl;
  });
  held_path_ = final_target(save_path);
}

void OutputTransaction::sync_staged() const {
  for (const auto& name : staged_names_)
    if (const int err = sync_path(staging_dir_ / name, 0))
      throw WriteError("cannot write " + shown((out_dir_ / name).string()) + ": " + reason(err) +
                       free_space_note(out_dir_) + "; " + shown(out_dir_.string()) +
                       " was left as it was");
}

void OutputTransaction::commit() {
  sync_staged();  // a full disk or an I/O error surfaces here, before anything moves
  // Every run takes the checkpoint's lock before --out's, so two runs never wait on each other.
  std::vector<std::unique_ptr<CheckpointLock>> locks;
  for (const auto& [staged, target] : renames_)
    if (!held_checkpoint_ || !same_file(target, held_path_))
      locks.push_back(std::make_unique<CheckpointLock>(target.string(), [&target = target] {
        std::cout << "waiting for checkpoint " << target.string() << ": another run is saving it"
                  << std::endl;
      }));
  DirectoryLock lock(out_dir_);
  check_not_directory(out_dir_, out_dir_.string(), names_);  // may have changed while we worked
  FatalSignalsBlocked blocked;  // a SIGINT now ends the run once the renames are done
  move_into_place();
  committed_ = true;
  sync_path(out_dir_, O_DIRECTORY);  // make the renames durable
  for (const auto& r : renames_) sync_path(r.second.parent_path(), O_DIRECTORY);
  std::error_code ec;
  fs::remove_all(staging_dir_, ec);  // with the previous outputs set aside in it
  held_checkpoint_.reset();
  disarm_signal_cleanup();
}

// Sets --out's previous outputs aside in staging_dir/previous, renames the staged files into
// --out, then the checkpoint; on a failure, undoes the renames done so far (the checkpoint, one
// file, is renamed last, so it never needs undoing) and throws WriteError.
void OutputTransaction::move_into_place() {
  const fs::path previous = staging_dir_ / kPrevious;
  std::vector<std::string> set_aside, placed;
  const auto fail = [&](const std::string& what, int err) {
    for (const auto& name : placed)
      ::rename((out_dir_ / name).c_str(), (staging_dir_ / name).c_str());
    for (const auto& name : set_aside)
      ::rename((previous / name).c_str(), (out_dir_ / name).c_str());
    throw WriteError(what + ": " + reason(err) + "; " + shown(out_dir_.string()) +
                     (renames_.empty() ? "" : " and the checkpoint") + " were left as they were");
  };
  if (::mkdir(previous.c_str(), 0700) != 0) fail("cannot create " + previous.string(), errno);
  for (const auto& name : names_) {
    if (::rename((out_dir_ / name).c_str(), (previous / name).c_str()) == 0)
      set_aside.push_back(name);
    else if (errno != ENOENT)
      fail("cannot move the previous " + name + " aside in " + shown(out_dir_.string()), errno);
  }
  for (const auto& name : staged_names_) {
    if (::rename((staging_dir_ / name).c_str(), (out_dir_ / name).c_str()) != 0)
      fail("cannot move " + name + " into " + shown(out_dir_.string()), errno);
    placed.push_back(name);
  }
  for (const auto& [staged, target] : renames_)
    if (::rename(staged.c_str(), target.c_str()) != 0)
      fail("cannot move the checkpoint " + shown(staged.string()) + " onto " +
               shown(target.string()),
           errno);
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
    ::signal(SIGXFSZ, SIG_DFL);  // the tools run as they would from a shell
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
  const std::string out = shown(outputs.out_dir().string());
  if (status != 0)
    throw ToolError("gnuplot " + describe_wait_status(status) + free_space_note(outputs.out_dir()) +
                    "; " + out + " was left as it was");
  for (const auto& f : figures) {
    const std::string problem = png_problem(outputs.staging_dir() / f);
    if (!problem.empty())
      throw ToolError("gnuplot exited with status 0 but " + f + " is " + problem +
                      free_space_note(outputs.out_dir()) + "; " + out + " was left as it was");
    outputs.add_written(f);
  }
  return true;
}

bool draw_figures(OutputTransaction& outputs, const PlotData& plot_data) {
  outputs.write("plots.gp", gnuplot_script(plot_data));
  return run_gnuplot_script(outputs, "nadaraya_watson", "plots.gp", figure_files(plot_data));
}

}  // namespace tapegrad
