// nadaraya_watson: the d2l chapter "Attention Pooling: Nadaraya-Watson Kernel Regression", end to
// end.
//
//   nadaraya_watson [--train FILE] [--query FILE] [--epochs N] [--lr X] [--w-init X] [--seed N]
//                   [--kernel gaussian|boxcar|constant|epanechikov] [--sigma X]
//                   [--dtype float32|float64] [--threads N] [--out DIR] [--no-plots] [--keep-self]
//                   [--impl composed|fused] [--memory-budget MIB] [--n-train N]
//                   [--save PATH] [--resume PATH] [--graph]
//                   [--dataset chapter|chapter2d|surface|moons] [--task regression|classification]
//                   [--widths shared|per-coordinate] [--loss squared|cross-entropy]
//
// With no arguments: the chapter's data (seeded), average pooling, nonparametric pooling, 5 epochs
// of leave-one-out training of NWKernelRegression with SGD (lr 0.5) through the chapter's own ops
// (repeat_interleave, softmax, bmm), predictions, CSV/JSON outputs and figures in out/.
//
// This file is the chapter's path (d = 1 regression: the scalar model NWKernelRegression, exactly
// the chapter's numbers); d >= 2 and classification take the d-dimensional path, examples/nw_nd.cpp,
// through the same five steps.
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

#include <xtensor/xview.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "examples/csv.h"
#include "examples/graphviz.h"
#include "examples/inputs.h"
#include "examples/nw_program.h"
#include "examples/options.h"
#include "examples/outputs.h"
#include "examples/plots.h"
#include "io/checkpoint.h"
#include "data/datasets.h"
#include "models/nadaraya_watson.h"
#include "optim/sgd.h"
#include "tapegrad.h"

using namespace tapegrad;

