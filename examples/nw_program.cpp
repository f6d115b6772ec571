#include "examples/nw_program.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "io/checkpoint.h"

namespace tapegrad {

double mse(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / double(a.size());
}

std::int64_t majority_label(const std::vector<std::int64_t>& labels, std::size_t classes) {
  std::vector<std::size_t> count(classes, 0);
  for (std::int64_t label : labels) ++count[static_cast<std::size_t>(label)];
  return static_cast<std::int64_t>(std::max_element(count.begin(), count.end()) - count.begin());
}

std::string predictions_csv(const PlotData& plot, int precision) {
  std::ostringstream os;
  os.precision(precision);
  const std::size_t d = plot.d;
  for (std::size_t k = 1; k <= d; ++k)
    os << (d == 1 ? std::string("x") : "x" + std::to_string(k)) << ",";
  os << "average,nonparametric,parametric\n";
  for (std::size_t i = 0; i < plot.average.size(); ++i) {
    for (std::size_t k = 0; k < d; ++k) os << plot.x_query[i * d + k] << ",";
    if (plot.classification)
      os << std::int64_t(plot.average[i]) << "," << std::int64_t(plot.nonparametric[i]) << ","
         << std::int64_t(plot.parametric[i]) << "\n";
    else
      os << plot.average[i] << "," << plot.nonparametric[i] << "," << plot.parametric[i] << "\n";
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

bool is_chapter(const Data& data) {
  return data.d == 1 && !data.classification;
}

void print_data(const Options& options, const Data& data) {
  std::cout << "data: " << data.source << ": " << data.n_train() << " training points";
  if (!is_chapter(data)) std::cout << " of d = " << data.d;
  if (data.classification) std::cout << " (" << data.classes << " classes)";
  std::cout << ", " << data.n_query() << " queries; dtype " << options.dtype << ", "
            << omp_get_max_threads() << " thread(s)\n";
}

void print_training_plan(const Options& options, const Data& data,
                         const std::vector<double>& w_init, bool fused) {
  const bool chapter = is_chapter(data), leave_one_out = !options.keep_self;
  const std::size_t n = data.n_train();
  std::cout << "parametric pooling: training w (w_init "
            << w_text(w_init, !chapter && options.widths == "per-coordinate") << ", ";
  if (!chapter) std::cout << options.widths << " widths, ";
  std::cout << (fused ? "fused op" : "composed ops: nw_logits, softmax, bmm") << ") on "
            << (leave_one_out ? "leave-one-out pairs (" : "all pairs (") << n << " x "
            << (leave_one_out ? n - 1 : n) << "), ";
  if (!chapter) std::cout << loss_name(options) << " loss, ";
  std::cout << "lr " << options.lr << ", " << options.epochs << " epochs\n";
}

void print_prediction_summary(const Data& data, const std::vector<double>& parametric,
                              double accuracy) {
  if (data.classification)
    std::cout << "parametric pooling: leave-one-out accuracy on the training set " << accuracy
              << "\n";
  else if (!data.y_truth.empty())
    std::cout << "parametric pooling: MSE vs truth " << mse(parametric, data.y_truth) << "\n";
}

void print_written(const Options& options, const Data& data, const Written& written) {
  std::cout << "wrote " << (std::filesystem::path(options.out_dir) / "predictions.csv").string()
            << (data.classification ? ", probabilities_*.csv" : "")
            << ", attention_*.csv, training.json";
  if (written.script) std::cout << ", plots.gp";
  if (written.figures) std::cout << " and " << written.figures << " figures";
  if (written.graph_dot) std::cout << ", graph.dot";
  if (written.graph_png) std::cout << ", graph.png";
  std::cout << " in " << options.out_dir;
  if (!options.save_path.empty()) std::cout << "; checkpoint " << options.save_path;
  std::cout << "\n";
}

EpochLog epoch_log(const Options& options, long epochs_before) {
  EpochLog log;
  log.every = options.log_every > 0 ? options.log_every : default_log_every(options.epochs);
  log.first = epochs_before + 1;
  log.last = epochs_before + options.epochs;
  log.quiet = options.quiet;
  return log;
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

namespace {

// The composed forward and backward keep about this many (n, m) arrays alive at their peak: the
// (n, m, d) keys, the differences and the half-sum of nw_logits, their product and its gradients
// count d each, the (n, m, C) values and the bmm's gradient C each, and the (n, m) logits, weights
// and their gradients a few (peak RSS over the fused op's agrees within about 15% from d = 1 to 8).
double composed_arrays_alive(std::size_t d, std::size_t classes) {
  return 2.0 + 7.0 * double(d) + 2.0 * double(std::max<std::size_t>(classes, 1));
}

}  // namespace

ComposedMemory composed_memory(const Options& options, const Data& data, std::size_t value_bytes) {
  const std::size_t n = data.n_train(), n_query = data.n_query();
  const std::size_t m = options.keep_self ? n : n - 1;
  const bool training_larger = double(n) * double(m) >= double(n_query) * double(n);
  ComposedMemory memory;
  memory.arrays = composed_arrays_alive(data.d, data.classes);
  memory.rows = training_larger ? n : n_query;
  memory.cols = training_larger ? m : n;
  memory.mib = memory.arrays * double(memory.rows) * double(memory.cols) * double(value_bytes) /
               double(1 << 20);
  return memory;
}

void check_memory_budget(const Options& options, const Data& data, std::size_t value_bytes) {
  if (options.impl != "composed") return;
  const ComposedMemory memory = composed_memory(options, data, value_bytes);
  if (memory.mib <= double(options.memory_budget_mib)) return;
  char text[320];
  std::snprintf(text, sizeof text,
                "--impl composed would keep about %.0f arrays of %zu x %zu %s alive, about %.0f "
                "MiB, over --memory-budget %ld MiB: use --impl fused (O(n) memory) or raise "
                "--memory-budget",
                memory.arrays, memory.rows, memory.cols, options.dtype.c_str(), memory.mib,
                options.memory_budget_mib);
  throw UsageError(text);
}

bool use_fused(const Options& options, const Data& data, std::size_t value_bytes) {
  if (!options.impl.empty()) return options.impl == "fused";
  const ComposedMemory memory = composed_memory(options, data, value_bytes);
  if (memory.mib <= double(options.memory_budget_mib)) return false;
  std::printf(
      "parametric pooling: the composed ops would keep about %.0f arrays of %zu x %zu alive "
      "(%.0f MiB > --memory-budget %ld MiB): using the fused op\n",
      memory.arrays, memory.rows, memory.cols, memory.mib, options.memory_budget_mib);
  return true;
}

std::vector<std::size_t> graph_points(const Data& data) {
  const std::size_t n = std::min<std::size_t>(data.n_train(), 20);
  std::vector<std::size_t> points;
  for (std::size_t i = 0; i < n; ++i) points.push_back(i);
  if (!data.classification) return points;
  for (std::size_t i = 0; i < n; ++i) {
    const auto same = [&](std::size_t j) { return data.labels[j] == data.labels[i]; };
    if (std::count_if(points.begin(), points.end(), same) >= 2) continue;
    for (std::size_t j = n; j < data.n_train(); ++j)
      if (same(j)) {
        points.push_back(j);
        break;
      }
  }
  return points;
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
