#include "examples/options.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include <CLI/CLI.hpp>

#include "models/nadaraya_watson.h"

namespace tapegrad {

namespace {

// "--epochs must be an integer from 0 to 1000000, got '0x10'": one wording for every integer flag,
// the value quoted as typed.
std::string integer_message(const std::string& flag, long lo, long hi, const std::string& text) {
  return flag + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
         ", got '" + text.substr(0, 40) + (text.size() > 40 ? "...'" : "'");
}

// A decimal integer in [lo, hi]: an optional '-', then digits (no '+', spaces, hex, octal or
// exponent, as --seed); anything else, and values past the bounds however long, throws
// CLI::ValidationError quoting the text.
long parse_integer(const std::string& flag, const std::string& text, long lo, long hi) {
  const bool negative = !text.empty() && text[0] == '-';
  const std::string digits = text.substr(negative ? 1 : 0);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
    throw CLI::ValidationError(integer_message(flag, lo, hi, text));
  const std::size_t first = std::min(digits.find_first_not_of('0'), digits.size() - 1);
  if (digits.size() - first > 18)  // beyond every bound, and beyond long
    throw CLI::ValidationError(integer_message(flag, lo, hi, text));
  const long magnitude = std::stol(digits.substr(first));
  const long value = negative ? -magnitude : magnitude;
  if (value < lo || value > hi) throw CLI::ValidationError(integer_message(flag, lo, hi, text));
  return value;
}

// A decimal number: digits with an optional point and exponent, or inf / nan (refused later by
// their checks, with their words); no hexadecimal ("0x10" would be 16), no spaces.
double parse_number(const std::string& flag, const std::string& text) {
  const std::string why = flag + " must be a decimal number, got '" + text.substr(0, 40) + "'";
  if (text.empty() || text.find_first_of("xXpP \t\n") != std::string::npos)
    throw CLI::ValidationError(why);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) throw CLI::ValidationError(why);
  return value;
}

// An integer flag read as text and parsed by parse_integer when the command line is parsed.
template <class Int>
void add_integer(CLI::App& app, const std::string& flag, Int& value, long lo, long hi,
                 const std::string& help) {
  app.add_option_function<std::string>(
         flag,
         [&value, flag, lo, hi](const std::string& text) {
           value = static_cast<Int>(parse_integer(flag, text, lo, hi));
         },
         help)
      ->type_name("INT")
      ->default_str(std::to_string(value));
}

// A number flag read as text and parsed by parse_number.
template <class Number>
void add_number(CLI::App& app, const std::string& flag, Number& value, const std::string& help,
                const std::string& default_text) {
  app.add_option_function<std::string>(
         flag, [&value, flag](const std::string& text) { value = parse_number(flag, text); }, help)
      ->type_name("FLOAT")
      ->default_str(default_text);
}

// An empty value is refused, never taken for the default: `--save "$CK"` with CK unset must not
// run without saving, nor `--train "$F"` train on the generated data.
void refuse_empty_values(CLI::App& app) {
  const CLI::Validator non_empty(
      [](std::string& value) {
        return value.empty()
                   ? std::string("the value is empty (leave the flag out for its default)")
                   : std::string();
      },
      "", "non-empty");
  for (CLI::Option* option : app.get_options())
    if (option->get_type_size() != 0) option->check(non_empty);
}

// --log-every and --quiet: how much of a long run's training prints.
void add_log_flags(CLI::App& app, Options& options) {
  add_integer(app, "--log-every", options.log_every, 1, limits::kMaxEpochs,
              "print every N-th epoch's line, 1.." + std::to_string(limits::kMaxEpochs) +
                  " (default: every epoch up to 40 epochs, else about 40 lines; the first and the "
                  "last epoch always print)");
  CLI::Option* every = app.get_option("--log-every");
  app.add_flag("--quiet", options.quiet,
               "print only the last epoch's line, and no progress line on a terminal")
      ->excludes(every);
}

}  // namespace

