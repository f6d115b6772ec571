// The figures' script (examples/plots.h) at any n: points picked evenly and counted in the key,
// heatmaps sorted whatever the file order and reduced to a bounded number of cells whose rows
// still sum to 1, integer epoch ticks, and class plots with one colour and one legend entry per
// class.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "examples/plots.h"

using namespace tapegrad;

namespace {

// The lines of the datablock $name in a gnuplot script.
std::vector<std::string> block_lines(const std::string& script, const std::string& name) {
  std::vector<std::string> lines;
  const std::size_t at = script.find("$" + name + " << EOD\n");
  if (at == std::string::npos) return lines;
  std::istringstream is(script.substr(script.find('\n', at) + 1));
  std::string line;
  while (std::getline(is, line) && line != "EOD") lines.push_back(line);
  return lines;
}

std::vector<double> numbers(const std::string& line) {
  std::istringstream is(line);
  std::vector<double> v;
  for (double x; is >> x;) v.push_back(x);
  return v;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// d = 1 regression on n training points in the reverse of sorted order and nq sorted queries;
// each query's weights sit on its nearest training input.
PlotData chapter_like(std::size_t n, std::size_t nq, std::size_t epochs) {
  PlotData d;
  for (std::size_t i = 0; i < n; ++i) {
    d.x_train.push_back(5.0 * double(n - 1 - i) / double(n));
    d.y_train.push_back(std::sin(d.x_train.back()));
  }
  for (std::size_t q = 0; q < nq; ++q) {
    const double x = 5.0 * double(q) / double(nq);
    d.x_query.push_back(x);
    d.y_truth.push_back(std::sin(x));
    d.average.push_back(0), d.nonparametric.push_back(0), d.parametric.push_back(0);
    std::vector<double> row(n, 0.0);
    std::size_t nearest = 0;
    for (std::size_t j = 1; j < n; ++j)
      if (std::abs(d.x_train[j] - x) < std::abs(d.x_train[nearest] - x)) nearest = j;
    row[nearest] = 1;
    d.attention_nonparametric.push_back(row);
  }
  d.attention_parametric = d.attention_nonparametric;
  d.kernel_label = "gaussian, sigma = 1";
  for (std::size_t e = 0; e < epochs; ++e) d.loss.push_back(1.0 / double(e + 1));
  return d;
}

}  // namespace

// The decision regions' grid: 100 x 100 for small n, never coarser than 60 x 60.
TEST(Plots, PlaneGridIsFine) {
  EXPECT_EQ(plane_grid_side(200), 100u);
  EXPECT_EQ(plane_grid_side(2000), 100u);
  EXPECT_EQ(plane_grid_side(5000), 63u);
  EXPECT_EQ(plane_grid_side(20000), 60u);
}

TEST(Plots, EvenPicksSpreadEvenlyWithTheEnds) {
  EXPECT_EQ(even_picks(4, 10), (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_EQ(even_picks(10, 3), (std::vector<std::size_t>{0, 5, 9}));
  const std::vector<std::size_t> p = even_picks(20000, 2000);
  ASSERT_EQ(p.size(), 2000u);
  EXPECT_EQ(p.front(), 0u);
  EXPECT_EQ(p.back(), 19999u);
  for (std::size_t i = 1; i < p.size(); ++i) {
    EXPECT_GE(p[i] - p[i - 1], 9u);
    EXPECT_LE(p[i] - p[i - 1], 11u);
  }
}

// Rows and columns in the given orders, columns summed and rows averaged in blocks: every row of
// an attention matrix still sums to 1, and a single large weight stays in its cell.
TEST(Plots, ReduceHeatmapSortsAndKeepsTheMass) {
  const std::size_t rows = 7, cols = 1000;
  Matrix m(rows, std::vector<double>(cols, 0.0));
  for (std::size_t r = 0; r < rows; ++r) m[r][(r * 137) % cols] = 1;
  std::vector<std::size_t> row_order(rows), col_order(cols);
  std::iota(row_order.begin(), row_order.end(), std::size_t(0));
  std::iota(col_order.begin(), col_order.end(), std::size_t(0));
  std::reverse(col_order.begin(), col_order.end());
  const HeatmapCells h = reduce_heatmap(m, row_order, col_order, 400, 400);
  ASSERT_EQ(h.cells.size(), rows);
  ASSERT_EQ(h.cells[0].size(), 400u);
  EXPECT_EQ(h.rows_in, rows);
  EXPECT_EQ(h.cols_in, cols);
  for (std::size_t r = 0; r < rows; ++r) {
    EXPECT_NEAR(std::accumulate(h.cells[r].begin(), h.cells[r].end(), 0.0), 1.0, 1e-12);
    const std::size_t rank = cols - 1 - (r * 137) % cols;  // the column's place once reversed
    const std::size_t cell =
        std::size_t(std::max_element(h.cells[r].begin(), h.cells[r].end()) - h.cells[r].begin());
    EXPECT_EQ(h.cells[r][cell], 1.0) << r;
    EXPECT_LE(cell * cols / 400, rank) << r;  // cell c holds columns [c N / C, (c + 1) N / C)
    EXPECT_LT(rank, (cell + 1) * cols / 400) << r;
  }
  // Rows averaged: 10 rows into 5 cells.
  Matrix tall(10, std::vector<double>{1.0});
  std::vector<std::size_t> ten(10);
  std::iota(ten.begin(), ten.end(), std::size_t(0));
  const HeatmapCells t = reduce_heatmap(tall, ten, {0}, 5, 5);
  ASSERT_EQ(t.cells.size(), 5u);
  for (const auto& row : t.cells) EXPECT_EQ(row, std::vector<double>{1.0});
}

// At n = 20000 the script draws 2000 training points (and says so), keeps the curves and the
// heatmaps bounded, and stays far below a megabyte.
TEST(Plots, LargeRunScriptIsBoundedAndSaysWhatItDraws) {
  PlotData d = chapter_like(20000, 50, 5);
  d.widths.push_back({0.1, std::vector<double>(50, 0.0), d.attention_nonparametric});
  const std::string script = gnuplot_script(d);
  EXPECT_LT(script.size(), 1000000u);
  EXPECT_EQ(block_lines(script, "train").size(), kMaxPlotPoints);
  EXPECT_NE(script.find("'Training data (2000 of 20000 drawn)'"), std::string::npos);
  EXPECT_NE(script.find("(2000 of 20000 training points drawn)"), std::string::npos);
  const std::vector<std::string> att = block_lines(script, "att_np");
  ASSERT_EQ(att.size(), 50u);
  EXPECT_EQ(numbers(att[0]).size(), kMaxHeatmapCells);
  EXPECT_NE(script.find("Sorted training inputs (20000: weights summed in cells of 50)"),
            std::string::npos);
  EXPECT_EQ(numbers(block_lines(script, "watt0")[0]).size(), kMaxPanelCells);
  // The training points drawn are in x order (the lines run left to right).
  std::vector<double> xs;
  for (const auto& line : block_lines(script, "train")) xs.push_back(numbers(line)[0]);
  EXPECT_TRUE(std::is_sorted(xs.begin(), xs.end()));
}

// Training inputs in any file order: the heatmap's columns are sorted by x, so each query's weight
// falls on the diagonal, as the axis label "Sorted training inputs" says.
TEST(Plots, HeatmapKeysAreSortedWhateverTheFileOrder) {
  PlotData d = chapter_like(8, 8, 2);
  std::swap(d.x_train[0], d.x_train[5]);  // scrambled further: not even reversed
  std::swap(d.y_train[0], d.y_train[5]);
  for (auto& row : d.attention_nonparametric) std::swap(row[0], row[5]);
  d.attention_parametric = d.attention_nonparametric;
  const std::string script = gnuplot_script(d);
  const std::vector<std::string> att = block_lines(script, "att_np");
  ASSERT_EQ(att.size(), 8u);
  for (std::size_t q = 0; q < 8; ++q) {
    const std::vector<double> row = numbers(att[q]);
    ASSERT_EQ(row.size(), 8u);
    EXPECT_EQ(std::max_element(row.begin(), row.end()) - row.begin(), long(q)) << att[q];
  }
  EXPECT_NE(script.find("set xlabel 'Sorted training inputs'"), std::string::npos);
}

// loss.png has integer epoch ticks (every epoch up to 10 epochs, then 2, 5, 10, 20, ...) and a
// long curve keeps at most kMaxCurvePoints vertices, the last epoch among them.
TEST(Plots, LossHasIntegerEpochTicksAndABoundedCurve) {
  EXPECT_NE(gnuplot_script(chapter_like(5, 5, 5)).find("set xtics 1 format '%.0f'"),
            std::string::npos);
  EXPECT_NE(gnuplot_script(chapter_like(5, 5, 2000)).find("set xtics 200 format '%.0f'"),
            std::string::npos);
  const std::string script = gnuplot_script(chapter_like(5, 5, 100000));
  const std::vector<std::string> loss = block_lines(script, "loss");
  EXPECT_EQ(loss.size(), kMaxCurvePoints);
  EXPECT_EQ(numbers(loss.back())[0], 100000.0);
  EXPECT_NE(script.find("Training loss (4000 of 100000 epochs drawn)"), std::string::npos);
}

// Decision regions: each class in its own colour (an RGB image, no colour scale), one legend entry
// per class; the heatmap's keys sorted by class, then x1, as its label says.
TEST(Plots, ClassPlotsHaveADiscretePaletteAndOneLegendEntryPerClass) {
  PlotData d;
  d.d = 2, d.classification = true, d.classes = 3;
  for (std::size_t i = 0; i < 12; ++i) {
    d.x_train.push_back(double(i % 4)), d.x_train.push_back(double(i / 4));
    d.y_train.push_back(double((i * 7) % 3));
  }
  d.x_query = d.x_train;
  d.average = d.nonparametric = d.parametric = d.y_train;
  d.attention_nonparametric = d.attention_parametric =
      Matrix(12, std::vector<double>(12, 1.0 / 12));
  d.kernel_label = "gaussian, sigma = 1";
  d.loss = {1.0};
  d.plane_n = 2;
  d.plane = {0, 0, 3, 0, 0, 2, 3, 2};
  d.plane_nonparametric = d.plane_parametric = {0, 1, 2, 1};
  const std::string script = gnuplot_script(d);
  EXPECT_EQ(count(script, "with rgbimage"), 2u);
  EXPECT_EQ(count(script, "keyentry"), 6u);  // 3 classes x 2 figures
  for (const char* entry : {"title 'class 0'", "title 'class 1'", "title 'class 2'"})
    EXPECT_EQ(count(script, entry), 2u) << entry;
  EXPECT_EQ(script.find("maxcolors"), std::string::npos);
  EXPECT_NE(script.find("set xlabel 'Training points, sorted by class, then x1'"),
            std::string::npos);
  // Four plane cells, each an RGB triple: class 1's two cells share a colour, class 0's differs.
  const std::vector<std::string> plane = block_lines(script, "plane_p");
  ASSERT_EQ(plane.size(), 6u);  // a blank line after each row of the grid
  ASSERT_EQ(numbers(plane[0]).size(), 5u);
  const auto colour = [&](std::size_t i) {
    const std::vector<double> v = numbers(plane[i]);
    return std::vector<double>(v.begin() + 2, v.end());
  };
  EXPECT_NE(colour(0), colour(1));
  EXPECT_EQ(colour(1), colour(4));
}

// d = 1 classification with many classes: the probability figures draw the 20 classes that peak
// highest at some query (the same classes in both figures, in class order, each column its class's
// probabilities), and the title says how many of how many are drawn; with few classes, all.
TEST(Plots, ManyClassesDrawTheMostProbableOnes) {
  const std::size_t classes = 1000, m = 30;
  PlotData d;
  d.d = 1, d.classification = true, d.classes = classes;
  for (std::size_t i = 0; i < m; ++i) {
    d.x_train.push_back(double(i)), d.y_train.push_back(double((i * 37) % classes));
  }
  d.x_query = d.x_train;
  d.average = d.nonparametric = d.parametric = d.y_train;
  d.attention_nonparametric = d.attention_parametric = Matrix(m, std::vector<double>(m, 1.0 / m));
  d.kernel_label = "gaussian, sigma = 1";
  d.loss = {1.0};
  // Query i puts 0.5 on class 37 i (nonparametric) or 999 - i (parametric), the rest spread thinly.
  d.probabilities_nonparametric = d.probabilities_parametric =
      Matrix(m, std::vector<double>(classes, 0.5 / double(classes - 1)));
  for (std::size_t i = 0; i < m; ++i) {
    d.probabilities_nonparametric[i][(i * 37) % classes] = 0.5;
    d.probabilities_parametric[i][classes - 1 - i] = 0.4 + 0.001 * double(i);
  }
  std::string script = gnuplot_script(d);
  // Peaks: 0.5 for 30 nonparametric classes, then 0.4.. for parametric; the top 20 are classes 37 i.
  EXPECT_EQ(count(script, "20 of 1000 classes drawn"), 2u);
  const std::vector<std::string> np = block_lines(script, "prob_np");
  ASSERT_EQ(np.size(), m);
  ASSERT_EQ(numbers(np[0]).size(), 21u);  // x and 20 classes
  std::vector<std::size_t> expected;
  for (std::size_t i = 0; i < m; ++i) expected.push_back((i * 37) % classes);
  std::sort(expected.begin(), expected.end());
  expected.erase(std::unique(expected.begin(), expected.end()), expected.end());
  expected.resize(20);  // ties at 0.5: the lower classes
  for (std::size_t k = 0; k < 20; ++k) {
    const std::string entry = "title 'class " + std::to_string(expected[k]) + "'";
    EXPECT_EQ(count(script, entry), k < 10 ? 2u : 0u) << entry;  // the legend names 10
  }
  // Column k + 2 of row i is class expected[k]'s probability at query i (x = i, rows in x order).
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t k = 0; k < 20; ++k)
      EXPECT_NEAR(numbers(np[i])[k + 1], d.probabilities_nonparametric[i][expected[k]], 1e-6);
  d.classes = 3;
  for (Matrix* p : {&d.probabilities_nonparametric, &d.probabilities_parametric})
    for (auto& row : *p) row.resize(3);
  for (double& y : d.y_train) y = std::fmod(y, 3.0);
  script = gnuplot_script(d);
  EXPECT_EQ(script.find("classes drawn"), std::string::npos);
  EXPECT_EQ(numbers(block_lines(script, "prob_p")[0]).size(), 4u);
}
