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

CsvLimits csv_limits(const Options& o, std::size_t max_rows) {
  CsvLimits limits;
  limits.max_line_bytes = limits::kMaxLineBytes;
  limits.max_file_bytes = limits::kMaxFileBytes;
  limits.max_rows = max_rows;
  limits.max_abs = dtype_max(o.dtype);
  limits.dtype = o.dtype;
  return limits;
}

void read_training_file(const Options& o, Data& d) {
  const Columns c = read_csv(o.train_path, {"x", "y"}, csv_limits(o, limits::kMaxTrainPoints));
  if (c[0].size() < 2)
    throw InputError(o.train_path, 0,
                     "needs at least 2 training rows, found " + std::to_string(c[0].size()));
  d.x_train = c[0], d.y_train = c[1];
  d.source = o.train_path;
  // Default queries: 50 points evenly spread over the training inputs' range.
  const auto [lo, hi] = std::minmax_element(d.x_train.begin(), d.x_train.end());
  for (int i = 0; i < 50; ++i) d.x_query.push_back(*lo + (*hi - *lo) * (i / 49.0));
}

}  // namespace

Data load_data(const Options& o, Rng& rng) {
  Data d;
  if (o.train_path.empty()) {
    ChapterData c = make_chapter_data(rng, static_cast<std::size_t>(o.n_train));
    d.x_train = c.x_train, d.y_train = c.y_train, d.x_query = c.x_query, d.y_truth = c.y_truth;
    d.source = "the chapter's data (seed " + std::to_string(o.seed) + ")";
  } else {
    read_training_file(o, d);
  }
  if (!o.query_path.empty()) {
    const Columns q = read_csv(o.query_path, {"x"}, csv_limits(o, limits::kMaxQueries));
    if (q[0].empty()) throw InputError(o.query_path, 0, "no query rows");
    d.x_query = q[0];
    d.y_truth.clear();
    if (o.train_path.empty())  // the truth is known for the chapter's generator only
      for (double x : d.x_query) d.y_truth.push_back(chapter_truth(x));
  }
  const double entries = double(d.x_query.size()) * double(d.x_train.size());
  if (entries > limits::kMaxAttentionEntries)
    throw UsageError("the attention matrices would have " + str(entries) + " entries (" +
                     std::to_string(d.x_query.size()) + " queries x " +
                     std::to_string(d.x_train.size()) + " training points), over the limit of " +
                     str(limits::kMaxAttentionEntries) + ": use fewer --query rows or --n-train");
  return d;
}

void check_magnitudes(const Data& d, const Options& o) {
  const double largest = dtype_max(o.dtype), n = double(d.x_train.size());
  std::vector<double> xs = d.x_train;
  xs.insert(xs.end(), d.x_query.begin(), d.x_query.end());
  const auto [x_lo, x_hi] = std::minmax_element(xs.begin(), xs.end());
  if (!(*x_hi - *x_lo <= largest))
    throw UsageError(d.source + ": inputs x span " + str(*x_lo) + " to " + str(*x_hi) +
                     ", whose differences overflow " + o.dtype + "; rescale x" +
                     (o.dtype == "float32" ? " or use --dtype float64" : ""));
  double y_max = 0;
  for (double y : d.y_train) y_max = std::max(y_max, std::abs(y));
  // 1/2 sum_i (f_i - y_i)^2 with |f_i|, |y_i| <= y_max is at most 2 n y_max^2.
  const double y_bound = std::sqrt(largest / (2 * n));
  if (y_max > y_bound)
    throw UsageError(d.source + ": targets y up to " + str(y_max) + " overflow the " + o.dtype +
                     " loss (" + std::to_string(d.x_train.size()) +
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

void check_output_paths(const Options& o, const std::vector<std::string>& output_names) {
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"--train", o.train_path}, {"--query", o.query_path}, {"--resume", o.resume_path}};
  std::vector<std::pair<std::string, std::string>> outputs;
  if (!o.save_path.empty()) {
    check_save_writable(o.save_path);
    outputs.push_back({"--save", o.save_path});
  }
  for (const auto& name : output_names) {
    const std::string out_file = (fs::path(o.out_dir) / name).string();
    if (!o.save_path.empty() && same_file(o.save_path, out_file))
      throw UsageError("--save " + o.save_path + " is the --out file " + out_file);
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
