#include "examples/options.h"

#include <cfloat>
#include <cmath>
#include <sstream>

#include <CLI/CLI.hpp>

#include "models/nadaraya_watson.h"

namespace tapegrad {

void add_flags(CLI::App& app, Options& options) {
  app.add_option("--train", options.train_path,
                 "training CSV with header x,y (default: the chapter's data)");
  app.add_option("--query", options.query_path,
                 "query CSV with header x (default: 0, 0.1, ..., 4.9 for the chapter's data, "
                 "50 points spanning the training inputs for --train)");
  app.add_option("--n-train", options.n_train,
                 "training points to generate when there is no --train")
      ->capture_default_str();
  app.add_option("--epochs", options.epochs, "training epochs (full-batch SGD steps)")
      ->capture_default_str();
  app.add_option("--lr", options.lr, "SGD learning rate")->capture_default_str();
  app.add_option("--w-init", options.w_init, "initial w (default: U(0,1) drawn with the seed)");
  app.add_option("--seed", options.seed_text, "random seed for the data and w_init, 0..2^64-1")
      ->capture_default_str();
  app.add_option("--kernel", options.kernel,
                 "nonparametric kernel: gaussian|boxcar|constant|epanechikov")
      ->capture_default_str();
  app.add_option("--sigma", options.sigma, "kernel width")->capture_default_str();
  app.add_option("--dtype", options.dtype, "float32|float64")->capture_default_str();
  app.add_option("--threads", options.threads, "OpenMP threads, 0..256 (0: default)")
      ->capture_default_str();
  app.add_option("--out", options.out_dir, "output directory")->capture_default_str();
  app.add_option("--impl", options.impl,
                 "parametric model's ops: composed|fused (default: composed, or fused when the "
                 "composed intermediates exceed --memory-budget)");
  app.add_option("--memory-budget", options.memory_budget_mib,
                 "MiB the composed ops' (n, n - 1) intermediates may take")
      ->capture_default_str();
  app.add_flag("--no-plots", options.no_plots, "skip the figures");
  app.add_option("--save", options.save_path,
                 "write w and the optimizer state to this checkpoint after training");
  app.add_option("--resume", options.resume_path,
                 "start from this checkpoint (--epochs counts the new epochs)");
  app.add_flag(
      "--graph", options.graph,
      "also write graph.dot (and graph.png, with Graphviz's dot) of one training step of the "
      "composed model on the first 20 training points: the tape that backward walks");
  app.add_flag("--keep-self", options.keep_self,
               "train with each example's own pair among the keys (the chapter leaves it out)");
}

double dtype_max(const std::string& dtype) {
  return dtype == "float32" ? double(FLT_MAX) : DBL_MAX;
}

namespace {

std::string str(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// A decimal integer in [0, 2^64 - 1], nothing else (no sign, no spaces, no hex).
std::uint64_t parse_seed(const std::string& text) {
  const std::string why = "--seed must be an integer from 0 to 18446744073709551615, got '";
  if (text.empty() || text.size() > 20) throw UsageError(why + text.substr(0, 30) + "'");
  std::uint64_t seed = 0;
  for (char c : text) {
    if (c < '0' || c > '9') throw UsageError(why + text + "'");
    const std::uint64_t digit = std::uint64_t(c - '0');
    if (seed > (UINT64_MAX - digit) / 10) throw UsageError(why + text + "'");
    seed = seed * 10 + digit;
  }
  return seed;
}

void check_range(const char* flag, long value, long lo, long hi) {
  if (value < lo || value > hi)
    throw UsageError(std::string(flag) + " must be from " + std::to_string(lo) + " to " +
                     std::to_string(hi) + ", got " + std::to_string(value));
}

// A finite value that the dtype holds (its magnitude at most the dtype's largest finite value).
void check_representable(const char* flag, double value, const std::string& dtype) {
  if (!std::isfinite(value) || std::abs(value) > dtype_max(dtype))
    throw UsageError(std::string(flag) + " " + str(value) + " is not a finite " + dtype +
                     " number (largest " + str(dtype_max(dtype)) + ")");
}

void check_names(const Options& options) {
  kernel_from_string(options.kernel);  // throws std::invalid_argument naming the unknown kernel
  if (options.dtype != "float32" && options.dtype != "float64")
    throw UsageError("--dtype must be float32 or float64, got '" + options.dtype + "'");
  if (!options.impl.empty() && options.impl != "fused" && options.impl != "composed")
    throw UsageError("--impl must be fused or composed, got '" + options.impl + "'");
}

// sigma divides every distance, so sigma and 1 / sigma must both be finite and nonzero in the
// dtype: --sigma 1e-40 is a float32 subnormal whose reciprocal overflows.
void check_sigma(double sigma, const std::string& dtype) {
  check_representable("--sigma", sigma, dtype);
  const double in_dtype = dtype == "float32" ? double(float(sigma)) : sigma;
  if (!(sigma > 0)) throw UsageError("--sigma must be positive, got " + str(sigma));
  if (!(in_dtype > 0) || !(1.0 / in_dtype <= dtype_max(dtype)))
    throw UsageError("--sigma " + str(sigma) + " is too small for " + dtype +
                     ": 1 / sigma overflows (smallest " + str(1.0 / dtype_max(dtype)) + ")");
}

}  // namespace

void check_flags(Options& options) {
  check_names(options);
  options.seed = parse_seed(options.seed_text);
  check_range("--epochs", options.epochs, 0, limits::kMaxEpochs);
  check_range("--n-train", options.n_train, 2, limits::kMaxTrainPoints);
  check_range("--threads", options.threads, 0, limits::kMaxThreads);
  check_range("--memory-budget", options.memory_budget_mib, 1, limits::kMaxMemoryBudgetMiB);
  check_representable("--lr", options.lr, options.dtype);
  if (options.lr < 0) throw UsageError("--lr must be >= 0, got " + str(options.lr));
  if (options.w_init) check_representable("--w-init", *options.w_init, options.dtype);
  check_sigma(options.sigma, options.dtype);
  if (options.out_dir.empty()) throw UsageError("--out must name a directory");
}

}  // namespace tapegrad
