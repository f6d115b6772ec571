// nadaraya_watson: the d2l chapter "Attention Pooling: Nadaraya-Watson Kernel Regression", end to
// end.
//
//   nadaraya_watson [--train FILE] [--query FILE] [--epochs N] [--lr X] [--w-init X] [--seed N]
//                   [--kernel gaussian|boxcar|constant|epanechikov] [--sigma X]
//                   [--dtype float32|float64] [--threads N] [--out DIR] [--no-plots] [--keep-self]
//                   [--impl composed|fused] [--memory-budget MIB] [--n-train N]
//                   [--save PATH] [--resume PATH]
//
// With no arguments: the chapter's data (seeded), average pooling, nonparametric pooling, 5 epochs
// of leave-one-out training of NWKernelRegression with SGD (lr 0.5) through the chapter's own ops
// (repeat_interleave, softmax, bmm), predictions, CSV/JSON outputs and figures in out/.
//
// The program reads as its five steps: load (flags, data, checkpoint: everything validated before
// the first epoch), pool (average and nonparametric), train, predict, write (one transaction,
// examples/outputs.h). Exit status: 0 on success; 2 on bad input (one line on stderr naming the
// flag or the file and line, nothing written); 1 when gnuplot fails or on an internal error (one
// line, nothing written either).
#include <malloc.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "examples/csv.h"
#include "examples/inputs.h"
#include "examples/options.h"
#include "examples/outputs.h"
#include "examples/plots.h"
#include "models/checkpoint.h"
#include "models/data.h"
#include "models/nadaraya_watson.h"
#include "models/sgd.h"
#include "tapegrad.h"

using namespace tapegrad;

