#include "autograd/graph.h"

#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "autograd/print.h"
#include "autograd/tape.h"

namespace tapegrad {

namespace {

// The part of the tape that produced a tensor: its ancestor entries in recording order, and the
// leaves they read (tensors no entry of the graph made), in the order they are first read.
struct GraphView {
  std::vector<const Entry*> entries;
  std::vector<const NodeBase*> leaves;
  std::map<std::uint64_t, const Entry*> by_id;
};

// One reverse pass over the tape, as backward does: an entry belongs to the graph when its output
// is the root or an input of an entry already in it.
GraphView collect(const NodeBase& root) {
  GraphView g;
  std::set<std::uint64_t> needed;
  if (root.entry_id != 0 && !root.graph_freed) needed.insert(root.entry_id);
  const std::vector<Entry>& all = tape_entries();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (needed.count(it->id) == 0) continue;
    g.entries.insert(g.entries.begin(), &*it);
    g.by_id[it->id] = &*it;
    for (const auto& in : it->inputs)
      if (in->entry_id != 0) needed.insert(in->entry_id);
  }
  std::set<const NodeBase*> seen;
  auto add_leaf = [&](const NodeBase* n) {
    if (g.by_id.count(n->entry_id) == 0 && seen.insert(n).second) g.leaves.push_back(n);
  };
  for (const Entry* e : g.entries)
    for (const auto& in : e->inputs) add_leaf(in.get());
  if (g.entries.empty()) add_leaf(&root);  // a leaf, or a tensor whose entry is gone
  return g;
}

template <class T>
const Node<T>* typed(const NodeBase& n) {
  return dynamic_cast<const Node<T>*>(&n);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// A few values in full, else min / mean / max: short enough for a graph node.
template <class T>
std::string summarise(const xt::xarray<T>& a) {
  if (a.size() == 0) return "empty";
  if (a.size() <= 4) {
    std::string s = "[";
    for (std::size_t i = 0; i < a.size(); ++i) s += (i ? ", " : "") + number(a.data()[i]);
    return s + "]";
  }
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  for (const T v : a) {
    lo = std::fmin(lo, v);
    hi = std::fmax(hi, v);
    sum += v;
  }
  return "min " + number(lo) + ", mean " + number(sum / a.size()) + ", max " + number(hi);
}

std::string value_summary(const NodeBase& n) {
  if (const auto* d = typed<double>(n)) return summarise(d->value);
  if (const auto* f = typed<float>(n)) return summarise(f->value);
  return "";
}

template <class T>
double norm(const xt::xarray<T>& a) {
  double s = 0;
  for (const T v : a) s += static_cast<double>(v) * v;
  return std::sqrt(s);
}

// "|grad| = 0.1234" once backward has left a gradient on n, "" otherwise.
std::string grad_summary(const NodeBase& n) {
  if (!n.has_grad()) return "";
  if (const auto* d = typed<double>(n)) return "|grad| = " + number(norm(d->grad));
  if (const auto* f = typed<float>(n)) return "|grad| = " + number(norm(f->grad));
  return "";
}

std::string leaf_title(const NodeBase& n) {
  if (!n.name.empty()) return n.name;
  if (n.entry_id != 0) return "freed graph";  // made by an entry backward already freed
  return n.requires_grad ? "parameter" : "constant";
}

// DOT string literal contents: quotes and backslashes escaped, lines joined by DOT's "\n".
std::string dot_label(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& line : lines) {
    if (line.empty()) continue;
    if (!s.empty()) s += "\\n";
    for (char c : line) {
      if (c == '"' || c == '\\') s += '\\';
      s += c;
    }
  }
  return s;
}

}  // namespace

template <class T>
std::string to_dot(const Tensor<T>& t) {
  const GraphView g = collect(t.node());
  std::map<const NodeBase*, std::string> ids;  // DOT node id of every tensor in the picture
  std::ostringstream os;
  os << "digraph tape {\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  for (std::size_t i = 0; i < g.leaves.size(); ++i) {
    const NodeBase& n = *g.leaves[i];
    ids[&n] = "l" + std::to_string(i);
    os << "  " << ids[&n] << " [shape=ellipse"
       << (n.requires_grad ? ", style=filled, fillcolor=\"#cfe2ff\"" : "")
       << (&n == &t.node() ? ", peripheries=2" : "") << ", label=\""
       << dot_label({leaf_title(n), shape_str(n.shape()), value_summary(n), grad_summary(n)})
       << "\"];\n";
  }
  for (const Entry* e : g.entries) {
    const std::shared_ptr<NodeBase> out = e->output.lock();
    const std::string id = "e" + std::to_string(e->id);
    if (out) ids[out.get()] = id;
    os << "  " << id << " [shape=box" << (out.get() == &t.node() ? ", peripheries=2" : "")
       << ", label=\""
       << dot_label({"#" + std::to_string(e->id) + " " + e->op, out ? shape_str(out->shape()) : "",
                     out && !out->name.empty() ? "\"" + out->name + "\"" : "",
                     out ? grad_summary(*out) : ""})
       << "\"];\n";
  }
  // Edges in data-flow order: entry by entry as recorded, each one's inputs in argument order.
  for (const Entry* e : g.entries)
    for (const auto& in : e->inputs) {
      auto from = ids.find(in.get());
      const std::string src = from != ids.end() ? from->second : "e" + std::to_string(in->entry_id);
      os << "  " << src << " -> e" << e->id << ";\n";
    }
  os << "}\n";
  return os.str();
}

std::string tape_str() {
  const std::vector<Entry>& all = tape_entries();
  std::ostringstream os;
  os << "tape: " << all.size() << (all.size() == 1 ? " entry\n" : " entries\n");
  for (const Entry& e : all) {
    const std::shared_ptr<NodeBase> out = e.output.lock();
    char head[96];
    std::snprintf(head, sizeof head, "  #%-4llu %-18s -> %-10s <- ",
                  static_cast<unsigned long long>(e.id), e.op.c_str(),
                  out ? shape_str(out->shape()).c_str() : "(dropped)");
    os << head;
    for (std::size_t i = 0; i < e.inputs.size(); ++i) {
      const NodeBase& in = *e.inputs[i];
      const std::string who = in.entry_id != 0   ? "#" + std::to_string(in.entry_id)
                              : !in.name.empty() ? in.name
                              : in.requires_grad ? "leaf"
                                                 : "const";
      os << (i ? ", " : "") << who << ' ' << shape_str(in.shape());
    }
    if (out && out->has_grad()) os << "   " << grad_summary(*out);
    os << '\n';
  }
  return os.str();
}

void print_tape(std::ostream& os) {
  os << tape_str();
}
void print_tape() {
  print_tape(std::cout);
}

template <class T>
void retain_grads(const Tensor<T>& t) {
  const GraphView g = collect(t.node());
  for (const Entry* e : g.entries)
    if (auto out = e->output.lock()) out->retains_grad = true;
}

#define TAPEGRAD_INSTANTIATE(T)                     \
  template std::string to_dot<T>(const Tensor<T>&); \
  template void retain_grads<T>(const Tensor<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
