// The program's inputs: the training data and queries (the chapter's generator or CSV files),
// checked against the chosen dtype, and the checks that no output would overwrite an input.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/datasets.h"
#include "examples/options.h"

namespace tapegrad {

// Inputs are row-major: x_train[i * d + k] is coordinate k of training point i (for d = 1 the
// chapter's vector of x).
struct Data {
  std::size_t d = 1;
  std::vector<double> x_train, y_train, x_query;  // (n, d), (n,), (n_query, d)
  std::vector<double> y_truth;  // the generator's truth at each query; empty for the user's data
  std::string source;           // "the chapter's data (seed 0)" or the --train path
  bool classification = false;  // --task classification: y_train holds labels 0..classes-1
  std::size_t classes = 0;
  std::vector<std::int64_t> labels;  // classification: y_train as integers
  std::size_t n_train() const { return x_train.size() / d; }
  std::size_t n_query() const { return x_query.size() / d; }
};

// The generated data set (--dataset) drawn from rng, or --train and --query read with the limits
// of options.h (headers x,y or x1,...,xd,y and x or x1,...,xd). Every value is finite and within
// the dtype's range, classification labels are integers 0..C-1 each present at least twice
// (InputError naming the file and line, or the label), and the sizes are within their bounds
// (UsageError).
Data load_data(const Options& options, Rng& rng);

// The magnitudes the program forms from the data fit the dtype: differences of inputs (per
// coordinate, and for d >= 2 or classification their squared sum, the squared distance), and for
// regression the loss 1/2 sum_i (f(x_i) - y_i)^2 <= 2 n max|y|^2. Throws UsageError naming the
// data source.
void check_magnitudes(const Data& data, const Options& options);

// --save is writable (its directory exists and is writable, it is not a directory) and no output
// (--save, or an output file in --out) is one of the inputs (--train, --query, --resume, except
// --save == --resume, which continues a checkpoint). Throws UsageError naming the flags.
void check_output_paths(const Options& options, const std::vector<std::string>& output_names);

}  // namespace tapegrad
