// The pieces of the nadaraya_watson program that its two paths share: the chapter's scalar path
// (examples/nadaraya_watson.cpp: d = 1 regression, exactly the chapter's model and numbers) and
// the d-dimensional path (examples/nw_nd.cpp: d >= 2, and classification for every d).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/tensor.h"
#include "examples/inputs.h"
#include "examples/options.h"
#include "examples/outputs.h"
#include "examples/plots.h"
#include "io/checkpoint.h"
#include "optim/sgd.h"

namespace tapegrad {

// values (n,) -> a tensor of the run's dtype.
template <class T>
Tensor<T> as_tensor(const std::vector<double>& values) {
  xt::xarray<T> a = xt::zeros<T>({values.size()});
  for (std::size_t i = 0; i < values.size(); ++i) a(i) = static_cast<T>(values[i]);
  return Tensor<T>(std::move(a));
}

// Row-major values (rows * cols) -> a (rows, cols) tensor of the run's dtype.
template <class T>
Tensor<T> as_tensor(const std::vector<double>& values, std::size_t rows, std::size_t cols) {
  xt::xarray<T> a = xt::zeros<T>({rows, cols});
  for (std::size_t i = 0; i < rows * cols; ++i) a.data()[i] = static_cast<T>(values[i]);
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

double mse(const std::vector<double>& a, const std::vector<double>& b);

// Rows of numbers as CSV lines (no header), `precision` significant digits.
std::string matrix_csv(const Matrix& m, int precision);

// w in words: "0.5" for one number, "[0.5, 0.25]" for a list (per-coordinate widths).
std::string w_text(const std::vector<double>& w, bool as_list);
// w in training.json: a number for --widths shared, a list of d numbers for per-coordinate.
nlohmann::json w_json(const std::vector<double>& w, const Options& options);

// What training produced: the loss of each epoch, the time, the learned w.
struct Training {
  std::vector<double> losses;  // L of each epoch, before its step
  double seconds = 0;          // the whole loop (epoch_seconds plus the printing between them)
  // Each epoch's forward, backward and step. The first also pays for one-time costs (OpenMP's
  // threads, the allocator's first pages), so its median is what to set against a benchmark's.
  std::vector<double> epoch_seconds;
  std::vector<double> w;                         // after the last epoch
  std::vector<std::vector<double>> w_per_epoch;  // w after each epoch's step
};

// The median of training.epoch_seconds (0 when no epoch ran).
double median_epoch_seconds(const Training& training);

// Throws UsageError (training diverged) when w or a loss is not finite.
void check_training_finite(const Training& training);

// A checkpoint's meta as the program writes it, and the check of the program's fields when it
// resumes (dtype, d, widths and task must be this run's; a checkpoint without d, widths or task
// is the chapter's: d = 1, shared, regression). Returns the epochs done. Throws CheckpointError
// naming the checkpoint, or UsageError when --epochs would exceed the limit.
nlohmann::json checkpoint_meta(const Options& options, const Data& data, long epochs_done);

// --save: the checkpoint (w, the optimizer state and checkpoint_meta) written beside its target now
// and renamed into place by the outputs' commit, with everything else or not at all.
template <class T>
void stage_save(OutputTransaction& outputs, const Options& options, const Data& data,
                const NamedTensors<T>& named, SGD<T>& optimizer, long epochs_done) {
  if (options.save_path.empty()) return;
  outputs.add_rename(stage_checkpoint(options.save_path, named, optimizer,
                                      checkpoint_meta(options, data, epochs_done)),
                     options.save_path);
}
long checked_epochs_done(const nlohmann::json& meta, const Options& options, const Data& data);

// Composed unless --impl says otherwise or the composed ops' intermediates, about `arrays_alive`
// arrays of (rows, cols) elements of `value_bytes`, exceed --memory-budget (rows x cols is the
// larger of training's n x m and prediction's n_query x n); prints one line when it switches.
bool use_fused(const Options& options, std::size_t n, std::size_t n_query, std::size_t value_bytes,
               double arrays_alive);

// The fields of training.json that every run has.
nlohmann::json common_json(const Options& options, const Data& data, const Training& training,
                           const std::vector<double>& w_init, long epochs_before, bool fused);

// The d-dimensional path (examples/nw_nd.cpp): d >= 2 regression, and classification for every d.
template <class T>
int run_nd(const Options& options, const Data& data, double w_init);

}  // namespace tapegrad
