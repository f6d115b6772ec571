// Figures for the example program, drawn by gnuplot from a script we generate.
//
// The script (plots.gp in the output directory) carries its data inline as gnuplot datablocks, so
// it can be edited and re-run by hand: `gnuplot plots.gp` from the output directory.
#pragma once

#include <string>
#include <vector>

namespace tapegrad {

using Matrix = std::vector<std::vector<double>>;  // rows

struct WidthResult {
  double sigma;
  std::vector<double> y_hat;
  Matrix weights;
};

// What the figures show. For d >= 2, x_train and x_query are row-major (n, d); for
// classification, y_train, average, nonparametric and parametric hold labels.
struct PlotData {
  std::size_t d = 1;
  bool classification = false;
  std::size_t classes = 0;
  std::vector<double> x_train, y_train, x_query;
  std::vector<double> y_truth;  // empty when the truth is unknown (the user's own data)
  std::vector<double> average, nonparametric, parametric;
  Matrix attention_nonparametric, attention_parametric;
  std::string kernel_label;  // e.g. "gaussian, sigma = 1"
  std::vector<double> loss;
  std::vector<WidthResult> widths;  // gaussian with several sigma (2nd edition)
  // d = 1 classification: class probabilities at the queries, (n_query, C).
  Matrix probabilities_nonparametric, probabilities_parametric;
  // d = 2: an n x n grid over the training inputs' box (row-major (n * n, 2), x1 fastest) and the
  // two estimates there (values for regression, labels for classification).
  std::size_t plane_n = 0;
  std::vector<double> plane, plane_nonparametric, plane_parametric;
};

// The figure files plots.gp writes for this run, relative to the output directory: for d = 1
// regression the chapter's nine; for d = 1 classification the class probabilities of the two
// poolings; for d = 2 the estimate (or decision regions) of the two poolings over the input plane;
// for every run the attention heatmaps, the loss curve and the kernels.
std::vector<std::string> figure_files(const PlotData& d);
std::vector<std::string> figure_files();      // the chapter's run (d = 1 regression)
std::vector<std::string> all_figure_files();  // every name any run may write

// The gnuplot script: run in a directory, it writes figure_files() there. The program runs it in
// its private staging directory (examples/outputs.h), so a failing gnuplot never touches --out.
std::string gnuplot_script(const PlotData& d);

}  // namespace tapegrad
