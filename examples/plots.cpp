#include "examples/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

namespace tapegrad {

std::size_t plane_grid_side(std::size_t n_train) {
  const double side = std::sqrt(2e7 / double(std::max<std::size_t>(n_train, 1)));
  return std::size_t(std::clamp(side, 60.0, 100.0));
}

std::vector<std::size_t> even_picks(std::size_t n, std::size_t k) {
  std::vector<std::size_t> picks;
  if (n <= k) {
    picks.resize(n);
    std::iota(picks.begin(), picks.end(), std::size_t(0));
    return picks;
  }
  if (k == 1) return {0};
  // round(i (n - 1) / (k - 1)) for i = 0 .. k - 1: strictly increasing since n > k.
  for (std::size_t i = 0; i < k; ++i) picks.push_back((i * (n - 1) + (k - 1) / 2) / (k - 1));
  return picks;
}

std::vector<std::size_t> sorted_rows(const std::vector<double>& rows, std::size_t d,
                                     const std::vector<double>* first) {
  const std::size_t n = d ? rows.size() / d : 0;
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (first && (*first)[a] != (*first)[b]) return (*first)[a] < (*first)[b];
    return std::lexicographical_compare(rows.begin() + long(a * d), rows.begin() + long(a * d + d),
                                        rows.begin() + long(b * d), rows.begin() + long(b * d + d));
  });
  return order;
}

HeatmapCells reduce_heatmap(const Matrix& m, const std::vector<std::size_t>& row_order,
                            const std::vector<std::size_t>& col_order, std::size_t max_rows,
                            std::size_t max_cols) {
  HeatmapCells h;
  h.rows_in = row_order.size(), h.cols_in = col_order.size();
  const std::size_t rows = std::min(h.rows_in, max_rows), cols = std::min(h.cols_in, max_cols);
  h.cells.assign(rows, std::vector<double>(cols, 0.0));
  // Block r of rows is [r R / rows, (r + 1) R / rows), likewise for columns.
  std::vector<std::size_t> col_cell(h.cols_in);
  for (std::size_t c = 0; c < cols; ++c)
    for (std::size_t j = c * h.cols_in / cols; j < (c + 1) * h.cols_in / cols; ++j) col_cell[j] = c;
  for (std::size_t r = 0; r < rows; ++r) {
    const std::size_t begin = r * h.rows_in / rows, end = (r + 1) * h.rows_in / rows;
    for (std::size_t i = begin; i < end; ++i) {
      const std::vector<double>& row = m[row_order[i]];
      for (std::size_t j = 0; j < h.cols_in; ++j) h.cells[r][col_cell[j]] += row[col_order[j]];
    }
    for (double& v : h.cells[r]) v /= double(end - begin);
  }
  return h;
}