namespace {

// The data as tensors of the run's dtype.
template <class T>
struct DataTensors {
  Tensor<T> x_train, y_train, x_query;
  explicit DataTensors(const Data& data)
      : x_train(as_tensor<T>(data.x_train)),
        y_train(as_tensor<T>(data.y_train)),
        x_query(as_tensor<T>(data.x_query)) {}
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

template <class T>
void resume(const Options& options, const Data& data, Model<T>& model) {
  const CheckpointContents<T> contents = read_checkpoint<T>(options.resume_path);
  const long epochs_done = checked_epochs_done(contents.meta, options, data);
  restore_checkpoint(contents, model.named, model.optimizer, options.resume_path);
  model.w_init = static_cast<double>(model.net.w().value()(0));
  model.epochs_before = epochs_done;
  std::cout << "resumed from " << options.resume_path << ": w = " << model.w_init << " after "
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
Pooled<T> pool(const Options& options, const Data& data, const DataTensors<T>& tensors) {
  const Kernel kernel = kernel_from_string(options.kernel);
  const bool truth = !data.y_truth.empty();
  Pooled<T> pooled;
  // 1. Average pooling: f(x) = mean(y).
  pooled.average = average_pooling(tensors.y_train, data.x_query.size());
  std::cout << "average pooling: f(x) = " << pooled.average.value()(0) << " for every query";
  if (truth) std::cout << "; MSE vs truth " << mse(to_vector(pooled.average.value()), data.y_truth);
  std::cout << "\n";
  // 2. Nonparametric attention pooling with the chosen kernel.
  std::ostringstream label;
  label << to_string(kernel) << ", sigma = " << options.sigma;
  pooled.kernel_label = label.str();
  pooled.nonparametric = nadaraya_watson(tensors.x_train, tensors.y_train, tensors.x_query, kernel,
                                         static_cast<T>(options.sigma));
  std::cout << "nonparametric pooling (" << pooled.kernel_label << ")";
  if (truth)
    std::cout << ": MSE vs truth "
              << mse(to_vector(pooled.nonparametric.y_hat.value()), data.y_truth);
  std::cout << "\n";
  if (pooled.nonparametric.empty_rows)
    std::cout << "note: " << pooled.nonparametric.empty_rows
              << " queries had no training input within the " << to_string(kernel)
              << " kernel's support; each took its nearest training input's value\n";
  return pooled;
}

// ---- train: w by SGD on leave-one-out keys and values -------------------------------------------

// The composed forward and backward keep about this many (n, m) arrays alive at their peak (keys,
// values, the repeated queries, differences, scaled squares, softmax weights and their gradients):
// measured as peak RSS of --impl composed --dtype float64 --n-train 3000 --epochs 1, 801 MB =
// 11.1 x (3000 x 2999 x 8 bytes).
constexpr double kComposedArraysAlive = 11;

template <class T>
Training train(const Options& options, const DataTensors<T>& tensors, Model<T>& model, bool fused) {
  const bool leave_one_out = !options.keep_self;
  const bool per_coordinate = options.widths == "per-coordinate";  // w of shape (1,) all the same
  const std::size_t n = tensors.x_train.size();
  Tensor<T> keys, values;  // (n, n - 1) for the composed ops
  if (!fused)
    std::tie(keys, values) = training_keys_values(tensors.x_train, tensors.y_train, leave_one_out);
  std::cout << "parametric pooling: training w (w_init " << model.w_init << ", "
            << (fused ? "fused op" : "composed ops: repeat_interleave, softmax, bmm") << ") on "
            << (leave_one_out ? "leave-one-out pairs (" : "all pairs (") << n << " x "
            << (leave_one_out ? n - 1 : n) << "), lr " << options.lr << ", " << options.epochs
            << " epochs\n";
  Training result;
  const auto start = std::chrono::steady_clock::now();
  for (long epoch = 0; epoch < options.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    model.optimizer.zero_grad();
    const Tensor<T> f = fused ? model.net.forward_fused(tensors.x_train, tensors.x_train,
                                                        tensors.y_train, leave_one_out)
                              : model.net(tensors.x_train, keys, values);
    // L = 1/2 sum_i (f(x_i) - y_i)^2: the chapter's MSELoss(reduction='none') / 2, summed.
    Tensor<T> loss = sum(mse_loss(f, tensors.y_train, "none") * T(0.5));
    loss.backward();
    model.optimizer.step();
    result.epoch_seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count());
    result.losses.push_back(static_cast<double>(loss.item()));
    result.w_per_epoch.push_back({double(model.net.w().value()(0))});
    if (per_coordinate)  // w after this epoch's step, as the d-dimensional path prints it
      std::printf("epoch %ld, loss %.6f, w %s\n", model.epochs_before + epoch + 1,
                  result.losses.back(), w_text({double(model.net.w().value()(0))}, true).c_str());
    else
      std::printf("epoch %ld, loss %.6f\n", model.epochs_before + epoch + 1, result.losses.back());
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.w = {static_cast<double>(model.net.w().value()(0))};
  std::cout << "learned w = " << w_text(result.w, per_coordinate) << "\n";
  check_training_finite(result);
  return result;
}

// ---- predict: every training pair as keys, as the chapter does after training -------------------

template <class T>
struct Prediction {
  Tensor<T> y_hat;          // (n_query,)
  xt::xarray<T> attention;  // (n_query, n_train)
};

template <class T>
Prediction<T> predict(const DataTensors<T>& tensors, Model<T>& model, bool fused) {
  NoGradGuard no_grad;
  Prediction<T> prediction;
  if (fused) {
    prediction.y_hat =
        model.net.forward_fused(tensors.x_query, tensors.x_train, tensors.y_train, false);
    prediction.attention = nw_attention_weights(tensors.x_query.value(), tensors.x_train.value(),
                                                model.net.w().value()(0), false);
  } else {
    auto [query_keys, query_values] =
        query_keys_values(tensors.x_train, tensors.y_train, tensors.x_query.size());
    prediction.y_hat = model.net(tensors.x_query, query_keys, query_values);
    prediction.attention = model.net.attention_weights().value();
  }
  // A finite but absurd w (one step of --lr 1e300) can still make every weight of a row underflow.
  for (const T v : prediction.y_hat.value()) {
    if (std::isfinite(v)) continue;
    std::ostringstream message;
    message << "parametric pooling with the learned w = " << model.net.w().value()(0)
            << " gives NaN or inf predictions; try a smaller --lr or --w-init";
    throw UsageError(message.str());
  }
  return prediction;
}

// ---- write: every output staged, then moved into place at once ---------------------------------

template <class T>
PlotData plot_data(const Data& data, const DataTensors<T>& tensors, const Pooled<T>& pooled,
                   const Prediction<T>& prediction, const Training& training) {
  PlotData plot;
  plot.x_train = data.x_train, plot.y_train = data.y_train, plot.x_query = data.x_query,
  plot.y_truth = data.y_truth;
  plot.average = to_vector(pooled.average.value());
  plot.nonparametric = to_vector(pooled.nonparametric.y_hat.value());
  plot.parametric = to_vector(prediction.y_hat.value());
  plot.attention_nonparametric = to_matrix(pooled.nonparametric.weights.value());
  plot.attention_parametric = to_matrix(prediction.attention);
  plot.kernel_label = pooled.kernel_label;
  plot.loss = training.losses;
  for (double sigma : {0.1, 0.2, 0.5, 1.0}) {
    const NWResult<T> r = nadaraya_watson(tensors.x_train, tensors.y_train, tensors.x_query,
                                          Kernel::Gaussian, static_cast<T>(sigma));
    plot.widths.push_back({sigma, to_vector(r.y_hat.value()), to_matrix(r.weights.value())});
  }
  return plot;
}

// Returns whether the figures were drawn.
template <class T>
bool stage_outputs(OutputTransaction& outputs, const PlotData& plot, const nlohmann::json& json,
                   bool plots) {
  const int precision = std::is_same_v<T, float> ? 9 : 17;
  std::ostringstream predictions;
  predictions.precision(precision);
  predictions << "x,average,nonparametric,parametric\n";
  for (std::size_t i = 0; i < plot.x_query.size(); ++i)
    predictions << plot.x_query[i] << "," << plot.average[i] << "," << plot.nonparametric[i] << ","
                << plot.parametric[i] << "\n";
  outputs.write("predictions.csv", predictions.str());
  outputs.write("attention_nonparametric.csv", matrix_csv(plot.attention_nonparametric, precision));
  outputs.write("attention_parametric.csv", matrix_csv(plot.attention_parametric, precision));
  outputs.write("training.json", json.dump(2) + "\n");
  return plots && draw_figures(outputs, plot);
}

// --graph: the tape of one training step of the chapter's composed model (on the first 20 training
// points, so that the picture stays readable; its shapes say so), staged as graph.dot and, when
// Graphviz is installed, graph.png.
template <class T>
void stage_graph(OutputTransaction& outputs, const DataTensors<T>& tensors, double w_init,
                 bool leave_one_out) {
  const std::size_t n = std::min<std::size_t>(tensors.x_train.size(), 20);
  const Tensor<T> x(xt::xarray<T>(xt::view(tensors.x_train.value(), xt::range(0, n))));
  const Tensor<T> y(xt::xarray<T>(xt::view(tensors.y_train.value(), xt::range(0, n))));
  NWKernelRegression<T> net(static_cast<T>(w_init));
  auto [keys, values] = training_keys_values(x, y, leave_one_out);
  const Tensor<T> loss = sum(mse_loss(net(x, keys, values), y, "none") * T(0.5));
  const GraphFiles files = write_graph(outputs.staging_dir().string(), loss);
  outputs.add_written("graph.dot");
  if (!files.png.empty()) outputs.add_written("graph.png");
}

// ---- the run: load, pool, train, predict, write ------------------------------------------------

// The chapter's path: d = 1 regression with the scalar model.
template <class T>
int run_chapter(const Options& options, const Data& data, double w_init) {
  Model<T> model(w_init, options.lr);
  if (!options.resume_path.empty()) resume(options, data, model);
  OutputTransaction outputs(options.out_dir);  // checks --out and stages beside it
  check_output_paths(options, OutputTransaction::output_names());
  const DataTensors<T> tensors(data);
  std::cout << "data: " << data.source << ": " << data.x_train.size() << " training points, "
            << data.x_query.size() << " queries; dtype " << options.dtype << ", "
            << omp_get_max_threads() << " thread(s)\n";

  const Pooled<T> pooled = pool(options, data, tensors);
  const bool fused =
      use_fused(options, data.x_train.size(), data.x_query.size(), sizeof(T), kComposedArraysAlive);
  const Training training = train(options, tensors, model, fused);
  const Prediction<T> prediction = predict(tensors, model, fused);
  if (!data.y_truth.empty())
    std::cout << "parametric pooling: MSE vs truth "
              << mse(to_vector(prediction.y_hat.value()), data.y_truth) << "\n";

  const PlotData plot = plot_data(data, tensors, pooled, prediction, training);
  const bool figures = stage_outputs<T>(
      outputs, plot,
      common_json(options, data, training, {model.w_init}, model.epochs_before, fused),
      !options.no_plots);
  if (options.graph) stage_graph(outputs, tensors, model.w_init, !options.keep_self);
  stage_save(outputs, options, data, model.named, model.optimizer,
             model.epochs_before + options.epochs);
  outputs.commit();
  std::cout << "wrote " << (std::filesystem::path(options.out_dir) / "predictions.csv").string()
            << ", attention_*.csv, training.json"
            << (figures ? ", plots.gp and " + std::to_string(figure_files(plot).size()) + " figures"
                        : "")
            << " in " << options.out_dir << "\n";
  if (!options.save_path.empty()) std::cout << "saved checkpoint " << options.save_path << "\n";
  return 0;
}

// ---- the run: load, pool, train, predict, write ------------------------------------------------

template <class T>
int run(const Options& options) {
  Rng rng(options.seed);
  const Data data = load_data(options, rng);
  check_magnitudes(data, options);
  // The chapter initialises w with torch.rand(1): U(0, 1), drawn after the data; with
  // per-coordinate widths every coordinate of w starts at this one draw.
  const double w_init = options.w_init ? *options.w_init : rng.uniform();
  if (data.d == 1 && !data.classification) return run_chapter<T>(options, data, w_init);
  return run_nd<T>(options, data, w_init);
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
