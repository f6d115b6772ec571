// Seeing the tape (autograd/graph.h): to_dot and print_tape show exactly the entries backward
// walks.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "models/nadaraya_watson.h"
#include "tapegrad.h"

using namespace tapegrad;

namespace {

struct DotNode {
  std::string id, label;
};

// The node statements of a DOT text written by to_dot, in order: `  e3 [shape=box, label="..."];`
std::vector<DotNode> dot_nodes(const std::string& dot, char kind) {
  std::vector<DotNode> nodes;
  std::istringstream in(dot);
  for (std::string line; std::getline(in, line);) {
    if (line.size() < 4 || line[2] != kind || line.find(" [") == std::string::npos) continue;
    const std::size_t l = line.find("label=\"") + 7;
    nodes.push_back({line.substr(2, line.find(" [") - 2), line.substr(l, line.rfind("\"]") - l)});
  }
  return nodes;
}

std::size_t count(const std::string& s, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t p = s.find(part); p != std::string::npos; p = s.find(part, p + 1)) ++n;
  return n;
}

// The chapter's composed forward on 5 training points, and its loss 1/2 sum (f(x_i) - y_i)^2.
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

TEST(Graph, ChapterForwardNodesMatchTheTapeOneForOne) {
  clear_tape();
  ChapterStep step;
  Tensor<double> y_hat = step.forward();
  Tensor<double> loss = step.loss(y_hat);
  const std::vector<Entry>& entries = tape_entries();
  ASSERT_GE(entries.size(), 6u);  // mul, square, mul, softmax, unsqueeze, bmm, reshape, ...
  const std::string dot = to_dot(loss);
  const std::vector<DotNode> ops = dot_nodes(dot, 'e');
  ASSERT_EQ(ops.size(), entries.size()) << dot;
  std::size_t edges = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(ops[i].id, "e" + std::to_string(entries[i].id));
    const std::string head = "#" + std::to_string(entries[i].id) + " " + entries[i].op + "\\n";
    EXPECT_EQ(ops[i].label.rfind(head, 0), 0u) << ops[i].label;
    edges += entries[i].inputs.size();
  }
  EXPECT_EQ(count(dot, " -> "), edges);  // one edge per input of every entry
  EXPECT_NE(dot.find("label=\"w\\n(1,)\\n[1]\""), std::string::npos) << dot;  // w
  EXPECT_EQ(count(dot, "peripheries=2"), 1u);
  // The graph of y_hat is the same minus the loss's entries.
  const std::vector<DotNode> forward_ops = dot_nodes(to_dot(y_hat), 'e');
  ASSERT_LT(forward_ops.size(), ops.size());
  EXPECT_EQ(forward_ops.back().id, "e" + std::to_string(y_hat.node().entry_id));
  EXPECT_EQ(count(tape_str(), "\n"), entries.size() + 1);
}

TEST(Graph, AfterBackwardEveryOpShowsItsGradientNorm) {
  clear_tape();
  ChapterStep step;
  Tensor<double> loss = step.loss(step.forward());
  retain_grads(loss);
  loss.backward(/*retain_graph=*/true);
  const std::string dot = to_dot(loss);
  for (const DotNode& n : dot_nodes(dot, 'e'))
    EXPECT_NE(n.label.find("|grad| = "), std::string::npos) << n.label;
  const double w_grad = std::abs(step.model.w().grad()(0));
  EXPECT_NE(dot.find("|grad| = " + std::to_string(w_grad).substr(0, 4)), std::string::npos) << dot;
  EXPECT_NE(tape_str().find("|grad| = "), std::string::npos);
}

TEST(Graph, LeafAndConstantsAndUnrelatedEntries) {
  clear_tape();
  auto a = tensor({1.0, 2.0}, true).set_name("a");
  auto unrelated = a * 2.0;  // on the tape, not an ancestor of b
  auto b = exp(a);
  const std::vector<DotNode> ops = dot_nodes(to_dot(b), 'e');
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].id, "e" + std::to_string(b.node().entry_id));
  EXPECT_EQ(ops[0].label.find(" exp\\n(2,)"), ops[0].label.find(' ')) << ops[0].label;
  EXPECT_NE(to_dot(a).find("label=\"a\\n(2,)\\n[1, 2]\""), std::string::npos) << to_dot(a);
  EXPECT_NE(tape_str().find(" mul                -> (2,)       <- a (2,)"), std::string::npos)
      << tape_str();
  EXPECT_NE(tape_str().find("<- a (2,)"), std::string::npos) << tape_str();
}
