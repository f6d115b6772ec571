#include "examples/plots.h"

#include <sstream>

namespace tapegrad {

namespace {

void datablock(std::ostream& os, const std::string& name,
               const std::vector<std::vector<double>>& cols) {
  os << "$" << name << " << EOD\n";
  const std::size_t n = cols.empty() ? 0 : cols[0].size();
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = 0; c < cols.size(); ++c) os << (c ? " " : "") << cols[c][r];
    os << "\n";
  }
  os << "EOD\n";
}

void matrixblock(std::ostream& os, const std::string& name, const Matrix& m) {
  os << "$" << name << " << EOD\n";
  for (const auto& row : m) {
    for (std::size_t c = 0; c < row.size(); ++c) os << (c ? " " : "") << row[c];
    os << "\n";
  }
  os << "EOD\n";
}

std::string out(const std::string& file) {
  return "set output '" + file + "'\n";
}

// One prediction panel: truth (if known), prediction, training points, as the chapter's
// plot_kernel_reg (xlim [0, 5], ylim [-1, 5]).
void prediction_plot(std::ostream& os, const std::string& pred_block, int col,
                     const std::string& title, bool have_truth, bool small = false) {
  os << "set title '" << title << "'\nset xlabel 'x'\nset ylabel 'y'\n"
     << (small ? "set key bottom right font ',8' samplen 1 spacing 0.8\n" : "set key top right\n");
  if (have_truth)  // the chapter's data: the chapter's axes
    os << "set xrange [0:5]\nset yrange [-1:5]\n";
  else
    os << "set autoscale\n";
  os << "plot ";
  if (have_truth) os << "$truth using 1:2 with lines lw 2 lc rgb '#1f77b4' title 'Truth', ";
  os << "$" << pred_block << " using 1:" << col
     << " with lines lw 2 dt 2 lc rgb '#d62728' title 'Pred', "
     << "$train using 1:2 with points pt 7 ps 0.8 lc rgb '#ff7f0e' title 'Training data'\n";
}

void heatmap(std::ostream& os, const std::string& block, const std::string& title, std::size_t rows,
             std::size_t cols, const std::string& xlabel = "Sorted training inputs",
             const std::string& ylabel = "Sorted testing inputs") {
  os << "set title '" << title << "'\nset xlabel '" << xlabel << "'\n"
     << "set ylabel '" << ylabel << "'\nunset key\n"
     << "set xrange [-0.5:" << cols - 0.5 << "]\nset yrange [" << rows - 0.5 << ":-0.5]\n"
     << "set palette rgb 33,13,10\nset cbrange [0:*]\n"
     << "plot $" << block << " matrix with image\n";
}

// The chapter's nine figures (d = 1 regression).
std::vector<std::string> chapter_figure_files() {
  return {"pred_average.png",
          "pred_nonparametric.png",
          "pred_parametric.png",
          "attention_nonparametric.png",
          "attention_parametric.png",
          "loss.png",
          "kernels.png",
          "gaussian_widths.png",
          "gaussian_widths_attention.png"};
}

}  // namespace

std::vector<std::string> figure_files() {
  return chapter_figure_files();
}

std::vector<std::string> figure_files(const PlotData& d) {
  if (d.d == 1 && !d.classification) return chapter_figure_files();
  std::vector<std::string> files;
  if (d.d == 1) files = {"probabilities_nonparametric.png", "probabilities_parametric.png"};
  if (d.d == 2) files = {"plane_nonparametric.png", "plane_parametric.png"};
  for (const char* f :
       {"attention_nonparametric.png", "attention_parametric.png", "loss.png", "kernels.png"})
    files.push_back(f);
  return files;
}

std::vector<std::string> all_figure_files() {
  std::vector<std::string> files = chapter_figure_files();
  for (const char* f : {"probabilities_nonparametric.png", "probabilities_parametric.png",
                        "plane_nonparametric.png", "plane_parametric.png"})
    files.push_back(f);
  return files;
}

