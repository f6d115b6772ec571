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

struct PlotData {
  std::vector<double> x_train, y_train, x_query;
  std::vector<double> y_truth;  // empty when the truth is unknown (the user's own data)
  std::vector<double> average, nonparametric, parametric;
  Matrix attention_nonparametric, attention_parametric;
  std::string kernel_label;  // e.g. "gaussian, sigma = 1"
  std::vector<double> loss;
  std::vector<WidthResult> widths;  // gaussian with several sigma (2nd edition)
};

// The figure files plots.gp writes, relative to the output directory.
std::vector<std::string> figure_files();

// The gnuplot script: run in a directory, it writes figure_files() there. The program runs it in
// its private staging directory (examples/outputs.h), so a failing gnuplot never touches --out.
std::string gnuplot_script(const PlotData& d);

}  // namespace tapegrad
