// Checkpoints: model parameters and optimizer state in one file that is never torn.
//
// Format (version 1), all in one file:
//   line 1   "tapegrad-checkpoint 1"        magic and format version
//   line 2   N                              byte length of the JSON header that follows
//   header   {"dtype": "float64",
//             "tensors": [{"name": "w", "shape": [1]}, {"name": "sgd.momentum_buffer.0", ...}],
//                                           parameters, then the optimizer's state records
//                                           (optim/optimizer.h: "sgd.momentum_buffer.<i>",
//                                           "adam.exp_avg.<i>", ...)
//             "meta": {...}}                anything the caller wants back (epochs done, lr)
//   payload  each tensor's elements in header order, row-major, little-endian float32 / float64
//   trailer  "\nfnv1a64 XXXXXXXXXXXXXXXX\n"  FNV-1a 64 hash of every byte before the trailer
//
// Saving writes "<path>.tmp.<pid>", flushes and fsyncs it, renames it over <path> and fsyncs the
// directory: a crash or a kill at any moment leaves either the old checkpoint or the new one.
// When <path> is a symbolic link, the file it points to is the one replaced (the temporary sits
// beside it, on its file system). A file name too long for the suffix is cut so that the
// temporary's name stays within NAME_MAX. A killed save leaves its temporary; the next save of
// <path> removes every such file whose process no longer exists. A save that cannot write (a full
// disk, the file size limit of `ulimit -f` with SIGXFSZ ignored, an I/O error) throws
// CheckpointWriteError in words and leaves the old checkpoint as it was.
//
// Loading checks the form (magic, version, sizes, hash) and then the meaning, all before the
// model is touched: the header's fields have their types (dtype a string, tensors an array of
// {name: non-empty string, shape: array of unsigned integers}, meta an object), names are unique,
// every parameter and optimizer value is finite, and every name and shape matches the model and
// the optimizer (Optimizer::check_state: its own records, all of a parameter's or none). Any
// failure throws CheckpointError (one line naming the path and the problem) and leaves the model
// and optimizer exactly as they were.
#pragma once

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/tensor.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"  // the optimizer most callers checkpoint

namespace tapegrad {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Saving failed for want of room or an I/O error (not a bad file): "checkpoint PATH: cannot write
// PATH.tmp.<pid>: No space left on device". The old checkpoint is unchanged.
class CheckpointWriteError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};

// The largest file read_checkpoint reads by default: anything larger is not a checkpoint.
inline constexpr std::size_t kMaxCheckpointFileBytes = std::size_t(1) << 34;  // 16 GiB

inline constexpr int kCheckpointVersion = 1;

template <class T>
using NamedTensors = std::vector<std::pair<std::string, Tensor<T>>>;

// What a checkpoint holds, read and validated but not yet given to a model.
template <class T>
struct CheckpointContents {
  nlohmann::json meta = nlohmann::json::object();
  std::vector<std::pair<std::string, xt::xarray<T>>> tensors;  // in file order
};

// Saves the named parameters' values, the optimizer's state (any Optimizer: SGD's momentum
// buffers, Adam's moments and step counts), and `meta`. Parameter names must not start with an
// optimizer's state prefix ("sgd.", "adam.", "adamw."): CheckpointError.
template <class T>
void save_checkpoint(const std::string& path, const NamedTensors<T>& params,
                     Optimizer<T>& optimizer,
                     const nlohmann::json& meta = nlohmann::json::object());

// The file a save of `path` replaces: `path` itself, or, when it is a symbolic link (even to a
// file not yet created), the file its chain of links names. The temporary is written beside it.
std::string checkpoint_target(const std::string& path);

// The first half of save_checkpoint: writes and fsyncs "<path>.tmp.<pid>" and returns its name;
// renaming it onto `path` (and fsyncing the directory) completes the save. The program stages its
// checkpoint this way so that it moves into place together with the other outputs.
template <class T>
std::string stage_checkpoint(const std::string& path, const NamedTensors<T>& params,
                             Optimizer<T>& optimizer, const nlohmann::json& meta);

// Parses and validates checkpoint bytes (`name` appears in error messages).
template <class T>
CheckpointContents<T> parse_checkpoint(const std::string& bytes, const std::string& name);

// Reads and validates a checkpoint file. What is not a regular file (a directory, a FIFO, a
// device) is refused before it is opened; then the magic bytes are checked, then the size against
// max_bytes (what a checkpoint of the caller's model can be), all before the file is read whole:
// a 2 GiB file is refused in microseconds and never held in memory.
template <class T>
CheckpointContents<T> read_checkpoint(const std::string& path,
                                      std::size_t max_bytes = kMaxCheckpointFileBytes);

// An exclusive advisory lock (flock) on the checkpoint file at `path`, held until destruction, so
// that a run reading a checkpoint and saving it again excludes every other such run from its read
// to its save: concurrent runs take turns and each continues from the other's save. A save
// replaces the file by rename, so once the lock is granted the path is checked to still name the
// locked file, and the lock is taken again on the new file when a save replaced it meanwhile.
// `waiting` is called once if another process holds the lock. A path that does not exist is not
// locked (held() is false); on a file system without locks (ENOLCK, EOPNOTSUPP) the file is held
// open unlocked. Throws CheckpointError when the path is not a regular file or cannot
// be opened.
class CheckpointLock {
 public:
  explicit CheckpointLock(const std::string& path, const std::function<void()>& waiting = {});
  ~CheckpointLock();
  CheckpointLock(CheckpointLock&& other) noexcept;
  CheckpointLock(const CheckpointLock&) = delete;
  CheckpointLock& operator=(const CheckpointLock&) = delete;
  CheckpointLock& operator=(CheckpointLock&&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Gives validated contents to params (same names, shapes and dtype required) and the optimizer's
// state; checks everything before changing anything. A record of another optimizer's state
// ("sgd.*" given to Adam) is refused, naming both.
template <class T>
void restore_checkpoint(const CheckpointContents<T>& contents, const NamedTensors<T>& params,
                        Optimizer<T>& optimizer, const std::string& name);

// read_checkpoint then restore_checkpoint; returns meta. Throws CheckpointError naming the path
// and the problem.
template <class T>
nlohmann::json load_checkpoint(const std::string& path, const NamedTensors<T>& params,
                               Optimizer<T>& optimizer);

// Parameters alone, for a model saved or loaded without its optimizer: save writes no optimizer
// state; load restores the parameters (checked as above) and ignores any optimizer state the file
// holds. T is given when the parameters are a braced list: save_checkpoint<double>(path, {{...}}).
template <class T>
void save_checkpoint(const std::string& path, const NamedTensors<T>& params,
                     const nlohmann::json& meta = nlohmann::json::object());
template <class T>
nlohmann::json load_checkpoint(const std::string& path, const NamedTensors<T>& params);

}  // namespace tapegrad