namespace {

// The data of every figure, as gnuplot datablocks ($train, $truth, $pred, $att_np, $att_p, $loss).
void datablocks(std::ostream& os, const PlotData& d) {
  datablock(os, "train", {d.x_train, d.y_train});
  if (!d.y_truth.empty()) datablock(os, "truth", {d.x_query, d.y_truth});
  datablock(os, "pred", {d.x_query, d.average, d.nonparametric, d.parametric});
  matrixblock(os, "att_np", d.attention_nonparametric);
  matrixblock(os, "att_p", d.attention_parametric);
  std::vector<double> epochs;
  for (std::size_t i = 0; i < d.loss.size(); ++i) epochs.push_back(double(i + 1));
  datablock(os, "loss", {epochs, d.loss});
}

void loss_figure(std::ostream& os, const PlotData& d) {
  os << out("loss.png") << "set title 'Training loss'\nset xlabel 'epoch'\nset ylabel 'loss'\n"
     << "set autoscale\nset xrange [1:" << std::max<std::size_t>(2, d.loss.size())
     << "]\nunset key\n";
  if (d.loss.empty())  // --epochs 0: gnuplot fails on a plot without points, so draw an empty frame
    os << "set yrange [0:1]\nset label 1 'no training epochs' at graph 0.5, graph 0.5 center\n"
       << "plot 2 notitle\nunset label 1\n";
  else
    os << "plot $loss using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4'\n";
}

// The four kernels of the 2nd edition on [-2.5, 2.5), as functions of the distance.
void kernels_figure(std::ostream& os) {
  os << out("kernels.png") << "set terminal pngcairo size 1200,320 noenhanced\n"
     << "set multiplot layout 1,4\nset autoscale\nset xrange [-2.5:2.5]\nset yrange [-0.05:1.1]\n"
     << "unset key\nset ylabel ''\nset samples 500\n"
     << "set title 'Gaussian'\nset xlabel 'd'\nplot exp(-x**2/2) lw 2\n"
     << "set title 'Boxcar'\nplot (abs(x) < 1 ? 1 : 0) lw 2\n"
     << "set title 'Constant'\nplot 1 lw 2\n"
     << "set title 'Epanechikov'\nplot (1 - abs(x) > 0 ? 1 - abs(x) : 0) lw 2\n"
     << "unset multiplot\n";
}

// The Gaussian with several widths: estimates side by side, then their heatmaps side by side.
void widths_figures(std::ostream& os, const PlotData& d) {
  const std::size_t k = d.widths.size(), nq = d.x_query.size(), nt = d.x_train.size();
  for (std::size_t i = 0; i < k; ++i) {
    datablock(os, "wpred" + std::to_string(i), {d.x_query, d.widths[i].y_hat});
    matrixblock(os, "watt" + std::to_string(i), d.widths[i].weights);
  }
  os << out("gaussian_widths.png") << "set terminal pngcairo size 1200,320 noenhanced\n"
     << "set multiplot layout 1," << k << "\n";
  for (std::size_t i = 0; i < k; ++i) {
    std::ostringstream t;
    t << "Gaussian, sigma = " << d.widths[i].sigma;
    prediction_plot(os, "wpred" + std::to_string(i), 2, t.str(), !d.y_truth.empty(), true);
  }
  os << "unset multiplot\n";
  os << out("gaussian_widths_attention.png") << "set terminal pngcairo size 1200,320 noenhanced\n"
     << "set multiplot layout 1," << k << "\n";
  for (std::size_t i = 0; i < k; ++i) {
    std::ostringstream t;
    t << "sigma = " << d.widths[i].sigma;
    heatmap(os, "watt" + std::to_string(i), t.str(), nq, nt);
  }
  os << "unset multiplot\n";
}

}  // namespace

