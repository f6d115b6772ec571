// Figures for the example program, drawn by gnuplot from a script we generate.
//
// The script (plots.gp in the output directory) carries its data inline as gnuplot datablocks, so
// it can be edited and re-run by hand: `gnuplot plots.gp` from the output directory.
//
// Every figure stays honest and readable at any n, and the script small: at most kMaxPlotPoints
// training points are drawn (picked evenly, sorted by x for d = 1; the key or title says how many
// of how many), curves keep at most kMaxCurvePoints vertices, and each attention heatmap has at
// most kMaxHeatmapCells cells a side (the four-panel figure kMaxPanelCells): keys and queries sorted
// (by x; for d >= 2 by x1, classes first for classification), then each cell holds the weights of
// a block of keys summed (so a row still sums to 1 and a sharp weight stays visible) averaged over
// a block of queries; the axis labels say so. The CSV outputs keep every number.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace tapegrad {

using Matrix = std::vector<std::vector<double>>;  // rows

inline constexpr std::size_t kMaxPlotPoints = 2000;   // training points drawn in a figure
inline constexpr std::size_t kMaxCurvePoints = 4000;  // vertices of a curve (estimates, loss)
// Heatmap cells a side: at most the plot area's pixels (one panel of 640 x 480, or one of four
// panels of 1200 x 320), so that no cell is narrower than a pixel and drops out of the picture.
inline constexpr std::size_t kMaxHeatmapCells = 400;
inline constexpr std::size_t kMaxPanelCells = 120;

// d = 2: the side of the plane figures' grid over n training points: 100 while the grid's
// 100 x 100 x n query-key pairs stay within 2e7 (n <= 2000), then fewer, down to 60.
std::size_t plane_grid_side(std::size_t n_train);

// k indices of 0..n-1 spread evenly, the first and the last among them (all n when n <= k).
std::vector<std::size_t> even_picks(std::size_t n, std::size_t k);

// The order (a permutation of 0..n-1) that sorts n rows of d numbers (row-major) lexicographically,
// after `first` when given (one number per row: the class labels); stable.
std::vector<std::size_t> sorted_rows(const std::vector<double>& rows, std::size_t d,
                                     const std::vector<double>* first = nullptr);

// A heatmap reduced to at most max_rows x max_cols cells: rows and columns taken in row_order and
// col_order, then cell (r, c) = the mean over block r of rows of the sum over block c of columns.
struct HeatmapCells {
  Matrix cells;
  std::size_t rows_in = 0, cols_in = 0;  // the matrix's size before reduction
};
HeatmapCells reduce_heatmap(const Matrix& m, const std::vector<std::size_t>& row_order,
                            const std::vector<std::size_t>& col_order, std::size_t max_rows,
                            std::size_t max_cols);

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
