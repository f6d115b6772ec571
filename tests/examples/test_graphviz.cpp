// write_graph (examples/graphviz.h): a training step's tape as DOT and PNG.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "examples/graphviz.h"
#include "models/nadaraya_watson.h"
#include "tapegrad.h"

using namespace tapegrad;

namespace {

// One step of the chapter's training: the graph write_graph draws.
struct ChapterStep {
  NWKernelRegression<double> model{1.0};
  Tensor<double> x = tensor({0.5, 1.0, 2.0, 3.5, 4.5}), y = tensor({1.2, 2.4, 2.9, 1.1, -0.4});
  Tensor<double> forward() {
    auto [keys, values] = training_keys_values(x, y);
    return model.forward(x, keys, values);
  }
  Tensor<double> loss(const Tensor<double>& y_hat) { return sum(square(y_hat - y)) * 0.5; }
};

}  // namespace

TEST(Graph, WriteGraphWritesDotAndPngWhenGraphvizIsThere) {
  clear_tape();
  ChapterStep step;
  Tensor<double> loss = step.loss(step.forward());
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "tapegrad_graph_test";
  std::filesystem::remove_all(dir);
  const GraphFiles files = write_graph(dir.string(), loss);
  std::ifstream in(files.dot);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().rfind("digraph tape {", 0), 0u);
  EXPECT_TRUE(step.model.w().has_grad());  // write_graph ran the step's backward
  const bool has_dot = std::system("command -v dot > /dev/null 2>&1") == 0;
  EXPECT_EQ(!files.png.empty(), has_dot);
  if (has_dot) {
    EXPECT_GT(std::filesystem::file_size(files.png), 1000u);
  }
  std::filesystem::remove_all(dir);
}
