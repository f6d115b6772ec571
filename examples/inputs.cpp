#include "examples/inputs.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "examples/csv.h"

namespace fs = std::filesystem;

namespace tapegrad {

namespace {

std::string str(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

CsvLimits csv_limits(const Options& options, std::size_t max_rows) {
  CsvLimits limits;
  limits.max_line_bytes = limits::kMaxLineBytes;
  limits.max_file_bytes = limits::kMaxFileBytes;
  limits.max_rows = max_rows;
  limits.max_abs = dtype_max(options.dtype);
  limits.dtype = options.dtype;
  return limits;
}

void read_training_file(const Options& options, Data& data) {
  const Columns columns =
      read_csv(options.train_path, {"x", "y"}, csv_limits(options, limits::kMaxTrainPoints));
  if (columns[0].size() < 2)
    throw InputError(options.train_path, 0,
                     "needs at least 2 training rows, found " + std::to_string(columns[0].size()));
  data.x_train = columns[0], data.y_train = columns[1];
  data.source = options.train_path;
  // Default queries: 50 points evenly spread over the training inputs' range.
  const auto [lo, hi] = std::minmax_element(data.x_train.begin(), data.x_train.end());
  for (int i = 0; i < 50; ++i) data.x_query.push_back(*lo + (*hi - *lo) * (i / 49.0));
}

}  // namespace

Data load_data(const Options& options, Rng& rng) {
  Data data;
  if (options.train_path.empty()) {
    ChapterData chapter = make_chapter_data(rng, static_cast<std::size_t>(options.n_train));
    data.x_train = chapter.x_train, data.y_train = chapter.y_train, data.x_query = chapter.x_query,
    data.y_truth = chapter.y_truth;
    data.source = "the chapter's data (seed " + std::to_string(options.seed) + ")";
  } else {
    read_training_file(options, data);
  }
  if (!options.query_path.empty()) {
    const Columns queries =
        read_csv(options.query_path, {"x"}, csv_limits(options, limits::kMaxQueries));
    if (queries[0].empty()) throw InputError(options.query_path, 0, "no query rows");
    data.x_query = queries[0];
    data.y_truth.clear();
    if (options.train_path.empty())  // the truth is known for the chapter's generator only
      for (double x : data.x_query) data.y_truth.push_back(chapter_truth(x));
    // 2 sin(x) + x^0.8 is defined for x >= 0 and overflows nowhere in double; a query where it is
    // not a number (x < 0) has no truth to compare with, so no MSE is printed.
    if (!std::all_of(data.y_truth.begin(), data.y_truth.end(),
                     [](double y) { return std::isfinite(y); }))
      data.y_truth.clear();
  }
  const double entries = double(data.x_query.size()) * double(data.x_train.size());
  if (entries > limits::kMaxAttentionEntries)
    throw UsageError("the attention matrices would have " + str(entries) + " entries (" +
                     std::to_string(data.x_query.size()) + " queries x " +
                     std::to_string(data.x_train.size()) + " training points), over the limit of " +
                     str(limits::kMaxAttentionEntries) + ": use fewer --query rows or --n-train");
  return data;
}

void check_magnitudes(const Data& data, const Options& options) {
  const double largest = dtype_max(options.dtype), n = double(data.x_train.size());
  std::vector<double> xs = data.x_train;
  xs.insert(xs.end(), data.x_query.begin(), data.x_query.end());
  const auto [x_lo, x_hi] = std::minmax_element(xs.begin(), xs.end());
  if (!(*x_hi - *x_lo <= largest))
    throw UsageError(data.source + ": inputs x span " + str(*x_lo) + " to " + str(*x_hi) +
                     ", whose differences overflow " + options.dtype + "; rescale x" +
                     (options.dtype == "float32" ? " or use --dtype float64" : ""));
  double y_max = 0;
  for (double y : data.y_train) y_max = std::max(y_max, std::abs(y));
  // 1/2 sum_i (f_i - y_i)^2 with |f_i|, |y_i| <= y_max is at most 2 n y_max^2.
  const double y_bound = std::sqrt(largest / (2 * n));
  if (y_max > y_bound)
    throw UsageError(data.source + ": targets y up to " + str(y_max) + " overflow the " +
                     options.dtype + " loss (" + std::to_string(data.x_train.size()) +
                     " points need |y| <= " + str(y_bound) + "); rescale y or use --dtype float64");
}

namespace {

// Whether two paths name the same file (the file need not exist for a lexical match).
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) return fs::equivalent(a, b, ec);
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

void check_save_writable(const std::string& save) {
  std::error_code ec;
  if (fs::is_directory(save, ec)) throw UsageError("--save " + save + ": is a directory");
  const fs::path parent = fs::path(save).has_parent_path() ? fs::path(save).parent_path() : ".";
  if (!fs::is_directory(parent, ec))
    throw UsageError("--save " + save + ": directory " + parent.string() + " does not exist");
  if (::access(parent.c_str(), W_OK | X_OK) != 0)
    throw UsageError("--save " + save + ": cannot write in " + parent.string() + ": " +
                     std::strerror(errno));
  if (fs::exists(save, ec) && ::access(save.c_str(), W_OK) != 0)
    throw UsageError("--save " + save + ": not writable: " + std::strerror(errno));
}

}  // namespace

void check_output_paths(const Options& options, const std::vector<std::string>& output_names) {
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"--train", options.train_path},
      {"--query", options.query_path},
      {"--resume", options.resume_path}};
  std::vector<std::pair<std::string, std::string>> outputs;
  if (!options.save_path.empty()) {
    check_save_writable(options.save_path);
    outputs.push_back({"--save", options.save_path});
  }
  for (const auto& name : output_names) {
    const std::string out_file = (fs::path(options.out_dir) / name).string();
    if (!options.save_path.empty() && same_file(options.save_path, out_file))
      throw UsageError("--save " + options.save_path + " is the --out file " + out_file);
    outputs.push_back({"--out", out_file});
  }
  for (const auto& [out_flag, out_path] : outputs)
    for (const auto& [in_flag, in_path] : inputs) {
      if (in_path.empty() || (out_flag == "--save" && in_flag == "--resume")) continue;
      if (same_file(out_path, in_path))
        throw UsageError(out_flag + " would overwrite the " + in_flag + " file " + in_path + " (" +
                         out_path + ")");
    }
}

}  // namespace tapegrad
