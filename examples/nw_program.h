// The nadaraya_watson program's pieces: the model adapter (examples/nw_model.cpp, the one file
// that calls the model's API) and the helpers of the pipeline (examples/nadaraya_watson.cpp: load,
// pool, train, predict, write, for every d and both tasks; d = 1 regression is the chapter).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/tensor.h"
#include "examples/inputs.h"
#include "examples/options.h"
#include "examples/outputs.h"
#include "examples/plots.h"
#include "examples/tensor_vectors.h"
#include "examples/training_log.h"
#include "io/checkpoint.h"
#include "models/nadaraya_watson.h"
#include "optim/sgd.h"

namespace tapegrad {

// ---- the model adapter ---------------------------------------------------------------------------

// Everything the program asks of the Nadaraya-Watson model: the data as tensors of the run's dtype,
// the model with its optimizer, both poolings and the training loss, composed or fused.
//   X (n, d) training inputs, V (n, C) values (regression: C = 1, V = y; classification: one-hot)
//   p_ij = softmax_j(-1/2 sum_k ((q_ik - x_jk) w_k)^2),  f_i = sum_j p_ij v_j,  w (1,) or (d,)
//   losses: squared L = 1/2 sum_i ||f_i - v_i||^2; cross-entropy L = -sum_i log f_i[y_i]
template <class T>
class NWModel {
 public:
  // Every coordinate of w starts at w0; --widths, --loss and --keep-self from options.
  NWModel(const Data& data, const Options& options, double w0);

  std::vector<double> w();
  NamedTensors<T>& named() { return named_; }  // what a checkpoint holds: {"w", w}
  SGD<T>& optimizer() { return optimizer_; }
  const Tensor<T>& x_train() const { return x_train_; }  // (n, d)
  const Tensor<T>& x_query() const { return x_query_; }  // (n_query, d)

  // Average pooling: mean(y) at each of n_query queries (regression).
  std::vector<double> average(std::size_t n_query) const;
  // Nonparametric pooling of the values at queries (rows, d): y_hat (rows, C), weights (rows, n).
  NWResult<T> nonparametric(const Tensor<T>& queries, Kernel kernel, double sigma) const;

  // Chooses the training loss's ops (the composed ones build the (n, m) pairs here, once); then
  // each loss() is one epoch's forward.
  void start_training(bool fused);
  Tensor<T> loss();

  // Parametric pooling of the training values at queries (rows, d) -> (rows, C). leave_one_out:
  // the queries are the training inputs and row i skips pair i. attention (when given) receives
  // the (rows, n) weights.
  xt::xarray<T> pool(const Tensor<T>& queries, bool fused, bool leave_one_out = false,
                     xt::xarray<T>* attention = nullptr);

  // --graph: the loss of one composed training step on the training points `points`, at w.
  Tensor<T> graph_loss(const std::vector<std::size_t>& points, const std::vector<double>& w) const;

  std::vector<double> w_init;  // as given, or the checkpoint's w after --resume
  long epochs_before = 0;      // epochs done before this run (from --resume)

 private:
  struct Pairs {  // the composed loss's keys (n, m, d), values (n, m, C) and keys' labels (n, m)
    Tensor<T> keys, values;
    xt::xarray<std::int64_t> key_labels;
  };
  Pairs pairs(const Tensor<T>& x, const Tensor<T>& v,
              const std::vector<std::int64_t>& labels) const;
  Tensor<T> composed_loss(NWKernelRegression<T>& net, const Tensor<T>& x, const Tensor<T>& v,
                          const std::vector<std::int64_t>& labels, const Pairs& pairs) const;
  xt::xarray<T> predict(const Tensor<T>& queries, xt::xarray<T>* attention);