namespace {

// d = 1 classification: each class's probability against x, the training labels on top (at
// p = 1.08, coloured by label).
void probabilities_figure(std::ostream& os, const std::string& file, const std::string& block,
                          const std::string& title, std::size_t classes) {
  os << out(file) << "set title '" << title << "'\nset xlabel 'x'\nset ylabel 'p(class | x)'\n"
     << "set autoscale\nset yrange [-0.05:1.15]\nset key outside right\n"
     << "plot for [c=0:" << classes - 1 << "] $" << block
     << " using 1:(column(c + 2)) with lines lw 2 lc c + 1 title sprintf('p%d', c), "
     << "$train using 1:(1.08):($2 + 1) with points pt 7 ps 0.8 lc variable title 'labels'\n";
}

// d = 2: the estimate (regression) or the predicted label (classification) over the input plane,
// the training points on top (black; for classes, one marker per label: square, circle,
// triangle, ...).
void plane_figure(std::ostream& os, const std::string& file, const std::string& block,
                  const std::string& title, const PlotData& d) {
  os << out(file) << "set title '" << title << "'\nset xlabel 'x1'\nset ylabel 'x2'\n"
     << "unset key\nset autoscale fix\n";
  if (d.classification)  // pastel hues, one per class; points: one marker per label
    os << "set palette model HSV defined (0 0 0.4 1, 1 0.85 0.4 1)\nset palette maxcolors "
       << std::max<std::size_t>(d.classes, 2)
       << "\nset cbrange [-0.5:" << double(std::max<std::size_t>(d.classes, 2)) - 0.5 << "]\n"
       << "plot $" << block << " using 1:2:3 with image, "
       << "$train using 1:2:(2 * (int($3) % 5) + 5) with points pt variable ps 0.8 "
       << "lc rgb 'black'\n"
       << "set palette maxcolors 0\nset palette model RGB\n";
  else
    os << "set palette rgb 33,13,10\nset cbrange [*:*]\n"
       << "plot $" << block << " using 1:2:3 with image, "
       << "$train using 1:2 with points pt 7 ps 0.6 lc rgb 'black'\n";
}

// The plane's values as x1 x2 value lines, a blank line after each row of the grid.
void plane_block(std::ostream& os, const std::string& name, const PlotData& d,
                 const std::vector<double>& values) {
  os << "$" << name << " << EOD\n";
  for (std::size_t i = 0; i < values.size(); ++i) {
    os << d.plane[2 * i] << " " << d.plane[2 * i + 1] << " " << values[i] << "\n";
    if ((i + 1) % d.plane_n == 0) os << "\n";
  }
  os << "EOD\n";
}

// The training inputs (row-major (n, d)) and y as columns x1 .. xd y.
std::vector<std::vector<double>> training_columns(const PlotData& d) {
  std::vector<std::vector<double>> cols(d.d + 1);
  for (std::size_t i = 0; i < d.x_train.size(); ++i) cols[i % d.d].push_back(d.x_train[i]);
  cols[d.d] = d.y_train;
  return cols;
}

std::vector<std::vector<double>> probability_columns(const std::vector<double>& x,
                                                     const Matrix& p) {
  std::vector<std::vector<double>> cols = {x};
  for (std::size_t c = 0; !p.empty() && c < p[0].size(); ++c) {
    cols.push_back({});
    for (const auto& row : p) cols.back().push_back(row[c]);
  }
  return cols;
}

// The figures of the d-dimensional path (d >= 2, or classification).
std::string nd_script(const PlotData& d) {
  std::ostringstream os;
  os.precision(10);
  os << "# Figures of tapegrad's nadaraya_watson example; run `gnuplot plots.gp` in this "
        "directory.\n"
     << "set terminal pngcairo size 640,480 noenhanced\n";
  datablock(os, "train", training_columns(d));
  if (d.d == 1) {
    datablock(os, "prob_np", probability_columns(d.x_query, d.probabilities_nonparametric));
    datablock(os, "prob_p", probability_columns(d.x_query, d.probabilities_parametric));
    probabilities_figure(os, "probabilities_nonparametric.png", "prob_np",
                         "Nonparametric attention pooling (" + d.kernel_label + ")", d.classes);
    probabilities_figure(os, "probabilities_parametric.png", "prob_p",
                         "Parametric attention pooling (learned w)", d.classes);
  }
  if (d.d == 2) {
    plane_block(os, "plane_np", d, d.plane_nonparametric);
    plane_block(os, "plane_p", d, d.plane_parametric);
    const std::string what = d.classification ? "decision regions" : "estimate";
    plane_figure(os, "plane_nonparametric.png", "plane_np",
                 "Nonparametric pooling (" + d.kernel_label + "), " + what, d);
    plane_figure(os, "plane_parametric.png", "plane_p", "Parametric pooling (learned w), " + what,
                 d);
  }
  matrixblock(os, "att_np", d.attention_nonparametric);
  matrixblock(os, "att_p", d.attention_parametric);
  const std::size_t nq = d.attention_parametric.size(), nt = d.y_train.size();
  os << out("attention_nonparametric.png");
  heatmap(os, "att_np", "Attention weights, nonparametric (" + d.kernel_label + ")", nq, nt,
          "Training points", "Queries");
  os << out("attention_parametric.png");
  heatmap(os, "att_p", "Attention weights, parametric (learned w)", nq, nt, "Training points",
          "Queries");
  std::vector<double> epochs;
  for (std::size_t i = 0; i < d.loss.size(); ++i) epochs.push_back(double(i + 1));
  datablock(os, "loss", {epochs, d.loss});
  loss_figure(os, d);
  kernels_figure(os);
  os << "unset output\n";
  return os.str();
}

}  // namespace

std::string gnuplot_script(const PlotData& d) {
  if (d.d != 1 || d.classification) return nd_script(d);
  std::ostringstream os;
  os.precision(10);
  const bool truth = !d.y_truth.empty();
  os << "# Figures of tapegrad's nadaraya_watson example; run `gnuplot plots.gp` in this "
        "directory.\n"
     << "set terminal pngcairo size 640,480 noenhanced\n";
  datablocks(os, d);
  os << out("pred_average.png");
  prediction_plot(os, "pred", 2, "Average pooling", truth);
  os << out("pred_nonparametric.png");
  prediction_plot(os, "pred", 3, "Nonparametric attention pooling (" + d.kernel_label + ")", truth);
  os << out("pred_parametric.png");
  prediction_plot(os, "pred", 4, "Parametric attention pooling (learned w)", truth);
  const std::size_t nq = d.x_query.size(), nt = d.x_train.size();
  os << out("attention_nonparametric.png");
  heatmap(os, "att_np", "Attention weights, nonparametric (" + d.kernel_label + ")", nq, nt);
  os << out("attention_parametric.png");
  heatmap(os, "att_p", "Attention weights, parametric (learned w)", nq, nt);
  loss_figure(os, d);
  kernels_figure(os);
  if (!d.widths.empty()) widths_figures(os, d);
  os << "unset output\n";
  return os.str();
}

}  // namespace tapegrad
