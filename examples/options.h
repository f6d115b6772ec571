// The nadaraya_watson program's flags: their values, their bounds, and the checks that run before
// any file is read.
//
// Every bound is stated here once; the README's "When something goes wrong" repeats them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "examples/errors.h"

namespace CLI {
class App;
}

namespace tapegrad {

// The bounds of the resource flags and of the input files.
namespace limits {
inline constexpr int kMaxThreads = 256;               // --threads 0..256 (0: OpenMP's default)
inline constexpr long kMaxTrainPoints = 1000000;      // --n-train and training rows of --train
inline constexpr long kMaxQueries = 1000000;          // query rows of --query
inline constexpr long kMaxEpochs = 1000000;           // --epochs, and epochs done + --epochs
inline constexpr double kMaxAttentionEntries = 1e7;   // n_query * n_train (two CSVs, six matrices)
inline constexpr long kMaxMemoryBudgetMiB = 1 << 20;  // --memory-budget 1..1048576 MiB
inline constexpr std::size_t kMaxLineBytes = 4096;    // one CSV line
inline constexpr std::size_t kMaxFileBytes = std::size_t(256) << 20;  // one CSV file, 256 MiB
inline constexpr std::size_t kMaxDims = 64;        // d: input coordinates x1..xd of --train
inline constexpr std::int64_t kMaxClasses = 1000;  // --task classification: labels 0..999
// --resume: w and the optimizer's state for d <= 64 take a few KiB; a larger file is not ours.
inline constexpr std::size_t kMaxCheckpointBytes = std::size_t(1) << 20;
}  // namespace limits

struct Options {
  std::string train_path, query_path;  // CSV inputs; empty: the chapter's data and queries
  std::string out_dir = "out";
  std::string kernel = "gaussian", dtype = "float32";
  std::string impl;  // "fused", "composed", or empty: composed unless over --memory-budget
  std::string save_path, resume_path;  // checkpoints
  std::string dataset;  // chapter|chapter2d|surface|moons; empty: chapter (only without --train)
  std::string widths = "shared";    // shared|per-coordinate: w of shape (1,) or (d,)
  std::string task = "regression";  // regression|classification
  std::string loss;  // squared|cross-entropy; empty: squared (regression), cross-entropy (classes)
  long epochs = 5;
  long n_train = 50;  // size of the generated chapter data
  double lr = 0.5, sigma = 1.0;
  std::optional<double> w_init;  // empty: U(0, 1) drawn with the seed
  std::string seed_text = "0";   // parsed by check_flags into seed (CLI11 would wrap -1)
  std::uint64_t seed = 0;
  int threads = 0;  // 0: OpenMP's default
  long memory_budget_mib = 1024;
  bool no_plots = false, keep_self = false;
  bool graph = false;  // write graph.dot (and graph.png) of one composed training step
  // Epoch lines: 0 chooses from --epochs (every epoch up to 40, else about 40 lines); N prints
  // every N-th. The first and the last epoch always print; quiet prints the last alone and no
  // progress line.
  long log_every = 0;
  bool quiet = false;
};

// The data set to generate ("chapter" when --dataset is not given) and the loss to train with
// (--loss, or the task's default). Valid after check_flags.
std::string dataset_name(const Options& options);
std::string loss_name(const Options& options);

// Declares every flag of `options` on `app`, with its help text and default.
void add_flags(CLI::App& app, Options& options);

// Checks every flag value against its bound and the chosen dtype (values must be finite and
// representable; sigma's reciprocal too), and parses the seed. Throws UsageError naming the flag.
void check_flags(Options& options);

// The largest finite value of the dtype named "float32" or "float64".
double dtype_max(const std::string& dtype);

}  // namespace tapegrad
