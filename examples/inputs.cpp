#include "examples/inputs.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "examples/csv.h"
#include "io/checkpoint.h"

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

std::string x_names(std::size_t d) {
  std::string s;
  for (std::size_t k = 1; k <= d; ++k) s += (k > 1 ? ",x" : "x") + std::to_string(k);
  return s;
}

bool is_x_header(const std::vector<std::string>& fields, std::size_t count) {
  if (count == 1 && fields.size() >= 1 && fields[0] == "x") return true;
  for (std::size_t k = 0; k < count; ++k)
    if (k >= fields.size() || fields[k] != "x" + std::to_string(k + 1)) return false;
  return true;
}

std::string joined(const std::vector<std::string>& fields) {
  std::string s;
  for (std::size_t i = 0; i < fields.size(); ++i) s += (i ? "," : "") + fields[i];
  return s.size() > 60 ? s.substr(0, 60) + "..." : s;
}

// --train: x,y or x1,...,xd,y with 1 <= d <= kMaxDims.
HeaderRule training_header() {
  HeaderRule rule;
  rule.expected = "'x,y' or 'x1,...,xd,y'";
  rule.problem = [](const std::vector<std::string>& fields) -> std::string {
    const std::size_t d = fields.size() - 1;
    if (fields.size() >= 2 && fields.back() == "y" && d <= limits::kMaxDims &&
        is_x_header(fields, d))
      return "";
    return "expected the header 'x,y' or 'x1,...,xd,y' (d from 1 to " +
           std::to_string(limits::kMaxDims) + "), found '" + joined(fields) + "'";
  };
  return rule;
}

// --query: x or x1,...,xd with the training data's d.
HeaderRule query_header(std::size_t d) {
  HeaderRule rule;
  rule.expected = d == 1 ? "'x'" : "'" + x_names(d) + "'";
  rule.problem = [d](const std::vector<std::string>& fields) -> std::string {
    if (fields.size() == d && is_x_header(fields, d)) return "";
    return "expected the header " + std::string(d == 1 ? "'x' or 'x1'" : "'" + x_names(d) + "'") +
           " (the training inputs have d = " + std::to_string(d) + "), found '" + joined(fields) +
           "'";
  };
  return rule;
}

// The columns x1..xd of a table as row-major (rows, d).
std::vector<double> row_major(const Columns& columns, std::size_t d) {
  std::vector<double> x;
  const std::size_t rows = columns[0].size();
  x.reserve(rows * d);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < d; ++k) x.push_back(columns[k][r]);
  return x;
}

// Classification: y holds integer labels 0..kMaxClasses-1, each label 0..C-1 at least twice.
void read_labels(const std::string& path, const Table& table, Data& data) {
  const std::vector<double>& y = table.columns.back();
  for (std::size_t r = 0; r < y.size(); ++r) {
    if (!(y[r] >= 0 && y[r] < double(limits::kMaxClasses) && y[r] == std::floor(y[r])))
      throw InputError(path, table.row_lines[r],
                       "column y: '" + str(y[r]) + "' is not a class label (an integer from 0 to " +
                           std::to_string(limits::kMaxClasses - 1) + ")");
    data.labels.push_back(static_cast<std::int64_t>(y[r]));
  }
}

void check_label_counts(const std::string& source, Data& data) {
  const std::int64_t largest = *std::max_element(data.labels.begin(), data.labels.end());
  data.classes = static_cast<std::size_t>(largest + 1);
  std::vector<std::size_t> count(data.classes, 0);
  for (std::int64_t label : data.labels) ++count[static_cast<std::size_t>(label)];
  for (std::size_t c = 0; c < data.classes; ++c)
    if (count[c] < 2)
      throw InputError(source, 0,
                       "label " + std::to_string(c) + " appears " + std::to_string(count[c]) +
                           " time(s); every label 0.." + std::to_string(data.classes - 1) +
                           " needs at least 2 examples (leave-one-out needs another of its class)");
}

