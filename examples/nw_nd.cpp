// The d-dimensional path of the nadaraya_watson program (d2l 2nd edition, "Attention Pooling by
// Similarity"): inputs x in R^d, one shared width or one per coordinate, and classification by
// pooling one-hot values into class probabilities. The chapter's scalar path (d = 1 regression) is
// examples/nadaraya_watson.cpp; this file takes d >= 2, and classification for every d, through
// the same five steps: load, pool, train, predict, write.
//
//   X (n, d) training inputs, V (n, C) values (regression: C = 1, V = y; classification: one-hot)
//   s_ij = sum_k ((q_ik - x_jk) w_k)^2      w (1,) shared or (d,) per coordinate
//   p_ij = softmax_j(-s_ij / 2),  f_i = sum_j p_ij v_j
//   losses: regression and --loss squared   L = 1/2 sum_i ||f_i - v_i||^2
//           --loss cross-entropy           L = -sum_i log f_i[y_i], stably from the logits
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <xtensor/xview.hpp>

#include "examples/nw_program.h"
#include "examples/outputs.h"
#include "models/checkpoint.h"
#include "models/nadaraya_watson.h"
#include "models/parzen.h"
#include "models/sgd.h"
#include "ops/attention_nd.h"
#include "tapegrad.h"

namespace tapegrad {

namespace {

// The data as tensors of the run's dtype.
template <class T>
struct NDTensors {
  Tensor<T> x_train, y_train, values, x_query;  // (n, d), (n,), (n, C), (n_query, d)
  std::vector<std::int64_t> labels;             // classification: y_train as labels
  explicit NDTensors(const Data& data)
      : x_train(as_tensor<T>(data.x_train, data.n_train(), data.d)),
        y_train(as_tensor<T>(data.y_train)),
        x_query(as_tensor<T>(data.x_query, data.n_query(), data.d)),
        labels(data.labels) {
    values = data.classification ? one_hot<T>(labels, data.classes)
                                 : as_tensor<T>(data.y_train, data.n_train(), 1);
  }
};

// The class with the most training examples, ties to the smallest label.
std::int64_t majority_label(const std::vector<std::int64_t>& labels, std::size_t classes) {
  std::vector<std::size_t> count(classes, 0);
  for (std::int64_t label : labels) ++count[static_cast<std::size_t>(label)];
  return static_cast<std::int64_t>(std::max_element(count.begin(), count.end()) - count.begin());
}

// ---- load: the model, and the checkpoint it may resume from ------------------------------------

template <class T>
struct NDModel {
  NWKernelRegression<T> net;
  SGD<T> optimizer;
  NamedTensors<T> named;       // what a checkpoint holds: {"w", w}, w of shape (1,) or (d,)
  std::vector<double> w_init;  // every coordinate starts at one value, unless resumed
  long epochs_before = 0;      // epochs done before this run (from --resume)
  NDModel(std::size_t d, const Options& options, double w0)
      : net(d, widths_from_string(options.widths), static_cast<T>(w0)),
        optimizer(net.parameters(), static_cast<T>(options.lr)) {
    named = {{"w", net.w()}};
    w_init.assign(w().size(), w0);  // as given (the chapter's path writes it the same way)
  }
  std::vector<double> w() { return to_vector(net.w().value()); }
};

template <class T>
void resume(const Options& options, const Data& data, NDModel<T>& model) {
  const CheckpointContents<T> contents = read_checkpoint<T>(options.resume_path);
  const long epochs_done = checked_epochs_done(contents.meta, options, data);
  restore_checkpoint(contents, model.named, model.optimizer, options.resume_path);
  model.w_init = model.w();
  model.epochs_before = epochs_done;
  std::cout << "resumed from " << options.resume_path
            << ": w = " << w_text(model.w_init, options.widths == "per-coordinate") << " after "
            << epochs_done << " epochs\n";
}

// ---- pool: average and nonparametric attention pooling -----------------------------------------

template <class T>
struct NDPooled {
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
void compare_with_parzen(const Options& options, const Data& data, const NDTensors<T>& tensors,
                         NDPooled<T>& pooled) {
  const xt::xarray<T> log_joint =
      parzen_log_joint_density(tensors.x_train.value(), data.labels, data.classes,
                               tensors.x_query.value(), static_cast<T>(options.sigma));
  const std::vector<std::int64_t> parzen = decide(log_joint);
  const std::vector<std::int64_t> nw = argmax_labels(pooled.nonparametric.y_hat.value());
  pooled.parzen_total = nw.size();
  for (std::size_t q = 0; q < nw.size(); ++q) pooled.parzen_agree += parzen[q] == nw[q];
  std::cout << "Parzen windows (gaussian, sigma = " << options.sigma
            << "): the class of largest joint density p(x, y = c) is the nonparametric class at "
            << pooled.parzen_agree << " of " << pooled.parzen_total << " queries\n";
}

template <class T>
NDPooled<T> pool(const Options& options, const Data& data, const NDTensors<T>& tensors) {
  const Kernel kernel = kernel_from_string(options.kernel);
  const bool truth = !data.y_truth.empty();
  NDPooled<T> pooled;
  // 1. Average pooling: the mean of y, or the majority class.
  if (data.classification) {
    const std::int64_t label = majority_label(data.labels, data.classes);
    pooled.average.assign(data.n_query(), double(label));
    std::cout << "average pooling: the majority class " << label << " for every query\n";
  } else {
    pooled.average = to_vector(average_pooling(tensors.y_train, data.n_query()).value());
    std::cout << "average pooling: f(x) = " << pooled.average.at(0) << " for every query";
    if (truth) std::cout << "; MSE vs truth " << mse(pooled.average, data.y_truth);
    std::cout << "\n";
  }
  // 2. Nonparametric attention pooling of the values (one-hot: class probabilities).
  std::ostringstream label;
  label << to_string(kernel) << ", sigma = " << options.sigma;
  pooled.kernel_label = label.str();
  pooled.nonparametric = nadaraya_watson(tensors.x_train, tensors.values, tensors.x_query, kernel,
                                         static_cast<T>(options.sigma));
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
    compare_with_parzen(options, data, tensors, pooled);
  return pooled;
}

// ---- train: w by SGD on leave-one-out keys and values -------------------------------------------

// The composed forward and backward keep about this many (n, m) arrays alive at their peak: the
// (n, m, d) keys, the two differences of nearest_shifted_logits, their product and its gradients
// count d each, the (n, m, C) values and the bmm's gradient C each, and the (n, m) logits, weights
// and their gradients a few. Measured as peak RSS of --impl composed --dtype float64 --epochs 1 on
// n = 1200 regression data with two queries, minus the same run with --impl fused (/usr/bin/time
// -f %M): 16.4 arrays of 1200 x 1199 at d = 2 and 58.2 at d = 8 (this formula: 22 and 64).
double composed_arrays_alive(std::size_t d, std::size_t classes) {
  return 6.0 + 7.0 * double(d) + 2.0 * double(std::max<std::size_t>(classes, 1));
}

// The composed model's training keys and values (and the keys' labels, for the cross-entropy).
template <class T>
struct TrainingPairs {
  Tensor<T> keys, values;               // (n, m, d), (n, m, C)
  xt::xarray<std::int64_t> key_labels;  // (n, m)
};

// One epoch's loss through the composed ops: the model's forward on the training pairs.
template <class T>
Tensor<T> composed_loss(bool cross_entropy, const NDTensors<T>& tensors, NDModel<T>& model,
                        const TrainingPairs<T>& pairs) {
  const Tensor<T> f = model.net.forward(tensors.x_train, pairs.keys, pairs.values);  // (n, C)
  if (cross_entropy) return nw_cross_entropy(model.net.logits(), pairs.key_labels, tensors.labels);
  return squared_loss(f, tensors.values);  // 1/2 sum_i ||f_i - v_i||^2
}

// The same loss through the fused ops (O(n) memory): the queries are the training inputs.
template <class T>
Tensor<T> fused_loss(bool cross_entropy, const NDTensors<T>& tensors, NDModel<T>& model,
                     bool leave_one_out) {
  const Tensor<T>& x = tensors.x_train;
  if (cross_entropy)
    return nw_cross_entropy_nd(x, x, tensors.labels, tensors.labels, model.net.w(), leave_one_out);
  return squared_loss(nw_attention_pool_nd(x, x, tensors.values, model.net.w(), leave_one_out),
                      tensors.values);
}

void print_training_plan(const Options& options, const std::vector<double>& w_init, std::size_t n,
                         bool fused) {
  const bool leave_one_out = !options.keep_self;
  std::cout << "parametric pooling: training w (w_init "
            << w_text(w_init, options.widths == "per-coordinate") << ", " << options.widths
            << " widths, "
            << (fused ? "fused op" : "composed ops: weighted_sq_distances, softmax, bmm") << ") on "
            << (leave_one_out ? "leave-one-out pairs (" : "all pairs (") << n << " x "
            << (leave_one_out ? n - 1 : n) << "), " << loss_name(options) << " loss, lr "
            << options.lr << ", " << options.epochs << " epochs\n";
}

template <class T>
Training train(const Options& options, const Data& data, const NDTensors<T>& tensors,
               NDModel<T>& model, bool fused) {
  const bool leave_one_out = !options.keep_self;
  const bool cross_entropy = loss_name(options) == "cross-entropy";
  const bool show_w = data.d >= 2 || options.widths == "per-coordinate";
  const bool as_list = options.widths == "per-coordinate";
  TrainingPairs<T> pairs;
  if (!fused) {
    std::tie(pairs.keys, pairs.values) =
        training_keys_values(tensors.x_train, tensors.values, leave_one_out);
    if (cross_entropy) pairs.key_labels = training_key_labels(tensors.labels, leave_one_out);
  }
  print_training_plan(options, model.w_init, data.n_train(), fused);
  Training result;
  const auto start = std::chrono::steady_clock::now();
  for (long epoch = 0; epoch < options.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    model.optimizer.zero_grad();
    Tensor<T> loss = fused ? fused_loss(cross_entropy, tensors, model, leave_one_out)
                           : composed_loss(cross_entropy, tensors, model, pairs);
    loss.backward();
    model.optimizer.step();
    result.epoch_seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count());
    result.losses.push_back(static_cast<double>(loss.item()));
    result.w_per_epoch.push_back(model.w());
    const long number = model.epochs_before + epoch + 1;
    if (show_w)  // w after this epoch's step
      std::printf("epoch %ld, loss %.6f, w %s\n", number, result.losses.back(),
                  w_text(model.w(), true).c_str());
    else
      std::printf("epoch %ld, loss %.6f\n", number, result.losses.back());
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.w = model.w();
  std::cout << "learned w = " << w_text(result.w, as_list) << "\n";
  check_training_finite(result);
  return result;
}

// ---- predict: every training pair as keys ------------------------------------------------------

template <class T>
struct NDPrediction {
  xt::xarray<T> f;          // (n_query, C): estimates, or class probabilities
  xt::xarray<T> attention;  // (n_query, n_train)
  double train_accuracy = 0;
};

// The parametric attention weights of every query on every training input, by plain loops (the
// fused path's picture; the composed path keeps the model's own):
//   p_ij = softmax_j(-1/2 sum_k ((q_ik - x_jk) w_k)^2)
template <class T>
xt::xarray<T> attention_matrix(const xt::xarray<T>& queries, const xt::xarray<T>& x,
                               const xt::xarray<T>& w) {
  const std::size_t nq = queries.shape()[0], n = x.shape()[0], d = x.shape()[1];
  xt::xarray<T> p = xt::zeros<T>({nq, n});
#pragma omp parallel for
  for (std::size_t i = 0; i < nq; ++i) {
    T largest = -std::numeric_limits<T>::infinity();
    for (std::size_t j = 0; j < n; ++j) {
      T s = 0;
      for (std::size_t k = 0; k < d; ++k) {
        const T a = (queries(i, k) - x(j, k)) * w(w.size() == 1 ? 0 : k);
        s += a * a;
      }
      p(i, j) = T(-0.5) * s;
      largest = std::max(largest, p(i, j));
    }
    T total = 0;
    for (std::size_t j = 0; j < n; ++j) total += (p(i, j) = std::exp(p(i, j) - largest));
    for (std::size_t j = 0; j < n; ++j) p(i, j) /= total;
  }
  return p;
}

// Leave-one-out accuracy of the final model on the training set (always leave-one-out): the
// fraction of training points whose argmax class, pooled from the other points, is their label.
template <class T>
double train_accuracy(const NDTensors<T>& tensors, NDModel<T>& model, bool fused) {
  const Tensor<T>& x = tensors.x_train;
  xt::xarray<T> p;
  if (fused) {
    p = nw_attention_pool_nd(x, x, tensors.values, model.net.w(), true).value();
  } else {
    auto [keys, values] = training_keys_values(x, tensors.values, true);
    p = model.net.forward(x, keys, values).value();
  }
  const std::vector<std::int64_t> predicted = argmax_labels(p);
  std::size_t right = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) right += predicted[i] == tensors.labels[i];
  return double(right) / double(predicted.size());
}

template <class T>
NDPrediction<T> predict(const Data& data, const NDTensors<T>& tensors, NDModel<T>& model,
                        bool fused) {
  NoGradGuard no_grad;
  NDPrediction<T> prediction;
  if (fused) {
    prediction.f =
        nw_attention_pool_nd(tensors.x_query, tensors.x_train, tensors.values, model.net.w())
            .value();
    prediction.attention =
        attention_matrix(tensors.x_query.value(), tensors.x_train.value(), model.net.w().value());
  } else {
    prediction.f = model.net.predict(tensors.x_query, tensors.x_train, tensors.values).value();
    prediction.attention = model.net.attention_weights().value();
  }
  // A finite but absurd w can still make every weight of a row underflow.
  for (const T v : prediction.f) {
    if (std::isfinite(v)) continue;
    throw UsageError("parametric pooling with the learned w = " + w_text(model.w(), false) +
                     " gives NaN or inf predictions; try a smaller --lr or --w-init");
  }
  if (data.classification) prediction.train_accuracy = train_accuracy(tensors, model, fused);
  return prediction;
}

void print_prediction_summary(const Data& data, const std::vector<double>& parametric,
                              double accuracy) {
  if (data.classification)
    std::cout << "parametric pooling: leave-one-out accuracy on the training set " << accuracy
              << "\n";
  else if (!data.y_truth.empty())
    std::cout << "parametric pooling: MSE vs truth " << mse(parametric, data.y_truth) << "\n";
}

// ---- write: every output staged, then moved into place at once ---------------------------------

// A (rows, C) estimate as the predictions.csv column: the value (C = 1) or the argmax label.
template <class T>
std::vector<double> prediction_column(const xt::xarray<T>& f, bool classification) {
  if (!classification) return to_vector(f);
  std::vector<double> labels;
  for (std::int64_t label : argmax_labels(f)) labels.push_back(double(label));
  return labels;
}

// The d = 2 figures' plane: an n x n grid over the training inputs' box, estimated by both
// poolings in chunks (each chunk's (rows, n_train, d) intermediates stay near 2e6 elements).
template <class T>
void plane_estimates(const Options& options, const Data& data, const NDTensors<T>& tensors,
                     NDModel<T>& model, PlotData& plot) {
  NoGradGuard no_grad;
  plot.plane_n = 60;
  plot.plane = plane_grid(data.x_train, plot.plane_n);
  const std::size_t total = plot.plane_n * plot.plane_n;
  const double per_row =
      double(data.n_train()) * double(2 + std::max<std::size_t>(data.classes, 1));
  const std::size_t chunk = std::max<std::size_t>(1, std::size_t(2e6 / per_row));
  for (std::size_t start = 0; start < total; start += chunk) {
    const std::size_t rows = std::min(chunk, total - start);
    const std::vector<double> points(plot.plane.begin() + 2 * start,
                                     plot.plane.begin() + 2 * (start + rows));
    const Tensor<T> q = as_tensor<T>(points, rows, 2);
    const NWResult<T> np =
        nadaraya_watson(tensors.x_train, tensors.values, q, kernel_from_string(options.kernel),
                        static_cast<T>(options.sigma));
    const Tensor<T> p = model.net.predict(q, tensors.x_train, tensors.values);
    for (double v : prediction_column(np.y_hat.value(), data.classification))
      plot.plane_nonparametric.push_back(v);
    for (double v : prediction_column(p.value(), data.classification))
      plot.plane_parametric.push_back(v);
  }
}

template <class T>
PlotData plot_data(const Options& options, const Data& data, const NDTensors<T>& tensors,
                   const NDPooled<T>& pooled, const NDPrediction<T>& prediction,
                   const Training& training, NDModel<T>& model) {
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
  if (data.classification && data.d == 1) {
    plot.probabilities_nonparametric = to_matrix(pooled.nonparametric.y_hat.value());
    plot.probabilities_parametric = to_matrix(prediction.f);
  }
  if (data.d == 2 && !options.no_plots) plane_estimates(options, data, tensors, model, plot);
  return plot;
}

// predictions.csv: the query's coordinates, then the three poolings' estimates (values, or labels
// as integers for classification).
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

std::string probabilities_csv(const Matrix& p, std::size_t classes, int precision) {
  std::string header;
  for (std::size_t c = 0; c < classes; ++c) header += (c ? ",p" : "p") + std::to_string(c);
  return header + "\n" + matrix_csv(p, precision);
}

// Returns whether the figures were drawn.
template <class T>
bool stage_outputs(OutputTransaction& outputs, const Data& data, const NDPooled<T>& pooled,
                   const NDPrediction<T>& prediction, const PlotData& plot,
                   const nlohmann::json& json, bool plots) {
  const int precision = std::is_same_v<T, float> ? 9 : 17;
  outputs.write("predictions.csv", predictions_csv(plot, precision));
  if (data.classification) {
    outputs.write(
        "probabilities_nonparametric.csv",
        probabilities_csv(to_matrix(pooled.nonparametric.y_hat.value()), data.classes, precision));
    outputs.write("probabilities_parametric.csv",
                  probabilities_csv(to_matrix(prediction.f), data.classes, precision));
  }
  outputs.write("attention_nonparametric.csv", matrix_csv(plot.attention_nonparametric, precision));
  outputs.write("attention_parametric.csv", matrix_csv(plot.attention_parametric, precision));
  outputs.write("training.json", json.dump(2) + "\n");
  return plots && draw_figures(outputs, plot);
}

// The training points --graph draws: the first 20, plus for classification a second example of
// any label that appears once among them (leave-one-out cross-entropy needs a key of each row's
// class; every label has a second example in the training set).
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

// --graph: the tape of one composed training step on a few training points (graph_points; the
// loss of the run's task), staged as graph.dot and, when Graphviz is installed, graph.png.
template <class T>
void stage_graph(OutputTransaction& outputs, const Options& options, const Data& data,
                 const NDTensors<T>& tensors, const std::vector<double>& w_init) {
  const std::vector<std::size_t> points = graph_points(data);
  const bool leave_one_out = !options.keep_self;
  const Tensor<T> x(xt::xarray<T>(xt::view(tensors.x_train.value(), xt::keep(points), xt::all())));
  const Tensor<T> v(xt::xarray<T>(xt::view(tensors.values.value(), xt::keep(points), xt::all())));
  std::vector<std::int64_t> labels;
  for (std::size_t i : points)
    if (data.classification) labels.push_back(data.labels[i]);
  NWKernelRegression<T> net(data.d, widths_from_string(options.widths), T(0));
  for (std::size_t k = 0; k < w_init.size(); ++k) net.w().mutable_value()(k) = T(w_init[k]);
  auto [keys, values] = training_keys_values(x, v, leave_one_out);
  const Tensor<T> f = net.forward(x, keys, values);
  const Tensor<T> loss =
      loss_name(options) == "cross-entropy"
          ? nw_cross_entropy(net.logits(), training_key_labels(labels, leave_one_out), labels)
          : squared_loss(f, v);
  const GraphFiles files = write_graph(outputs.staging_dir().string(), loss);
  outputs.add_written("graph.dot");
  if (!files.png.empty()) outputs.add_written("graph.png");
}

void print_written(const Options& options, const Data& data, bool figures, std::size_t count) {
  std::cout << "wrote " << (std::filesystem::path(options.out_dir) / "predictions.csv").string()
            << (data.classification ? ", probabilities_*.csv" : "")
            << ", attention_*.csv, training.json"
            << (figures ? ", plots.gp and " + std::to_string(count) + " figures" : "") << " in "
            << options.out_dir << "\n";
  if (!options.save_path.empty()) std::cout << "saved checkpoint " << options.save_path << "\n";
}

void print_data(const Options& options, const Data& data) {
  std::cout << "data: " << data.source << ": " << data.n_train()
            << " training points of d = " << data.d;
  if (data.classification) std::cout << " (" << data.classes << " classes)";
  std::cout << ", " << data.n_query() << " queries; dtype " << options.dtype << ", "
            << omp_get_max_threads() << " thread(s)\n";
}

}  // namespace

// ---- the run: load, pool, train, predict, write ------------------------------------------------

template <class T>
int run_nd(const Options& options, const Data& data, double w_init) {
  NDModel<T> model(data.d, options, w_init);
  if (!options.resume_path.empty()) resume(options, data, model);
  OutputTransaction outputs(options.out_dir);  // checks --out and stages beside it
  check_output_paths(options, OutputTransaction::output_names());
  const NDTensors<T> tensors(data);
  print_data(options, data);

  const NDPooled<T> pooled = pool(options, data, tensors);
  const bool fused = use_fused(options, data.n_train(), data.n_query(), sizeof(T),
                               composed_arrays_alive(data.d, data.classes));
  const Training training = train(options, data, tensors, model, fused);
  const NDPrediction<T> prediction = predict(data, tensors, model, fused);
  print_prediction_summary(data, to_vector(prediction.f), prediction.train_accuracy);

  const PlotData plot = plot_data(options, data, tensors, pooled, prediction, training, model);
  nlohmann::json json =
      common_json(options, data, training, model.w_init, model.epochs_before, fused);
  if (data.classification) json["train_accuracy"] = prediction.train_accuracy;
  if (pooled.parzen_total)
    json["parzen_agreement"] = {{"agree", pooled.parzen_agree}, {"queries", pooled.parzen_total}};
  const bool figures =
      stage_outputs(outputs, data, pooled, prediction, plot, json, !options.no_plots);
  if (options.graph) stage_graph(outputs, options, data, tensors, model.w_init);
  stage_save(outputs, options, data, model.named, model.optimizer,
             model.epochs_before + options.epochs);
  outputs.commit();
  print_written(options, data, figures, figure_files(plot).size());
  return 0;
}

template int run_nd<float>(const Options&, const Data&, double);
template int run_nd<double>(const Options&, const Data&, double);

}  // namespace tapegrad