  Widths widths_;
  bool leave_one_out_, cross_entropy_, fused_ = false;
  Tensor<T> x_train_, y_train_, values_, x_query_;  // (n, d), (n, 1), (n, C), (n_query, d)
  std::vector<std::int64_t> labels_;                // classification: y_train as labels
  NWKernelRegression<T> net_;
  SGD<T> optimizer_;
  NamedTensors<T> named_;
  Pairs pairs_;
};

// ---- the pipeline's helpers ---------------------------------------------------------------------

// A (rows, C) estimate as a predictions.csv column: the value (C = 1) or the argmax label.
template <class T>
std::vector<double> prediction_column(const xt::xarray<T>& f, bool classification) {
  if (!classification) return to_vector(f);
  std::vector<double> labels;
  for (std::int64_t label : argmax_labels(f)) labels.push_back(double(label));
  return labels;
}

double mse(const std::vector<double>& a, const std::vector<double>& b);

// The class with the most training examples, ties to the smallest label.
std::int64_t majority_label(const std::vector<std::int64_t>& labels, std::size_t classes);

// predictions.csv: the query's coordinates (x, or x1..xd), then the three poolings' estimates
// (values, or labels as integers for classification).
std::string predictions_csv(const PlotData& plot, int precision);

// w in words: "0.5" for one number, "[0.5, 0.25]" for a list (per-coordinate widths).
std::string w_text(const std::vector<double>& w, bool as_list);
// w in training.json: a number for --widths shared, a list of d numbers for per-coordinate.
nlohmann::json w_json(const std::vector<double>& w, const Options& options);

// d = 1 regression is the chapter: its lines keep the chapter's words (no d, widths or loss).
bool is_chapter(const Data& data);
void print_data(const Options& options, const Data& data);
void print_training_plan(const Options& options, const Data& data,
                         const std::vector<double>& w_init, bool fused);
// The parametric pooling's summary: its leave-one-out accuracy, or its MSE against the truth.
void print_prediction_summary(const Data& data, const std::vector<double>& parametric,
                              double accuracy);
// The run's last line: every file written into --out (the figures as their number, graph.dot and
// graph.png with --graph) and the --save checkpoint.
struct Written {
  bool script = false;      // plots.gp (written without gnuplot too)
  std::size_t figures = 0;  // PNGs drawn by plots.gp (0: no figures)
  bool graph_dot = false, graph_png = false;
};
void print_written(const Options& options, const Data& data, const Written& written);

// The epoch lines of this run (--log-every, --quiet), counted from the epochs done before it.
EpochLog epoch_log(const Options& options, long epochs_before);

// A checkpoint's meta as the program writes it, and the check of the program's fields when it
// resumes (dtype, d, widths and task must be this run's; a checkpoint without d, widths or task
// is the chapter's: d = 1, shared, regression). Returns the epochs done. Throws CheckpointError
// naming the checkpoint, or UsageError when --epochs would exceed the limit.
nlohmann::json checkpoint_meta(const Options& options, const Data& data, long epochs_done);
long checked_epochs_done(const nlohmann::json& meta, const Options& options, const Data& data);

// --save: the checkpoint (w, the optimizer state and checkpoint_meta) written beside its target now
// and renamed into place by the outputs' commit, with everything else or not at all.
template <class T>
void stage_save(OutputTransaction& outputs, const Options& options, const Data& data,
                NWModel<T>& model) {
  if (options.save_path.empty()) return;
  const nlohmann::json meta = checkpoint_meta(options, data, model.epochs_before + options.epochs);
  outputs.add_rename(stage_checkpoint(options.save_path, model.named(), model.optimizer(), meta),
                     options.save_path);
}

// What the composed ops would keep alive at their peak: about `arrays` arrays of rows x cols
// elements, the larger of training's n x m and prediction's n_query x n, `mib` MiB in all.
struct ComposedMemory {
  double arrays = 0, mib = 0;
  std::size_t rows = 0, cols = 0;
};
ComposedMemory composed_memory(const Options& options, const Data& data, std::size_t value_bytes);

// --impl composed whose intermediates exceed --memory-budget is refused before any work: throws
// UsageError naming the estimate, the budget and the remedies.
void check_memory_budget(const Options& options, const Data& data, std::size_t value_bytes);

// Composed unless --impl says otherwise or the composed ops' intermediates exceed
// --memory-budget; prints one line when it switches.
bool use_fused(const Options& options, const Data& data, std::size_t value_bytes);

// The training points --graph draws: the first 20, plus for classification a second example of
// any label that appears once among them (leave-one-out cross-entropy needs a key of each row's
// class; every label has a second example in the training set).
std::vector<std::size_t> graph_points(const Data& data);

// The fields of training.json that every run has.
nlohmann::json common_json(const Options& options, const Data& data, const Training& training,
                           const std::vector<double>& w_init, long epochs_before, bool fused);

}  // namespace tapegrad
