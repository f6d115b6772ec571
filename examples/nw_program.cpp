#include "examples/nw_program.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "io/checkpoint.h"

namespace tapegrad {

double mse(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / double(a.size());
}

std::string matrix_csv(const Matrix& m, int precision) {
  std::ostringstream os;
  os.precision(precision);
  for (const auto& row : m) {
    for (std::size_t c = 0; c < row.size(); ++c) os << (c ? "," : "") << row[c];
    os << "\n";
  }
  return os.str();
}

std::string w_text(const std::vector<double>& w, bool as_list) {
  std::ostringstream os;
  if (!as_list && w.size() == 1) {
    os << w[0];
    return os.str();
  }
  os << "[";
  for (std::size_t k = 0; k < w.size(); ++k) os << (k ? ", " : "") << w[k];
  os << "]";
  return os.str();
}

nlohmann::json w_json(const std::vector<double>& w, const Options& options) {
  if (options.widths == "shared") return w.at(0);
  return w;
}

void check_training_finite(const Training& training) {
  const auto finite = [](double v) { return std::isfinite(v); };
  if (!std::all_of(training.w.begin(), training.w.end(), finite) ||
      !std::all_of(training.losses.begin(), training.losses.end(), finite))
    throw UsageError(
        "training diverged (w or the loss is not finite); try a smaller --lr or "
        "--w-init");
}

nlohmann::json checkpoint_meta(const Options& options, const Data& data, long epochs_done) {
  return {{"epochs_done", epochs_done}, {"dtype", options.dtype},
          {"seed", options.seed},       {"d", data.d},
          {"widths", options.widths},   {"task", options.task}};
}

namespace {

// meta[key] (a string, `fallback` when absent) must equal `expected`.
void check_meta_string(const nlohmann::json& meta, const std::string& key,
                       const std::string& fallback, const std::string& expected,
                       const std::string& what, const std::string& where) {
  const nlohmann::json value = meta.contains(key) ? meta[key] : nlohmann::json(fallback);
  if (value != expected)
    throw CheckpointError(where + "meta." + key + " " + value.dump().substr(0, 40) +
                          " does not match " + what + " " + expected);
}

// The checkpoint's model (d, widths, task) is this run's.
void check_meta_model(const nlohmann::json& meta, const Options& options, const Data& data,
                      const std::string& where) {
  check_meta_string(meta, "dtype", options.dtype, options.dtype, "--dtype", where);
  check_meta_string(meta, "widths", "shared", options.widths, "--widths", where);
  check_meta_string(meta, "task", "regression", options.task, "--task", where);
  const nlohmann::json d = meta.contains("d") ? meta["d"] : nlohmann::json(std::uint64_t(1));
  if (!d.is_number_unsigned() || d.get<std::uint64_t>() != data.d)
    throw CheckpointError(where + "meta.d " + d.dump().substr(0, 40) +
                          " does not match the data's d = " + std::to_string(data.d) + " (" +
                          data.source + ")");
}

}  // namespace

long checked_epochs_done(const nlohmann::json& meta, const Options& options, const Data& data) {
  const std::string where = "checkpoint " + options.resume_path + ": ";
  check_meta_model(meta, options, data, where);
  if (meta.contains("seed") && !meta["seed"].is_number_unsigned())
    throw CheckpointError(where + "meta.seed is not an unsigned integer");
  if (!meta.contains("epochs_done")) return 0;
  const auto& done = meta["epochs_done"];
  if (!done.is_number_unsigned() || done.get<std::uint64_t>() > std::uint64_t(limits::kMaxEpochs))
    throw CheckpointError(where + "meta.epochs_done must be an integer from 0 to " +
                          std::to_string(limits::kMaxEpochs) + ", got " +
                          done.dump().substr(0, 40));
  const long epochs_done = done.get<long>();
  if (epochs_done + options.epochs > limits::kMaxEpochs)
    throw UsageError("--epochs " + std::to_string(options.epochs) + " after the checkpoint's " +
                     std::to_string(epochs_done) + " epochs exceeds the limit of " +
                     std::to_string(limits::kMaxEpochs));
  return epochs_done;
}

bool use_fused(const Options& options, std::size_t n, std::size_t n_query, std::size_t value_bytes,
               double arrays_alive) {
  if (!options.impl.empty()) return options.impl == "fused";
  const std::size_t m = options.keep_self ? n : n - 1;
  const bool training_larger = double(n) * double(m) >= double(n_query) * double(n);
  const std::size_t rows = training_larger ? n : n_query, cols = training_larger ? m : n;
  const double mib = arrays_alive * double(rows) * double(cols) * double(value_bytes) / (1 << 20);
  if (mib <= double(options.memory_budget_mib)) return false;
  std::printf(
      "parametric pooling: the composed ops would keep about %.0f arrays of %zu x %zu alive "
      "(%.0f MiB > --memory-budget %ld MiB): using the fused op\n",
      arrays_alive, rows, cols, mib, options.memory_budget_mib);
  return true;
}

double median_epoch_seconds(const Training& training) {
  std::vector<double> sorted = training.epoch_seconds;
  if (sorted.empty()) return 0;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t half = sorted.size() / 2;
  return sorted.size() % 2 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
}

nlohmann::json common_json(const Options& options, const Data& data, const Training& training,
                           const std::vector<double>& w_init, long epochs_before, bool fused) {
  nlohmann::json json;
  json["w_init"] = w_json(w_init, options);
  json["w"] = w_json(training.w, options);
  json["loss"] = training.losses;
  json["w_per_epoch"] = nlohmann::json::array();  // w after each epoch's step (the exercises' plot)
  for (const auto& w : training.w_per_epoch) json["w_per_epoch"].push_back(w_json(w, options));
  json["lr"] = options.lr;
  json["epochs"] = options.epochs;
  json["kernel"] = options.kernel;
  json["sigma"] = options.sigma;
  json["dtype"] = options.dtype;
  json["n_train"] = data.n_train();
  json["n_query"] = data.n_query();
  json["train_seconds"] = training.seconds;
  json["epoch_seconds"] = training.epoch_seconds;
  json["epoch_seconds_median"] = median_epoch_seconds(training);
  json["seed"] = options.seed;
  json["leave_one_out"] = !options.keep_self;
  json["threads"] = omp_get_max_threads();
  json["impl"] = fused ? "fused" : "composed";
  json["memory_budget_mib"] = options.memory_budget_mib;
  json["data"] = data.source;
  json["epochs_before"] = epochs_before;
  json["d"] = data.d;
  json["task"] = options.task;
  json["widths"] = options.widths;
  json["loss_function"] = loss_name(options);
  if (data.classification) json["classes"] = data.classes;
  return json;
}

}  // namespace tapegrad
