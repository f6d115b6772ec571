// The program's inputs: the training data and queries (the chapter's generator or CSV files),
// checked against the chosen dtype, and the checks that no output would overwrite an input.
#pragma once

#include <string>
#include <vector>

#include "examples/options.h"
#include "models/data.h"

namespace tapegrad {

struct Data {
  std::vector<double> x_train, y_train, x_query;
  std::vector<double> y_truth;  // the chapter's truth at each query; empty for the user's data
  std::string source;           // "the chapter's data (seed 0)" or the --train path
};

// The chapter's data drawn from rng, or --train and --query read with the limits of options.h.
// Every value is finite and within the dtype's range (InputError naming the file and line), and
// the sizes are within their bounds (UsageError).
Data load_data(const Options& options, Rng& rng);

// The magnitudes the program forms from the data fit the dtype: differences of inputs, and the
// loss 1/2 sum_i (f(x_i) - y_i)^2 <= 2 n max|y|^2. Throws UsageError naming the data source.
void check_magnitudes(const Data& data, const Options& options);

// --save is writable (its directory exists and is writable, it is not a directory) and no output
// (--save, or an output file in --out) is one of the inputs (--train, --query, --resume, except
// --save == --resume, which continues a checkpoint). Throws UsageError naming the flags.
void check_output_paths(const Options& options, const std::vector<std::string>& output_names);

}  // namespace tapegrad
