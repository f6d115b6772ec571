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
// A killed save leaves its "<path>.tmp.<pid>"; the next save of <path> removes every such file
// whose process no longer exists.
//
// Loading checks the form (magic, version, sizes, hash) and then the meaning, all before the
// model is touched: the header's fields have their types (dtype a string, tensors an array of
// {name: non-empty string, shape: array of unsigned integers}, meta an object), names are unique,
// every parameter and optimizer value is finite, and every name and shape matches the model and
// the optimizer (Optimizer::check_state: its own records, all of a parameter's or none). Any
// failure throws CheckpointError (one line naming the path and the problem) and leaves the model
// and optimizer exactly as they were.
#pragma once

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

// The first half of save_checkpoint: writes and fsyncs "<path>.tmp.<pid>" and returns its name;
// renaming it onto `path` (and fsyncing the directory) completes the save. The program stages its
// checkpoint this way so that it moves into place together with the other outputs.
template <class T>
std::string stage_checkpoint(const std::string& path, const NamedTensors<T>& params,
                             Optimizer<T>& optimizer, const nlohmann::json& meta);

// Parses and validates checkpoint bytes (`name` appears in error messages).
template <class T>
CheckpointContents<T> parse_checkpoint(const std::string& bytes, const std::string& name);

// Reads and validates a checkpoint file (a regular file of at most 16 GiB).
template <class T>
CheckpointContents<T> read_checkpoint(const std::string& path);

// Gives validated contents to params (same names, shapes and dtype required) and the optimizer's
// state; checks everything before changing anything. A record of another optimizer's state
// ("sgd.*" given to Adam) is refused, naming both.
template <class T>
void restore_checkpoint(const CheckpointContents<T>& contents, NamedTensors<T>& params,
                        Optimizer<T>& optimizer, const std::string& name);

// read_checkpoint then restore_checkpoint; returns meta. Throws CheckpointError naming the path
// and the problem.
template <class T>
nlohmann::json load_checkpoint(const std::string& path, NamedTensors<T>& params,
                               Optimizer<T>& optimizer);

}  // namespace tapegrad