void add_flags(CLI::App& app, Options& options) {
  app.add_option("--train", options.train_path,
                 "training CSV with header x,y or x1,...,xd,y (default: --dataset)");
  app.add_option("--query", options.query_path,
                 "query CSV with header x or x1,...,xd (default: 0, 0.1, ..., 4.9 for the "
                 "chapter's data, a 20 x 20 grid for the 2-D data sets; for --train, 50 points "
                 "spanning the training inputs when d = 1, the training inputs when d >= 2)");
  app.add_option("--dataset", options.dataset,
                 "data to generate without --train: chapter|chapter2d|surface|moons (default "
                 "chapter; moons needs --task classification)");
  app.add_option("--task", options.task, "regression|classification (y holds labels 0..C-1)")
      ->capture_default_str();
  app.add_option("--widths", options.widths,
                 "parametric widths: shared (one w) or per-coordinate (one w per input coordinate)")
      ->capture_default_str();
  app.add_option("--loss", options.loss,
                 "training loss: squared|cross-entropy (default: squared for regression, "
                 "cross-entropy for classification)");
  add_integer(app, "--n-train", options.n_train, 2, limits::kMaxTrainPoints,
              "training points to generate when there is no --train");
  add_integer(app, "--epochs", options.epochs, 0, limits::kMaxEpochs,
              "training epochs (full-batch SGD steps)");
  add_number(app, "--lr", options.lr, "SGD learning rate", "0.5");
  add_number(app, "--w-init", options.w_init, "initial w (default: U(0,1) drawn with the seed)",
             "");
  app.add_option("--seed", options.seed_text, "random seed for the data and w_init, 0..2^64-1")
      ->capture_default_str();
  app.add_option("--kernel", options.kernel,
                 "nonparametric kernel: gaussian|boxcar|constant|epanechikov")
      ->capture_default_str();
  add_number(app, "--sigma", options.sigma, "kernel width", "1");
  app.add_option("--dtype", options.dtype, "float32|float64")->capture_default_str();
  add_integer(app, "--threads", options.threads, 0, limits::kMaxThreads,
              "OpenMP threads, 0..256 (0: default)");
  app.add_option("--out", options.out_dir, "output directory")->capture_default_str();
  app.add_option("--impl", options.impl,
                 "parametric model's ops: composed|fused (default: composed, or fused when the "
                 "composed intermediates exceed --memory-budget)");
  add_integer(app, "--memory-budget", options.memory_budget_mib, 1, limits::kMaxMemoryBudgetMiB,
              "MiB the composed ops' (n, n - 1) intermediates may take");
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
  add_log_flags(app, options);
  refuse_empty_values(app);
}

std::string dataset_name(const Options& options) {
  return options.dataset.empty() ? "chapter" : options.dataset;
}

std::string loss_name(const Options& options) {
  if (!options.loss.empty()) return options.loss;
  return options.task == "classification" ? "cross-entropy" : "squared";
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
    throw UsageError(integer_message(flag, lo, hi, std::to_string(value)));
}

// A finite value that the dtype holds (its magnitude at most the dtype's largest finite value).
void check_representable(const char* flag, double value, const std::string& dtype) {
  if (!std::isfinite(value) || std::abs(value) > dtype_max(dtype))
    throw UsageError(std::string(flag) + " " + str(value) + " is not a finite " + dtype +
                     " number (largest " + str(dtype_max(dtype)) + ")");
}

// The data set, task and loss flags agree with each other and with --train.
void check_task(const Options& options) {
  if (options.task != "regression" && options.task != "classification")
    throw UsageError("--task must be regression or classification, got '" + options.task + "'");
  if (options.widths != "shared" && options.widths != "per-coordinate")
    throw UsageError("--widths must be shared or per-coordinate, got '" + options.widths + "'");
  if (!options.loss.empty() && options.loss != "squared" && options.loss != "cross-entropy")
    throw UsageError("--loss must be squared or cross-entropy, got '" + options.loss + "'");
  const bool classification = options.task == "classification";
  if (options.loss == "cross-entropy" && !classification)
    throw UsageError("--loss cross-entropy needs --task classification");
  const std::string& set = options.dataset;
  if (!set.empty() && set != "chapter" && set != "chapter2d" && set != "surface" && set != "moons")
    throw UsageError("--dataset must be chapter, chapter2d, surface or moons, got '" + set + "'");
  if (!set.empty() && !options.train_path.empty())
    throw UsageError("--dataset " + set + " cannot be combined with --train (the data come from " +
                     options.train_path + ")");
  if (!options.train_path.empty()) return;
  if (dataset_name(options) == "moons" && !classification)
    throw UsageError("--dataset moons holds class labels: it needs --task classification");
  if (dataset_name(options) != "moons" && classification)
    throw UsageError("--dataset " + dataset_name(options) +
                     " is regression data: --task classification needs --dataset moons or "
                     "--train FILE with labels");
  if (dataset_name(options) == "moons" && options.n_train < 4)
    throw UsageError("--n-train must be at least 4 for --dataset moons (2 points per class), got " +
                     std::to_string(options.n_train));
}

void check_names(const Options& options) {
  try {
    kernel_from_string(options.kernel);
  } catch (const std::invalid_argument&) {
    throw UsageError("--kernel must be gaussian, boxcar, constant or epanechikov, got '" +
                     options.kernel + "'");
  }
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
  check_task(options);
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
