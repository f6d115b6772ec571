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
//                   [--log-every N] [--quiet]
//
// With no arguments: the chapter's data (seeded), average pooling, nonparametric pooling, 5 epochs
// of leave-one-out training of w with SGD (lr 0.5) through composed ops (nw_logits, softmax, bmm),
// predictions, CSV/JSON outputs and figures in out/.
//
// One pipeline for every d and both tasks (2nd edition, "Attention Pooling by Similarity": x in
// R^d, one width or one per coordinate, classes pooled as one-hot values); d = 1 regression is the
// chapter. Five steps: load (flags, data, checkpoint: all validated before the first epoch), pool
// (average and nonparametric), train, predict, write (one transaction, examples/outputs.h), over
// the model adapter NWModel (examples/nw_program.h). Exit status: 0 on success; 2 on bad input
// (one line on stderr naming the flag or the file and line, nothing written); 1 when gnuplot or dot
// fails, an output cannot be written (a full disk, ulimit -f) or on an internal error (one line,
// nothing written either).
#include <malloc.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "examples/csv.h"
#include "examples/exercise_util.h"
#include "examples/graphviz.h"
#include "examples/nw_program.h"
#include "models/parzen.h"
#include "tapegrad.h"

using namespace tapegrad;

namespace {

// ---- load: the checkpoint the model may resume from ----------------------------------------------

template <class T>
void resume(const Options& options, const Data& data, NWModel<T>& model) {
  const CheckpointContents<T> contents =
      read_checkpoint<T>(options.resume_path, limits::kMaxCheckpointBytes);
  const long epochs_done = checked_epochs_done(contents.meta, options, data);
  restore_checkpoint(contents, model.named(), model.optimizer(), options.resume_path);
  model.w_init = model.w();
  model.epochs_before = epochs_done;
  const bool as_list = !is_chapter(data) && options.widths == "per-coordinate";
  std::cout << "resumed from " << options.resume_path << ": w = " << w_text(model.w_init, as_list)
            << " after " << epochs_done << " epochs\n";
}

// ---- pool: average and nonparametric attention pooling -------------------------------------------

template <class T>
struct Pooled {
  std::vector<double> average;  // (n_query,): mean(y), or the majority class
  NWResult<T> nonparametric;    // y_hat (n_query, C), weights (n_query, n)
  std::string kernel_label;     // "gaussian, sigma = 1"
  // Exercise 1 (2nd ed.): queries where the Parzen rule (largest joint density) agrees with NW.
  std::size_t parzen_agree = 0, parzen_total = 0;
};

// Exercise 1 of the 2nd edition, on the run's queries (classification with the Gaussian kernel):
// Parzen windows pick the class c of largest p(x, y = c) = (1/n) sum_{i: y_i = c} k(x, x_i); NW
// picks the largest p(c | x) = p(x, y = c) / p(x). models/parzen.h says why they agree.
template <class T>
void compare_with_parzen(const Options& options, const Data& data, const NWModel<T>& model,
                         Pooled<T>& pooled) {
  const std::vector<std::int64_t> parzen =
      decide(parzen_log_joint_density(model.x_train().value(), data.labels, data.classes,
                                      model.x_query().value(), static_cast<T>(options.sigma)));
  const std::vector<std::int64_t> nw = argmax_labels(pooled.nonparametric.y_hat.value());
  pooled.parzen_total = nw.size();
  for (std::size_t q = 0; q < nw.size(); ++q) pooled.parzen_agree += parzen[q] == nw[q];
  std::cout << "Parzen windows (gaussian, sigma = " << options.sigma
            << "): the class of largest joint density p(x, y = c) is the nonparametric class at "
            << pooled.parzen_agree << " of " << pooled.parzen_total << " queries\n";
}

template <class T>
Pooled<T> pool(const Options& options, const Data& data, const NWModel<T>& model) {
  const Kernel kernel = kernel_from_string(options.kernel);
  const bool truth = !data.y_truth.empty();
  Pooled<T> pooled;
  // 1. Average pooling: the mean of y, or the majority class.
  if (data.classification) {
    const std::int64_t label = majority_label(data.labels, data.classes);
    pooled.average.assign(data.n_query(), double(label));
    std::cout << "average pooling: the majority class " << label << " for every query\n";
  } else {
    pooled.average = model.average(data.n_query());
    std::cout << "average pooling: f(x) = " << pooled.average.at(0) << " for every query";
    if (truth) std::cout << "; MSE vs truth " << mse(pooled.average, data.y_truth);
    std::cout << "\n";
  }
  // 2. Nonparametric attention pooling of the values (one-hot: class probabilities).
  std::ostringstream label;
  label << to_string(kernel) << ", sigma = " << options.sigma;
  pooled.kernel_label = label.str();
  pooled.nonparametric = model.nonparametric(model.x_query(), kernel, options.sigma);
  std::cout << "nonparametric pooling (" << pooled.kernel_label << ")";
  if (truth && !data.classification)
    std::cout << ": MSE vs truth "
              << mse(to_vector(pooled.nonparametric.y_hat.value()), data.y_truth);
  std::cout << (data.classification
                    ? ": class probabilities of " + std::to_string(data.classes) + " classes\n"
                    : "\n");
  if (pooled.nonparametric.empty_rows)
    std::cout << "note: " << pooled.nonparametric.empty_rows
              << " queries had no training input within the " << to_string(kernel)
              << " kernel's support; each took its nearest training input's value\n";
  if (data.classification && kernel == Kernel::Gaussian)
    compare_with_parzen(options, data, model, pooled);
  return pooled;
}

// ---- train: w by SGD on leave-one-out keys and values ---------------------------------------------

// One epoch's line: "epoch k, loss L", with w after the step for d >= 2 or per-coordinate widths.
void print_epoch(long number, double loss, const std::vector<double>& w, bool show_w) {
  if (show_w)
    std::printf("epoch %ld, loss %.6f, w %s\n", number, loss, w_text(w, true).c_str());
  else
    std::printf("epoch %ld, loss %.6f\n", number, loss);
}

template <class T>
Training train(const Options& options, const Data& data, NWModel<T>& model, bool fused) {
  const bool show_w = data.d >= 2 || options.widths == "per-coordinate";
  model.start_training(fused);
  print_training_plan(options, data, model.w_init, fused);
  const EpochLog log = epoch_log(options, model.epochs_before);
  ProgressLine progress(options.epochs, !options.quiet && stderr_is_terminal());
  Training result;
  std::vector<double> w_before = model.w();
  bool warned = false;
  const auto start = std::chrono::steady_clock::now();
  for (long epoch = 0; epoch < options.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    model.optimizer().zero_grad();
    Tensor<T> loss = model.loss();
    loss.backward();
    model.optimizer().step();
    result.epoch_seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count());
    result.losses.push_back(static_cast<double>(loss.item()));
    result.w_per_epoch.push_back(model.w());
    const long number = model.epochs_before + epoch + 1;
    warn_big_step("nadaraya_watson", data.n_train(), options.lr, w_before, model.w(), number,
                  progress, warned);
    w_before = result.w_per_epoch.back();
    if (log.prints(number)) {  // stdout is line-buffered: each line leaves at once
      progress.erase();
      print_epoch(number, result.losses.back(), w_before, show_w);
    }
    progress.update(epoch + 1);
  }
  progress.erase();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.w = model.w();
  std::cout << "learned w = " << w_text(result.w, options.widths == "per-coordinate") << "\n";
  check_training_finite(result);
  return result;
}