namespace {

// Ten distinct colours (matplotlib's), class c gets kClassColours[c % 10].
constexpr unsigned kClassColours[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                      0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
constexpr std::size_t kLegendClasses = 10;  // legend entries at most (the colours repeat after)
constexpr std::size_t kDrawnClasses = 20;   // probability curves drawn at most

unsigned class_colour(double label) {
  return kClassColours[std::size_t(std::max(label, 0.0)) % 10];
}

// The class colour mixed 60% with white: the decision regions' tint.
unsigned region_colour(double label) {
  const unsigned c = class_colour(label);
  unsigned tint = 0;
  for (int shift : {16, 8, 0}) tint |= ((((c >> shift) & 0xff) * 2 + 255 * 3) / 5) << shift;
  return tint;
}

std::string rgb(unsigned colour) {
  char text[16];
  std::snprintf(text, sizeof text, "#%06x", colour);
  return text;
}

// The columns `cols` at the rows `rows`, as a gnuplot datablock.
void datablock(std::ostream& os, const std::string& name,
               const std::vector<std::vector<double>>& cols, const std::vector<std::size_t>& rows) {
  os << "$" << name << " << EOD\n";
  for (std::size_t r : rows) {
    for (std::size_t c = 0; c < cols.size(); ++c) os << (c ? " " : "") << cols[c][r];
    os << "\n";
  }
  os << "EOD\n";
}

// The first k of `order`'s picks spread evenly: the rows a figure draws.
std::vector<std::size_t> picked(const std::vector<std::size_t>& order, std::size_t k) {
  std::vector<std::size_t> rows;
  for (std::size_t i : even_picks(order.size(), k)) rows.push_back(order[i]);
  return rows;
}

std::string out(const std::string& file) {
  return "set output '" + file + "'\n";
}

// "Training data" or "Training data (2000 of 20000 drawn)" (noun: "(2000 of 20000 points drawn)").
std::string drawn(const std::string& what, std::size_t shown, std::size_t total,
                  const std::string& noun = "") {
  if (shown == total) return what;
  return what + " (" + std::to_string(shown) + " of " + std::to_string(total) + noun + " drawn)";
}

// One prediction panel as the chapter's plot_kernel_reg (xlim [0, 5], ylim [-1, 5]): the training
// points first (translucent when many), then truth (if known) and prediction on top of them.
void prediction_plot(std::ostream& os, const std::string& pred_block, int col,
                     const std::string& title, bool have_truth, const std::string& train_title,
                     bool many, bool small = false) {
  os << "set title '" << title << "'\nset xlabel 'x'\nset ylabel 'y'\n"
     << (small ? "set key bottom right font ',8' samplen 1 spacing 0.8\n" : "set key top right\n");
  if (have_truth)  // the chapter's data: the chapter's axes
    os << "set xrange [0:5]\nset yrange [-1:5]\n";
  else
    os << "set autoscale\n";
  os << "plot $train using 1:2 with points pt 7 "
     << (many ? "ps 0.4 lc rgb '#99ff7f0e'" : "ps 0.8 lc rgb '#ff7f0e'") << " title '"
     << train_title << "', ";
  if (have_truth) os << "$truth using 1:2 with lines lw 2 lc rgb '#1f77b4' title 'Truth', ";
  os << "$" << pred_block << " using 1:" << col
     << " with lines lw 2 dt 2 lc rgb '#d62728' title 'Pred'\n";
}

// "weights summed in cells of 40" (or "of 39 or 40" when in / cells is not whole).
std::string cells_text(std::size_t in, std::size_t cells, const std::string& how) {
  const std::size_t lo = in / cells, hi = (in + cells - 1) / cells;
  return how + " in cells of " + std::to_string(lo) + (lo == hi ? "" : " or " + std::to_string(hi));
}

// "Sorted training inputs" or "Sorted training inputs (20000: weights summed in cells of 40)".
std::string axis_label(const std::string& what, std::size_t in, std::size_t cells,
                       const std::string& how) {
  if (in == cells) return what;
  return what + " (" + std::to_string(in) + ": " + cells_text(in, cells, how) + ")";
}

// The smallest of 1, 2, 5, 10, 20, 50, ... at least `target`: a tick step.
long nice_step(double target) {
  for (long decade = 1;; decade *= 10)
    for (long step : {decade, 2 * decade, 5 * decade})
      if (double(step) >= target) return step;
}

// What a reduced heatmap's cells hold, for the title of a four-panel figure ("" when unreduced).
std::string reduction_note(const HeatmapCells& h) {
  const std::size_t rows = h.cells.size(), cols = rows ? h.cells[0].size() : 0;
  std::string note;
  if (cols < h.cols_in)
    note = std::to_string(h.cols_in) + " training inputs, " +
           cells_text(h.cols_in, cols, "weights summed");
  if (rows < h.rows_in)
    note += (note.empty() ? "" : "; ") + std::to_string(h.rows_in) + " testing inputs, " +
            cells_text(h.rows_in, rows, "averaged");
  return note;
}

// A heatmap of the reduced weights with axes in ranks of the sorted rows and columns: cell c of
// C over N columns sits at (c + 1/2) N / C - 1/2. A panel of a four-panel figure keeps its axis
// labels short (the figure's title tells the reduction) and its ticks few.
void heatmap(std::ostream& os, const std::string& block, const HeatmapCells& h,
             const std::string& title, const std::string& keys, const std::string& queries,
             bool panel = false) {
  const std::size_t rows = h.cells.size(), cols = rows ? h.cells[0].size() : 0;
  const std::streamsize precision = os.precision(4);  // colours need no more digits
  os << "$" << block << " << EOD\n";
  for (const auto& row : h.cells) {
    for (std::size_t c = 0; c < row.size(); ++c) os << (c ? " " : "") << row[c];
    os << "\n";
  }
  os << "EOD\n";
  os.precision(precision);
  const double sx = double(h.cols_in) / double(std::max<std::size_t>(cols, 1)),
               sy = double(h.rows_in) / double(std::max<std::size_t>(rows, 1));
  os << "set title '" << title << "'\nset xlabel '"
     << (panel ? keys : axis_label(keys, h.cols_in, cols, "weights summed")) << "'\nset ylabel '"
     << (panel ? queries : axis_label(queries, h.rows_in, rows, "rows averaged"))
     << "'\nunset key\n"
     << "set xrange [-0.5:" << double(h.cols_in) - 0.5 << "]\nset yrange ["
     << double(h.rows_in) - 0.5 << ":-0.5]\n"
     << "set palette rgb 33,13,10\nset cbrange [0:*]\n";
  if (panel) os << "set xtics " << nice_step(double(h.cols_in) / 3) << "\n";
  os << "plot $" << block << " matrix using (($1 + 0.5) * " << sx << " - 0.5):(($2 + 0.5) * " << sy
     << " - 0.5):3 with image\n";
  if (panel) os << "set xtics autofreq\n";
}

// The order of the heatmaps' keys and queries, and what their axes say.
struct HeatmapAxes {
  std::vector<std::size_t> keys, queries;
  std::string keys_label, queries_label;
};

HeatmapAxes heatmap_axes(const PlotData& d) {
  HeatmapAxes a;
  if (d.d == 1 && !d.classification) {  // the book's words, now true whatever the file order
    a.keys_label = "Sorted training inputs", a.queries_label = "Sorted testing inputs";
  } else {
    const std::string x = d.d == 1 ? "x" : "x1";
    const bool by_class = d.classification && d.d > 1;
    a.keys_label = "Training points, sorted by " + (by_class ? "class, then " + x : x);
    a.queries_label = "Queries, sorted by " + x;
  }
  a.keys = sorted_rows(d.x_train, d.d, d.classification && d.d > 1 ? &d.y_train : nullptr);
  a.queries = sorted_rows(d.x_query, d.d);
  return a;
}

void attention_figures(std::ostream& os, const PlotData& d) {
  const HeatmapAxes a = heatmap_axes(d);
  os << out("attention_nonparametric.png");
  heatmap(os, "att_np",
          reduce_heatmap(d.attention_nonparametric, a.queries, a.keys, kMaxHeatmapCells,
                         kMaxHeatmapCells),
          "Attention weights, nonparametric (" + d.kernel_label + ")", a.keys_label,
          a.queries_label);
  os << out("attention_parametric.png");
  heatmap(
      os, "att_p",
      reduce_heatmap(d.attention_parametric, a.queries, a.keys, kMaxHeatmapCells, kMaxHeatmapCells),
      "Attention weights, parametric (learned w)", a.keys_label, a.queries_label);
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

// The step of integer epoch ticks: 1, 2, 5, 10, 20, ... giving at most about 10 ticks.
long epoch_tick_step(std::size_t epochs) {
  return nice_step(double(epochs) / 10);
}

// The loss per epoch (at most kMaxCurvePoints of them, the last included) on integer epoch ticks.
void loss_figure(std::ostream& os, const PlotData& d) {
  const std::size_t epochs = d.loss.size();
  std::vector<double> numbers(epochs);
  std::iota(numbers.begin(), numbers.end(), 1.0);
  const std::vector<std::size_t> rows = even_picks(epochs, kMaxCurvePoints);
  datablock(os, "loss", {numbers, d.loss}, rows);
  os << out("loss.png") << "set title '"
     << (rows.size() == epochs ? std::string("Training loss")
                               : "Training loss (" + std::to_string(rows.size()) + " of " +
                                     std::to_string(epochs) + " epochs drawn)")
     << "'\nset xlabel 'epoch'\nset ylabel 'loss'\nset autoscale\n"
     << "set xrange [" << (epochs > 1 ? "1:" + std::to_string(epochs) : std::string("0.5:1.5"))
     << "]\nset xtics " << epoch_tick_step(epochs) << " format '%.0f'\nunset key\n";
  if (d.loss.empty())  // --epochs 0: gnuplot fails on a plot without points, so draw an empty frame
    os << "set yrange [0:1]\nset label 1 'no training epochs' at graph 0.5, graph 0.5 center\n"
       << "plot 2 notitle\nunset label 1\n";
  else
    os << "plot $loss using 1:2 with " << (epochs <= 50 ? "linespoints" : "lines")
       << " lw 2 pt 7 lc rgb '#1f77b4'\n";  // a point per epoch while they stay apart
  os << "set xtics autofreq format '% h'\n";
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
     << "unset multiplot\nset terminal pngcairo size 640,480 noenhanced\n";
}

// The Gaussian with several widths: estimates side by side, then their heatmaps side by side.
void widths_figures(std::ostream& os, const PlotData& d, const std::vector<std::size_t>& queries,
                    const std::vector<std::size_t>& train, bool many) {
  const std::size_t k = d.widths.size(), n = d.y_train.size();
  for (std::size_t i = 0; i < k; ++i)
    datablock(os, "wpred" + std::to_string(i), {d.x_query, d.widths[i].y_hat}, queries);
  os << out("gaussian_widths.png") << "set terminal pngcairo size 1200,320 noenhanced\n"
     << "set multiplot layout 1," << k << " title '"
     << drawn("Gaussian kernels of several widths", train.size(), n, " training points") << "'\n";
  for (std::size_t i = 0; i < k; ++i) {
    std::ostringstream t;
    t << "Gaussian, sigma = " << d.widths[i].sigma;
    prediction_plot(os, "wpred" + std::to_string(i), 2, t.str(), !d.y_truth.empty(),
                    "Training data", many, true);
  }
  os << "unset multiplot\n";
  const HeatmapAxes a = heatmap_axes(d);
  std::vector<HeatmapCells> maps;
  for (const WidthResult& w : d.widths)
    maps.push_back(reduce_heatmap(w.weights, a.queries, a.keys, kMaxPanelCells, kMaxPanelCells));
  const std::string note = maps.empty() ? "" : reduction_note(maps[0]);
  os << out("gaussian_widths_attention.png") << "set multiplot layout 1," << k << " title '"
     << "Attention weights of Gaussian kernels" << (note.empty() ? "" : ": " + note) << "'\n";
  for (std::size_t i = 0; i < k; ++i) {
    std::ostringstream t;
    t << "sigma = " << d.widths[i].sigma;
    heatmap(os, "watt" + std::to_string(i), maps[i], t.str(), a.keys_label, a.queries_label, true);
  }
  os << "unset multiplot\nset terminal pngcairo size 640,480 noenhanced\n";
}

std::string script_header() {
  return "# Figures of tapegrad's nadaraya_watson example; run `gnuplot plots.gp` in this "
         "directory.\nset terminal pngcairo size 640,480 noenhanced\n";
}

// The chapter's figures (d = 1 regression).
std::string chapter_script(const PlotData& d) {
  std::ostringstream os;
  os.precision(6);
  const bool truth = !d.y_truth.empty();
  os << script_header();
  const std::size_t n = d.y_train.size();
  const std::vector<std::size_t> train = picked(sorted_rows(d.x_train, 1), kMaxPlotPoints),
                                 queries = picked(sorted_rows(d.x_query, 1), kMaxCurvePoints);
  const std::string train_title = drawn("Training data", train.size(), n);
  const bool many = n > kMaxPlotPoints / 4;
  datablock(os, "train", {d.x_train, d.y_train}, train);
  if (truth) datablock(os, "truth", {d.x_query, d.y_truth}, queries);
  datablock(os, "pred", {d.x_query, d.average, d.nonparametric, d.parametric}, queries);
  os << out("pred_average.png");
  prediction_plot(os, "pred", 2, "Average pooling", truth, train_title, many);
  os << out("pred_nonparametric.png");
  prediction_plot(os, "pred", 3, "Nonparametric attention pooling (" + d.kernel_label + ")", truth,
                  train_title, many);
  os << out("pred_parametric.png");
  prediction_plot(os, "pred", 4, "Parametric attention pooling (learned w)", truth, train_title,
                  many);
  attention_figures(os, d);
  loss_figure(os, d);
  kernels_figure(os);
  if (!d.widths.empty()) widths_figures(os, d, queries, train, many);
  os << "unset output\n";
  return os.str();
}

}  // namespace

namespace {

// The training rows a figure draws for d >= 2 or classes: evenly in the file's order (d >= 2) or
// along x (d = 1).
std::vector<std::size_t> drawn_training_rows(const PlotData& d) {
  const std::size_t n = d.y_train.size();
  if (d.d == 1) return picked(sorted_rows(d.x_train, 1), kMaxPlotPoints);
  return even_picks(n, kMaxPlotPoints);
}

// The training inputs (row-major (n, d)) and y as columns x1 .. xd y; for classification also the
// class colour as 0xRRGGBB (gnuplot's "lc rgb variable").
std::vector<std::vector<double>> training_columns(const PlotData& d) {
  std::vector<std::vector<double>> cols(d.d + 1);
  for (std::size_t i = 0; i < d.x_train.size(); ++i) cols[i % d.d].push_back(d.x_train[i]);
  cols[d.d] = d.y_train;
  if (d.classification) {
    cols.emplace_back();
    for (double label : d.y_train) cols.back().push_back(double(class_colour(label)));
  }
  return cols;
}

// One legend entry per class (the first kLegendClasses), as "keyentry" plot items.
std::string class_legend(std::size_t classes) {
  std::string items;
  for (std::size_t c = 0; c < std::min(classes, kLegendClasses); ++c)
    items += ", keyentry with points pt 7 ps 1 lc rgb '" + rgb(class_colour(double(c))) +
             "' title 'class " + std::to_string(c) + "'";
  return items;
}

// The classes whose probability curves are drawn: every class up to kDrawnClasses, else the
// kDrawnClasses whose probability peaks highest at some query of either pooling (ties: the lower
// class), in class order. Both figures draw the same classes; past ~20 curves a figure is
// unreadable, and gnuplot's time grows with every curve.
std::vector<std::size_t> drawn_classes(const PlotData& d) {
  std::vector<double> peak(d.classes, 0.0);
  for (const Matrix* p : {&d.probabilities_nonparametric, &d.probabilities_parametric})
    for (const std::vector<double>& row : *p)
      for (std::size_t c = 0; c < std::min(row.size(), d.classes); ++c)
        peak[c] = std::max(peak[c], row[c]);
  std::vector<std::size_t> classes(d.classes);
  std::iota(classes.begin(), classes.end(), std::size_t(0));
  if (classes.size() <= kDrawnClasses) return classes;
  std::stable_sort(classes.begin(), classes.end(),
                   [&](std::size_t a, std::size_t b) { return peak[a] > peak[b]; });
  classes.resize(kDrawnClasses);
  std::sort(classes.begin(), classes.end());
  return classes;
}

// d = 1 classification: the drawn classes' probabilities against x (column k + 2 of the block holds
// drawn[k]), each in its class's colour, the training labels on top at p = 1.08.
void probabilities_figure(std::ostream& os, const std::string& file, const std::string& block,
                          const std::string& title, const std::vector<std::size_t>& drawn,
                          std::size_t classes) {
  os << out(file) << "set title \"" << title;
  if (drawn.size() < classes)
    os << "\\n"
       << drawn.size() << " of " << classes << " classes drawn: those most probable at some query";
  os << "\"\nset xlabel 'x'\n"
     << "set ylabel 'p(class | x); training labels at the top'\n"
     << "set autoscale\nset yrange [-0.05:1.15]\nset key outside right\nplot ";
  for (std::size_t k = 0; k < drawn.size(); ++k)
    os << (k ? ", " : "") << "$" << block << " using 1:" << k + 2 << " with lines lw 2 lc rgb '"
       << rgb(class_colour(double(drawn[k]))) << "' "
       << (k < kLegendClasses ? "title 'class " + std::to_string(drawn[k]) + "'" : "notitle");
  os << ", $train using 1:(1.08):3 with points pt 7 ps 0.6 lc rgb variable notitle\n";
}

// The plane's values as x1 x2 value lines (classification: x1 x2 r g b, the class's tint), a
// blank line after each row of the grid.
void plane_block(std::ostream& os, const std::string& name, const PlotData& d,
                 const std::vector<double>& values) {
  os << "$" << name << " << EOD\n";
  for (std::size_t i = 0; i < values.size(); ++i) {
    os << d.plane[2 * i] << " " << d.plane[2 * i + 1] << " ";
    if (d.classification) {
      const unsigned t = region_colour(values[i]);
      os << (t >> 16) << " " << ((t >> 8) & 0xff) << " " << (t & 0xff) << "\n";
    } else {
      os << values[i] << "\n";
    }
    if ((i + 1) % d.plane_n == 0) os << "\n";
  }
  os << "EOD\n";
}

// d = 2: the estimate (regression, a colour scale) or the predicted class (classification, the
// class's tint, one legend entry per class) over the input plane, the training points on top.
void plane_figure(std::ostream& os, const std::string& file, const std::string& block,
                  const std::string& title, const PlotData& d, std::size_t shown) {
  const std::size_t n = d.y_train.size();
  const std::string ps = shown > kMaxPlotPoints / 4 ? "ps 0.3" : "ps 0.7";
  os << out(file) << "set title \"" << title
     << (shown == n ? std::string()
                    : "\\n" + std::to_string(shown) + " of " + std::to_string(n) +
                          " training points drawn")
     << "\"\nset xlabel 'x1'\nset ylabel 'x2'\nset autoscale fix\n";
  if (d.classification)  // the regions in the classes' tints, the points in their full colours
    os << "set key outside right\nunset colorbox\nplot $" << block
       << " using 1:2:3:4:5 with rgbimage notitle, $train using 1:2:4 with points pt 7 " << ps
       << " lc rgb variable notitle, $train using 1:2 with points pt 6 " << ps
       << " lc rgb 'black' notitle" << class_legend(d.classes) << "\nset colorbox\n";
  else
    os << "unset key\nset palette rgb 33,13,10\nset cbrange [*:*]\n"
       << "plot $" << block << " using 1:2:3 with image, "
       << "$train using 1:2 with points pt 7 " << ps << " lc rgb 'black'\n";
}

// x, then the probability column of each drawn class.
std::vector<std::vector<double>> probability_columns(const std::vector<double>& x, const Matrix& p,
                                                     const std::vector<std::size_t>& drawn) {
  std::vector<std::vector<double>> cols = {x};
  for (std::size_t c : drawn) {
    cols.push_back({});
    for (const auto& row : p) cols.back().push_back(row[c]);
  }
  return cols;
}

// The figures of the d-dimensional path (d >= 2, or classification).
std::string nd_script(const PlotData& d) {
  std::ostringstream os;
  os.precision(6);
  os << script_header();
  const std::vector<std::size_t> train = drawn_training_rows(d);
  datablock(os, "train", training_columns(d), train);
  if (d.d == 1) {
    const std::vector<std::size_t> queries = picked(sorted_rows(d.x_query, 1), kMaxCurvePoints);
    const std::vector<std::size_t> classes = drawn_classes(d);
    datablock(os, "prob_np", probability_columns(d.x_query, d.probabilities_nonparametric, classes),
              queries);
    datablock(os, "prob_p", probability_columns(d.x_query, d.probabilities_parametric, classes),
              queries);
    probabilities_figure(os, "probabilities_nonparametric.png", "prob_np",
                         "Nonparametric attention pooling (" + d.kernel_label + ")", classes,
                         d.classes);
    probabilities_figure(os, "probabilities_parametric.png", "prob_p",
                         "Parametric attention pooling (learned w)", classes, d.classes);
  }
  if (d.d == 2) {
    plane_block(os, "plane_np", d, d.plane_nonparametric);
    plane_block(os, "plane_p", d, d.plane_parametric);
    const std::string what = d.classification ? "decision regions" : "estimate";
    plane_figure(os, "plane_nonparametric.png", "plane_np",
                 "Nonparametric pooling (" + d.kernel_label + "), " + what, d, train.size());
    plane_figure(os, "plane_parametric.png", "plane_p", "Parametric pooling (learned w), " + what,
                 d, train.size());
  }
  attention_figures(os, d);
  loss_figure(os, d);
  kernels_figure(os);
  os << "unset output\n";
  return os.str();
}

}  // namespace

std::string gnuplot_script(const PlotData& d) {
  if (d.d != 1 || d.classification) return nd_script(d);
  return chapter_script(d);
}

}  // namespace tapegrad
