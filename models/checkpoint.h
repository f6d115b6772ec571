// Checkpoints: model parameters and SGD state in one file that is never torn.
//
// Format (version 1), all in one file:
//   line 1   "tapegrad-checkpoint 1"                  magic and format version
//   line 2   N                                        byte length of the JSON header that follows
//   header   {"dtype": "float64",
//             "tensors": [{"name": "w", "shape": [1]}, {"name": "sgd.momentum_buffer.0", ...}],
//             "meta": {...}}                          anything the caller wants back (epochs done,
//             lr)
//   payload  each tensor's elements in header order, row-major, little-endian float32 / float64
//   trailer  "\nfnv1a64 XXXXXXXXXXXXXXXX\n"           FNV-1a 64 hash of every byte before the
//   trailer
//
// Saving writes "<path>.tmp.<pid>", flushes and fsyncs it, renames it over <path> and fsyncs the
// directory: a crash or a kill at any moment leaves either the old checkpoint or the new one.
// Loading reads and checks everything (magic, version, header, sizes, hash, dtype, every name and
// shape against the model) before it changes anything; any mismatch throws CheckpointError and the
// model and optimizer are left exactly as they were.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/tensor.h"
#include "models/sgd.h"

namespace tapegrad {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr int kCheckpointVersion = 1;

template <class T>
using NamedTensors = std::vector<std::pair<std::string, Tensor<T>>>;

// Saves the named parameters' values, the optimizer's momentum buffers, and `meta`.
template <class T>
void save_checkpoint(const std::string& path, const NamedTensors<T>& params, SGD<T>& optimizer,
                     const nlohmann::json& meta = nlohmann::json::object());

// Restores what save_checkpoint wrote into params (same names, shapes and dtype required) and the
// optimizer's momentum buffers; returns meta. Throws CheckpointError naming the path and the
// problem.
template <class T>
nlohmann::json load_checkpoint(const std::string& path, NamedTensors<T>& params, SGD<T>& optimizer);

}  // namespace tapegrad