namespace {

template <class T>
Tensor<T> as_tensor(const std::vector<double>& values) {
  xt::xarray<T> a = xt::zeros<T>({values.size()});
  for (std::size_t i = 0; i < values.size(); ++i) a(i) = static_cast<T>(values[i]);
  return Tensor<T>(std::move(a));
}

template <class T>
std::vector<double> to_vector(const xt::xarray<T>& a) {
  return std::vector<double>(a.begin(), a.end());
}

template <class T>
Matrix to_matrix(const xt::xarray<T>& a) {
  Matrix m(a.shape()[0], std::vector<double>(a.shape()[1]));
  for (std::size_t r = 0; r < m.size(); ++r)
    for (std::size_t c = 0; c < m[r].size(); ++c) m[r][c] = a(r, c);
  return m;
}

double mse(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / double(a.size());
}

// The data as tensors of the run's dtype.
template <class T>
struct DataTensors {
  Tensor<T> x_train, y_train, x_query;
  explicit DataTensors(const Data& d)
      : x_train(as_tensor<T>(d.x_train)),
        y_train(as_tensor<T>(d.y_train)),
        x_query(as_tensor<T>(d.x_query)) {}
};

// ---- load: the model, and the checkpoint it may resume from ------------------------------------

template <class T>
struct Model {
  NWKernelRegression<T> net;
  SGD<T> optimizer;
  NamedTensors<T> named;  // what a checkpoint holds: {"w", w}
  double w_init;
  long epochs_before = 0;  // epochs done before this run (from --resume)
  Model(double w0, double lr)
      : net(static_cast<T>(w0)), optimizer(net.parameters(), static_cast<T>(lr)), w_init(w0) {
    named = {{"w", net.w()}};
  }
};

// The program's fields of a checkpoint's meta, checked by meaning before the model is touched.
long checked_epochs_done(const nlohmann::json& meta, const Options& o) {
  const std::string where = "checkpoint " + o.resume_path + ": ";
  if (meta.contains("dtype") && meta["dtype"] != o.dtype)
    throw CheckpointError(where + "meta.dtype " + meta["dtype"].dump().substr(0, 40) +
                          " does not match --dtype " + o.dtype);
  if (meta.contains("seed") && !meta["seed"].is_number_unsigned())
    throw CheckpointError(where + "meta.seed is not an unsigned integer");
  if (!meta.contains("epochs_done")) return 0;
  const auto& done = meta["epochs_done"];
  if (!done.is_number_unsigned() || done.get<std::uint64_t>() > std::uint64_t(limits::kMaxEpochs))
    throw CheckpointError(where + "meta.epochs_done must be an integer from 0 to " +
                          std::to_string(limits::kMaxEpochs) + ", got " +
                          done.dump().substr(0, 40));
  const long epochs_done = done.get<long>();
  if (epochs_done + o.epochs > limits::kMaxEpochs)
    throw UsageError("--epochs " + std::to_string(o.epochs) + " after the checkpoint's " +
                     std::to_string(epochs_done) + " epochs exceeds the limit of " +
                     std::to_string(limits::kMaxEpochs));
  return epochs_done;
}

template <class T>
void resume(const Options& o, Model<T>& model) {
  const CheckpointContents<T> contents = read_checkpoint<T>(o.resume_path);
  const long epochs_done = checked_epochs_done(contents.meta, o);
  restore_checkpoint(contents, model.named, model.optimizer, o.resume_path);
  model.w_init = static_cast<double>(model.net.w().value()(0));
  model.epochs_before = epochs_done;
  std::cout << "resumed from " << o.resume_path << ": w = " << model.w_init << " after "
            << epochs_done << " epochs\n";
}

// ---- pool: average and nonparametric attention pooling -----------------------------------------

template <class T>
struct Pooled {
  Tensor<T> average;
  NWResult<T> nonparametric;
  std::string kernel_label;  // "gaussian, sigma = 1"
};

template <class T>
Pooled<T> pool(const Options& o, const Data& d, const DataTensors<T>& t) {
  const Kernel kernel = kernel_from_string(o.kernel);
  const bool truth = !d.y_truth.empty();
  Pooled<T> p;
  // 1. Average pooling: f(x) = mean(y).
  p.average = average_pooling(t.y_train, d.x_query.size());
  std::cout << "average pooling: f(x) = " << p.average.value()(0) << " for every query";
  if (truth) std::cout << "; MSE vs truth " << mse(to_vector(p.average.value()), d.y_truth);
  std::cout << "\n";
  // 2. Nonparametric attention pooling with the chosen kernel.
  std::ostringstream label;
  label << to_string(kernel) << ", sigma = " << o.sigma;
  p.kernel_label = label.str();
  p.nonparametric =
      nadaraya_watson(t.x_train, t.y_train, t.x_query, kernel, static_cast<T>(o.sigma));
  std::cout << "nonparametric pooling (" << p.kernel_label << ")";
  if (truth)
    std::cout << ": MSE vs truth " << mse(to_vector(p.nonparametric.y_hat.value()), d.y_truth);
  std::cout << "\n";
  if (p.nonparametric.empty_rows)
    std::cout << "note: " << p.nonparametric.empty_rows
              << " queries had no training input within the " << to_string(kernel)
              << " kernel's support; each took its nearest training input's value\n";
  return p;
}

// ---- train: w by SGD on leave-one-out keys and values -------------------------------------------

// The composed forward and backward keep about this many (n, m) arrays alive at their peak (keys,
// values, the repeated queries, differences, scaled squares, softmax weights and their gradients):
// measured as peak RSS of --impl composed --dtype float64 --n-train 3000 --epochs 1, 801 MB =
// 11.1 x (3000 x 2999 x 8 bytes).
constexpr double kComposedArraysAlive = 11;

// composed unless --impl says otherwise or its intermediates exceed --memory-budget; prints one
// line when it switches.
bool use_fused(const Options& o, std::size_t n, std::size_t n_query, std::size_t value_bytes) {
  if (!o.impl.empty()) return o.impl == "fused";
  const std::size_t m = o.keep_self ? n : n - 1;
  const bool training_larger = double(n) * double(m) >= double(n_query) * double(n);
  const std::size_t rows = training_larger ? n : n_query, cols = training_larger ? m : n;
  const double mib =
      kComposedArraysAlive * double(rows) * double(cols) * double(value_bytes) / (1 << 20);
  if (mib <= double(o.memory_budget_mib)) return false;
  std::printf(
      "parametric pooling: the composed ops would keep about %.0f arrays of %zu x %zu alive "
      "(%.0f MiB > --memory-budget %ld MiB): using the fused op\n",
      kComposedArraysAlive, rows, cols, mib, o.memory_budget_mib);
  return true;
}

struct Training {
  std::vector<double> losses;  // L of each epoch
  double seconds = 0, w = 0;
};

template <class T>
Training train(const Options& o, const DataTensors<T>& t, Model<T>& model, bool fused) {
  const bool leave_one_out = !o.keep_self;
  const std::size_t n = t.x_train.size();
  Tensor<T> keys, values;  // (n, n - 1) for the composed ops
  if (!fused) std::tie(keys, values) = training_keys_values(t.x_train, t.y_train, leave_one_out);
  std::cout << "parametric pooling: training w (w_init " << model.w_init << ", "
            << (fused ? "fused op" : "composed ops: repeat_interleave, softmax, bmm") << ") on "
            << (leave_one_out ? "leave-one-out pairs (" : "all pairs (") << n << " x "
            << (leave_one_out ? n - 1 : n) << "), lr " << o.lr << ", " << o.epochs << " epochs\n";
  Training result;
  const auto start = std::chrono::steady_clock::now();
  for (long epoch = 0; epoch < o.epochs; ++epoch) {
    model.optimizer.zero_grad();
    const Tensor<T> f =
        fused ? model.net.forward_fused(t.x_train, t.x_train, t.y_train, leave_one_out)
              : model.net(t.x_train, keys, values);
    // L = 1/2 sum_i (f(x_i) - y_i)^2: the chapter's MSELoss(reduction='none') / 2, summed.
    Tensor<T> loss = sum(mse_loss(f, t.y_train, "none") * T(0.5));
    loss.backward();
    model.optimizer.step();
    result.losses.push_back(static_cast<double>(loss.item()));
    std::printf("epoch %ld, loss %.6f\n", model.epochs_before + epoch + 1, result.losses.back());
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.w = static_cast<double>(model.net.w().value()(0));
  std::cout << "learned w = " << result.w << "\n";
  const bool finite_losses = std::all_of(result.losses.begin(), result.losses.end(),
                                         [](double l) { return std::isfinite(l); });
  if (!std::isfinite(result.w) || !finite_losses)
    throw UsageError(
        "training diverged (w or the loss is not finite); try a smaller --lr or "
        "--w-init");
  return result;
}

// ---- predict: every training pair as keys, as the chapter does after training -------------------

template <class T>
struct Prediction {
  Tensor<T> y_hat;          // (n_query,)
  xt::xarray<T> attention;  // (n_query, n_train)
};

template <class T>
Prediction<T> predict(const DataTensors<T>& t, Model<T>& model, bool fused) {
  NoGradGuard no_grad;
  Prediction<T> p;
  if (fused) {
    p.y_hat = model.net.forward_fused(t.x_query, t.x_train, t.y_train, false);
    p.attention =
        nw_attention_weights(t.x_query.value(), t.x_train.value(), model.net.w().value()(0), false);
  } else {
    auto [query_keys, query_values] = query_keys_values(t.x_train, t.y_train, t.x_query.size());
    p.y_hat = model.net(t.x_query, query_keys, query_values);
    p.attention = model.net.attention_weights().value();
  }
  for (const T v : p.y_hat.value())
    if (!std::isfinite(v)) throw std::runtime_error("parametric pooling produced NaN or inf");
  return p;
}

// ---- write: every output staged, then moved into place at once ---------------------------------

std::string matrix_csv(const Matrix& m, int precision) {
  std::ostringstream os;
  os.precision(precision);
  for (const auto& row : m) {
    for (std::size_t c = 0; c < row.size(); ++c) os << (c ? "," : "") << row[c];
    os << "\n";
  }
  return os.str();
}

template <class T>
PlotData plot_data(const Data& d, const DataTensors<T>& t, const Pooled<T>& pooled,
                   const Prediction<T>& prediction, const Training& training) {
  PlotData pd;
  pd.x_train = d.x_train, pd.y_train = d.y_train, pd.x_query = d.x_query, pd.y_truth = d.y_truth;
  pd.average = to_vector(pooled.average.value());
  pd.nonparametric = to_vector(pooled.nonparametric.y_hat.value());
  pd.parametric = to_vector(prediction.y_hat.value());
  pd.attention_nonparametric = to_matrix(pooled.nonparametric.weights.value());
  pd.attention_parametric = to_matrix(prediction.attention);
  pd.kernel_label = pooled.kernel_label;
  pd.loss = training.losses;
  for (double sigma : {0.1, 0.2, 0.5, 1.0}) {
    const NWResult<T> r =
        nadaraya_watson(t.x_train, t.y_train, t.x_query, Kernel::Gaussian, static_cast<T>(sigma));
    pd.widths.push_back({sigma, to_vector(r.y_hat.value()), to_matrix(r.weights.value())});
  }
  return pd;
}

nlohmann::json training_json(const Options& o, const Data& d, const Training& training,
                             double w_init, long epochs_before, bool fused) {
  nlohmann::json j;
  j["w_init"] = w_init;
  j["w"] = training.w;
  j["loss"] = training.losses;
  j["lr"] = o.lr;
  j["epochs"] = o.epochs;
  j["kernel"] = o.kernel;
  j["sigma"] = o.sigma;
  j["dtype"] = o.dtype;
  j["n_train"] = d.x_train.size();
  j["n_query"] = d.x_query.size();
  j["train_seconds"] = training.seconds;
  j["seed"] = o.seed;
  j["leave_one_out"] = !o.keep_self;
  j["threads"] = omp_get_max_threads();
  j["impl"] = fused ? "fused" : "composed";
  j["memory_budget_mib"] = o.memory_budget_mib;
  j["data"] = d.source;
  j["epochs_before"] = epochs_before;
  return j;
}

// Returns whether the figures were drawn.
template <class T>
bool stage_outputs(OutputTransaction& outputs, const PlotData& pd, const nlohmann::json& json,
                   bool plots) {
  const int precision = std::is_same_v<T, float> ? 9 : 17;
  std::ostringstream predictions;
  predictions.precision(precision);
  predictions << "x,average,nonparametric,parametric\n";
  for (std::size_t i = 0; i < pd.x_query.size(); ++i)
    predictions << pd.x_query[i] << "," << pd.average[i] << "," << pd.nonparametric[i] << ","
                << pd.parametric[i] << "\n";
  outputs.write("predictions.csv", predictions.str());
  outputs.write("attention_nonparametric.csv", matrix_csv(pd.attention_nonparametric, precision));
  outputs.write("attention_parametric.csv", matrix_csv(pd.attention_parametric, precision));
  outputs.write("training.json", json.dump(2) + "\n");
  return plots && draw_figures(outputs, pd);
}

// ---- the run: load, pool, train, predict, write ------------------------------------------------

template <class T>
int run(const Options& o) {
  Rng rng(o.seed);
  const Data data = load_data(o, rng);
  check_magnitudes(data, o);
  // The chapter initialises w with torch.rand(1): U(0, 1), drawn after the data.
  Model<T> model(o.w_init ? *o.w_init : rng.uniform(), o.lr);
  if (!o.resume_path.empty()) resume(o, model);
  OutputTransaction outputs(o.out_dir);  // checks --out and stages beside it
  check_output_paths(o, OutputTransaction::output_names());
  const DataTensors<T> tensors(data);
  std::cout << "data: " << data.source << ": " << data.x_train.size() << " training points, "
            << data.x_query.size() << " queries; dtype " << o.dtype << ", " << omp_get_max_threads()
            << " thread(s)\n";

  const Pooled<T> pooled = pool(o, data, tensors);
  const bool fused = use_fused(o, data.x_train.size(), data.x_query.size(), sizeof(T));
  const Training training = train(o, tensors, model, fused);
  const Prediction<T> prediction = predict(tensors, model, fused);
  if (!data.y_truth.empty())
    std::cout << "parametric pooling: MSE vs truth "
              << mse(to_vector(prediction.y_hat.value()), data.y_truth) << "\n";

  const PlotData pd = plot_data(data, tensors, pooled, prediction, training);
  const bool figures = stage_outputs<T>(
      outputs, pd, training_json(o, data, training, model.w_init, model.epochs_before, fused),
      !o.no_plots);
  if (!o.save_path.empty()) {
    const nlohmann::json meta = {
        {"epochs_done", model.epochs_before + o.epochs}, {"dtype", o.dtype}, {"seed", o.seed}};
    outputs.add_rename(stage_checkpoint(o.save_path, model.named, model.optimizer, meta),
                       o.save_path);
  }
  outputs.commit();
  std::cout << "wrote " << (std::filesystem::path(o.out_dir) / "predictions.csv").string()
            << ", attention_*.csv, training.json"
            << (figures ? ", plots.gp and " + std::to_string(figure_files().size()) + " figures"
                        : "")
            << " in " << o.out_dir << "\n";
  if (!o.save_path.empty()) std::cout << "saved checkpoint " << o.save_path << "\n";
  return 0;
}

int report(const char* kind, const std::string& message, int status) {
  std::cerr << "nadaraya_watson: " << kind << message << "\n";
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  // Keep freed memory in the heap instead of returning it to the kernel: every training step frees
  // and reallocates arrays of the same sizes, and on virtual machines the page faults of re-mapping
  // them cost more than the arithmetic (14x for --impl composed at n = 4000; docs/performance.md).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  Options options;
  CLI::App app{"Nadaraya-Watson kernel regression as attention pooling (d2l), on tapegrad"};
  add_flags(app, options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report("error: ", std::string(e.what()) + " (see --help)", 2);
  }
  try {
    check_flags(options);
    if (options.threads > 0) omp_set_num_threads(options.threads);
    return options.dtype == "float64" ? run<double>(options) : run<float>(options);
  } catch (const InputError& e) {
    return report("error: ", e.message(), 2);
  } catch (const CheckpointError& e) {
    return report("error: ", e.what(), 2);
  } catch (const UsageError& e) {
    return report("error: ", e.what(), 2);
  } catch (const std::invalid_argument& e) {
    return report("error: ", e.what(), 2);
  } catch (const ToolError& e) {
    return report("error: ", e.what(), 1);
  } catch (const std::exception& e) {
    return report("internal error: ", e.what(), 1);
  }
}