// ---- predict: every training pair as keys --------------------------------------------------------

template <class T>
struct Prediction {
  xt::xarray<T> f;          // (n_query, C): estimates, or class probabilities
  xt::xarray<T> attention;  // (n_query, n_train)
  double train_accuracy = 0;
};

template <class T>
Prediction<T> predict(const Data& data, NWModel<T>& model, bool fused) {
  NoGradGuard no_grad;
  Prediction<T> prediction;
  prediction.f = model.pool(model.x_query(), fused, false, &prediction.attention);
  // A finite but absurd w (one step of --lr 1e300) can still make every weight of a row underflow.
  for (const T v : prediction.f) {
    if (std::isfinite(v)) continue;
    throw UsageError("parametric pooling with the learned w = " + w_text(model.w(), false) +
                     " gives NaN or inf predictions; try a smaller --lr or --w-init");
  }
  if (!data.classification) return prediction;
  // Leave-one-out accuracy of the final model on the training set (always leave-one-out): the
  // fraction of training points whose argmax class, pooled from the other points, is their label.
  const std::vector<double> predicted =
      prediction_column(model.pool(model.x_train(), fused, true), true);
  std::size_t right = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) right += predicted[i] == data.labels[i];
  prediction.train_accuracy = double(right) / double(predicted.size());
  return prediction;
}