void read_training_file(const Options& options, Data& data) {
  const Table table = read_csv_table(options.train_path, training_header(),
                                     csv_limits(options, limits::kMaxTrainPoints));
  const Columns& columns = table.columns;
  if (columns[0].size() < 2)
    throw InputError(options.train_path, 0,
                     "needs at least 2 training rows, found " + std::to_string(columns[0].size()));
  data.d = columns.size() - 1;
  data.x_train = row_major(columns, data.d), data.y_train = columns.back();
  data.source = options.train_path;
  if (options.task == "classification") {
    data.classification = true;
    read_labels(options.train_path, table, data);
    check_label_counts(options.train_path, data);
  }
  if (data.d >= 2) {  // default queries: the training inputs themselves
    data.x_query = data.x_train;
    return;
  }
  // Default queries: 50 points evenly spread over the training inputs' range.
  const auto [lo, hi] = std::minmax_element(data.x_train.begin(), data.x_train.end());
  for (int i = 0; i < 50; ++i) data.x_query.push_back(*lo + (*hi - *lo) * (i / 49.0));
}

// The generator's truth at (d-dimensional) input x, or NaN where it has none.
double generated_truth(const std::string& dataset, const double* x) {
  if (dataset == "chapter" || dataset == "chapter2d") return chapter_truth(x[0]);
  if (dataset == "surface") return surface_truth(x[0], x[1]);
  return NAN;
}

void generate(const Options& options, Rng& rng, Data& data) {
  const std::string dataset = dataset_name(options);
  const std::size_t n = static_cast<std::size_t>(options.n_train);
  data.source = "the " + (dataset == "chapter" ? std::string("chapter's") : dataset) +
                " data (seed " + std::to_string(options.seed) + ")";
  if (dataset == "chapter") {
    ChapterData chapter = make_chapter_data(rng, n);
    data.x_train = chapter.x_train, data.y_train = chapter.y_train, data.x_query = chapter.x_query,
    data.y_truth = chapter.y_truth;
    return;
  }
  const PlaneData plane = dataset == "chapter2d" ? make_chapter2d_data(rng, n)
                          : dataset == "surface" ? make_surface_data(rng, n)
                                                 : make_moons_data(rng, n);
  data.d = 2;
  data.x_train = plane.x_train, data.y_train = plane.y_train, data.x_query = plane.x_query,
  data.y_truth = plane.y_truth;
  if (dataset == "moons") {
    data.classification = true;
    for (double y : data.y_train) data.labels.push_back(static_cast<std::int64_t>(y));
    check_label_counts(data.source, data);
  }
}

void read_query_file(const Options& options, Data& data) {
  const Table queries = read_csv_table(options.query_path, query_header(data.d),
                                       csv_limits(options, limits::kMaxQueries));
  if (queries.columns[0].empty()) throw InputError(options.query_path, 0, "no query rows");
  data.x_query = row_major(queries.columns, data.d);
  data.y_truth.clear();
  if (!options.train_path.empty()) return;  // the truth is known for the generators only
  for (std::size_t q = 0; q < data.n_query(); ++q)
    data.y_truth.push_back(generated_truth(dataset_name(options), &data.x_query[q * data.d]));
  // 2 sin(x) + x^0.8 is defined for x >= 0 and overflows nowhere in double; a query where the truth
  // is not a number (x < 0) has none to compare with, so no MSE is printed.
  if (!std::all_of(data.y_truth.begin(), data.y_truth.end(),
                   [](double y) { return std::isfinite(y); }))
    data.y_truth.clear();
}

}  // namespace

Data load_data(const Options& options, Rng& rng) {
  Data data;
  if (options.train_path.empty())
    generate(options, rng, data);
  else
    read_training_file(options, data);
  if (!options.query_path.empty()) read_query_file(options, data);
  const double entries = double(data.n_query()) * double(data.n_train());
  if (entries > limits::kMaxAttentionEntries)
    throw UsageError("the attention matrices would have " + str(entries) + " entries (" +
                     std::to_string(data.n_query()) + " queries x " +
                     std::to_string(data.n_train()) + " training points), over the limit of " +
                     str(limits::kMaxAttentionEntries) + ": use fewer --query rows or --n-train");
  return data;
}