// ---- write: every output staged, then moved into place at once -----------------------------------

// The d = 2 figures' plane: a side x side grid over the training inputs' box, estimated by both
// poolings in chunks (each chunk's (rows, n_train, d + 1) intermediates and (rows, C) estimates
// stay near 2e6 elements; the (n_train, C) values are shared by every row).
template <class T>
void plane_estimates(const Options& options, const Data& data, NWModel<T>& model, PlotData& plot) {
  NoGradGuard no_grad;
  plot.plane_n = plane_grid_side(data.n_train());
  plot.plane = plane_grid(data.x_train, plot.plane_n);
  const std::size_t total = plot.plane_n * plot.plane_n;
  const double per_row =
      double(data.n_train()) * 3 + double(std::max<std::size_t>(data.classes, 1));
  const std::size_t chunk = std::max<std::size_t>(1, std::size_t(2e6 / per_row));
  for (std::size_t start = 0; start < total; start += chunk) {
    const std::size_t rows = std::min(chunk, total - start);
    const std::vector<double> points(plot.plane.begin() + 2 * start,
                                     plot.plane.begin() + 2 * (start + rows));
    const Tensor<T> q = as_tensor<T>(points, rows, 2);
    const NWResult<T> np =
        model.nonparametric(q, kernel_from_string(options.kernel), options.sigma);
    for (double v : prediction_column(np.y_hat.value(), data.classification))
      plot.plane_nonparametric.push_back(v);
    for (double v : prediction_column(model.pool(q, false), data.classification))
      plot.plane_parametric.push_back(v);
  }
}

template <class T>
PlotData plot_data(const Options& options, const Data& data, const Pooled<T>& pooled,
                   const Prediction<T>& prediction, const Training& training, NWModel<T>& model) {
  PlotData plot;
  plot.d = data.d, plot.classification = data.classification, plot.classes = data.classes;
  plot.x_train = data.x_train, plot.y_train = data.y_train, plot.x_query = data.x_query,
  plot.y_truth = data.y_truth;
  plot.average = pooled.average;
  plot.nonparametric = prediction_column(pooled.nonparametric.y_hat.value(), data.classification);
  plot.parametric = prediction_column(prediction.f, data.classification);
  plot.attention_nonparametric = to_matrix(pooled.nonparametric.weights.value());
  plot.attention_parametric = to_matrix(prediction.attention);
  plot.kernel_label = pooled.kernel_label;
  plot.loss = training.losses;
  if (options.no_plots) return plot;
  if (is_chapter(data))  // the Gaussian with several widths (2nd edition)
    for (double sigma : {0.1, 0.2, 0.5, 1.0}) {
      const NWResult<T> r = model.nonparametric(model.x_query(), Kernel::Gaussian, sigma);
      plot.widths.push_back({sigma, to_vector(r.y_hat.value()), to_matrix(r.weights.value())});
    }
  if (data.classification && data.d == 1) {
    plot.probabilities_nonparametric = to_matrix(pooled.nonparametric.y_hat.value());
    plot.probabilities_parametric = to_matrix(prediction.f);
  }
  if (data.d == 2) plane_estimates(options, data, model, plot);
  return plot;
}

// Returns whether the figures were drawn.
template <class T>
bool stage_outputs(OutputTransaction& outputs, const Data& data, const Pooled<T>& pooled,
                   const Prediction<T>& prediction, const PlotData& plot,
                   const nlohmann::json& json, bool plots) {
  const int precision = std::is_same_v<T, float> ? 9 : 17;
  const bool single = std::is_same_v<T, float>;
  outputs.write("predictions.csv", predictions_csv(plot, precision));
  if (data.classification) {
    outputs.write(
        "probabilities_nonparametric.csv",
        probabilities_csv(to_matrix(pooled.nonparametric.y_hat.value()), data.classes, single));
    outputs.write("probabilities_parametric.csv",
                  probabilities_csv(to_matrix(prediction.f), data.classes, single));
  }
  outputs.write("attention_nonparametric.csv", matrix_csv(plot.attention_nonparametric, single));
  outputs.write("attention_parametric.csv", matrix_csv(plot.attention_parametric, single));
  outputs.write("training.json", json.dump(2) + "\n");
  return plots && draw_figures(outputs, plot);
}

// --graph: the tape of one composed training step on a few training points (graph_points; the
// loss of the run's task) at w_init, staged as graph.dot and, with Graphviz, graph.png. It is
// recorded on a thread of its own, whose tape is empty, so its positions start at #1.
template <class T>
void stage_graph(OutputTransaction& outputs, const Data& data, const NWModel<T>& model,
                 Written& written) {
  GraphFiles files;
  std::exception_ptr error;
  std::thread recorder([&] {
    try {
      files = write_graph(outputs.staging_dir().string(),
                          model.graph_loss(graph_points(data), model.w_init));
    } catch (...) {
      error = std::current_exception();
    }
  });
  recorder.join();
  if (error) std::rethrow_exception(error);
  outputs.add_written("graph.dot");
  written.graph_dot = true;
  if (files.png.empty()) return;
  outputs.add_written("graph.png");
  written.graph_png = true;
}

// ---- the run: load, pool, train, predict, write --------------------------------------------------

template <class T>
int run(const Options& options) {
  Rng rng(options.seed);
  const Data data = load_data(options, rng);
  check_magnitudes(data, options);
  check_memory_budget(options, data, sizeof(T));  // --impl composed: refused before any work
  // The chapter initialises w with torch.rand(1): U(0, 1), drawn after the data; with
  // per-coordinate widths every coordinate of w starts at this one draw.
  NWModel<T> model(data, options, options.w_init ? *options.w_init : rng.uniform());
  OutputTransaction outputs(options.out_dir);  // checks --out and stages inside it
  check_output_paths(options, OutputTransaction::output_names());
  outputs.hold_checkpoint(options.resume_path, options.save_path);  // runs on one take turns
  if (!options.resume_path.empty()) resume(options, data, model);
  print_data(options, data);

  const Pooled<T> pooled = pool(options, data, model);
  const bool fused = use_fused(options, data, sizeof(T));
  const Training training = train(options, data, model, fused);
  const Prediction<T> prediction = predict(data, model, fused);
  print_prediction_summary(data, to_vector(prediction.f), prediction.train_accuracy);

  const PlotData plot = plot_data(options, data, pooled, prediction, training, model);
  nlohmann::json json =
      common_json(options, data, training, model.w_init, model.epochs_before, fused);
  if (data.classification) json["train_accuracy"] = prediction.train_accuracy;
  if (pooled.parzen_total)
    json["parzen_agreement"] = {{"agree", pooled.parzen_agree}, {"queries", pooled.parzen_total}};
  Written written;
  written.script = !options.no_plots;
  if (stage_outputs(outputs, data, pooled, prediction, plot, json, !options.no_plots))
    written.figures = figure_files(plot).size();
  if (options.graph) stage_graph(outputs, data, model, written);
  stage_save(outputs, options, data, model);
  outputs.commit();
  print_written(options, data, written);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Keep freed memory in the heap instead of returning it to the kernel: every training step frees
  // and reallocates arrays of the same sizes, and on virtual machines the page faults of re-mapping
  // them cost more than the arithmetic (docs/performance.md).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // Every line leaves as soon as it is complete, into a pipe or a file too: a long run's progress
  // is readable while it runs (std::cout writes through stdio, synchronised with it).
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Options options;
  CLI::App app{"Nadaraya-Watson kernel regression as attention pooling (d2l), on tapegrad"};
  add_flags(app, options);
  return exercise::run_main(app, "nadaraya_watson", argc, argv, [&options] {
    check_flags(options);
    if (options.threads > 0) omp_set_num_threads(options.threads);
    return options.dtype == "float64" ? run<double>(options) : run<float>(options);
  });
}