void check_magnitudes(const Data& data, const Options& options) {
  const double largest = dtype_max(options.dtype), n = double(data.n_train());
  const std::size_t d = data.d;
  double squared_span = 0;  // sum_k (span of coordinate k)^2: the largest squared distance
  for (std::size_t k = 0; k < d; ++k) {
    double lo = INFINITY, hi = -INFINITY;
    for (const auto* xs : {&data.x_train, &data.x_query})
      for (std::size_t i = k; i < xs->size(); i += d)
        lo = std::min(lo, (*xs)[i]), hi = std::max(hi, (*xs)[i]);
    const std::string name = d == 1 ? "x" : "x" + std::to_string(k + 1);
    if (!(hi - lo <= largest))
      throw UsageError(data.source + ": inputs " + name + " span " + str(lo) + " to " + str(hi) +
                       ", whose differences overflow " + options.dtype + "; rescale " + name +
                       (options.dtype == "float32" ? " or use --dtype float64" : ""));
    squared_span += (hi - lo) * (hi - lo);
  }
  if ((d >= 2 || data.classification) && !(squared_span <= largest))
    throw UsageError(data.source + ": the inputs' squared distances reach " + str(squared_span) +
                     ", which overflows " + options.dtype + "; rescale x" +
                     (options.dtype == "float32" ? " or use --dtype float64" : ""));
  if (data.classification) return;  // the losses of probabilities are at most n
  double y_max = 0;
  for (double y : data.y_train) y_max = std::max(y_max, std::abs(y));
  // 1/2 sum_i (f_i - y_i)^2 with |f_i|, |y_i| <= y_max is at most 2 n y_max^2.
  const double y_bound = std::sqrt(largest / (2 * n));
  if (y_max > y_bound)
    throw UsageError(data.source + ": targets y up to " + str(y_max) + " overflow the " +
                     options.dtype + " loss (" + std::to_string(data.n_train()) +
                     " points need |y| <= " + str(y_bound) + "); rescale y or use --dtype float64");
}

namespace {

// Whether two paths name the same file (the file need not exist for a lexical match).
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) return fs::equivalent(a, b, ec);
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

// What is at --save: a regular file (replaced), nothing (created), or a refusal in words: a
// directory, a FIFO or a device, a loop of symbolic links, a path too long, a symbolic link into
// a directory that does not exist.
void check_save_target(const std::string& save) {
  struct stat st {};
  if (::stat(save.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw UsageError("--save " + save + ": is a directory");
    if (!S_ISREG(st.st_mode))
      throw UsageError("--save " + save + ": is not a regular file (a FIFO, a device or a socket)");
    if (::access(save.c_str(), R_OK | W_OK) != 0)  // read too: the commit locks it
      throw UsageError("--save " + save + ": not readable and writable: " + std::strerror(errno));
    return;
  }
  const int err = errno;
  if (err != ENOENT)
    throw UsageError("--save " + save + ": " + std::strerror(err) +
                     (err == ELOOP ? " (a loop of symbolic links)" : ""));
  if (save.size() + 16 >= PATH_MAX)  // its temporary "<save>.tmp.<pid>" must fit too
    throw UsageError("--save " + save.substr(0, 80) + "...: the path is too long (" +
                     std::to_string(save.size()) + " bytes; the limit is " +
                     std::to_string(PATH_MAX) + " with the temporary's suffix)");
}

void check_save_writable(const std::string& save) {
  check_save_target(save);
  std::error_code ec;
  // A symbolic link: the checkpoint is saved to (and its temporary beside) the file it names.
  const fs::path target = checkpoint_target(save);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : ".";
  if (!fs::is_directory(parent, ec))
    throw UsageError("--save " + save + ": directory " + parent.string() + " does not exist");
  if (::access(parent.c_str(), W_OK | X_OK) != 0)
    throw UsageError("--save " + save + ": cannot write in " + parent.string() + ": " +
                     std::strerror(errno));
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
