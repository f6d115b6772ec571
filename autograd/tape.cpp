#include "autograd/tape.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>

#include <xtensor/xbuilder.hpp>

namespace tapegrad {

namespace {

thread_local bool tl_grad_enabled = true;
thread_local bool tl_anomaly = false;
// The entry whose backward is running (for anomaly messages about gradients).
thread_local const Entry* tl_running = nullptr;

template <class T>
bool all_finite(const xt::xarray<T>& a) {
  for (const T v : a)
    if (!std::isfinite(v)) return false;
  return true;
}

std::string input_shapes(const std::vector<Shape>& shapes) {
  std::string s;
  for (std::size_t i = 0; i < shapes.size(); ++i) s += (i ? ", " : "") + shape_str(shapes[i]);
  return s.empty() ? "none" : s;
}

std::atomic<std::uint64_t> tape_serials{0};

struct Tape {
  const std::uint64_t serial = ++tape_serials;  // unique in the process, never reused
  std::vector<Entry> entries;                   // ordered by id (= creation order)
  std::uint64_t next_id = 1;                    // 0 means "leaf"
  std::uint64_t next_stamp = 1;                 // one per backward pass
  std::size_t sweep_at = 1024;  // sweep unreachable entries when the tape grows past this

  // The next sweep comes when the tape has doubled (at least 1024 entries): amortised O(1) per
  // entry. Called whenever the tape shrinks, not only after a sweep: otherwise one large graph
  // (say 10^5 ops, then backward) would leave the threshold at 2^17 and let that many dead
  // entries, and the tensors they hold, pile up before the next sweep.
  void reset_sweep_threshold() { sweep_at = std::max<std::size_t>(1024, 2 * entries.size()); }

  // Drops entries whose output nobody can reach. Going from the newest entry to the oldest matters:
  // dropping an entry releases its inputs, which may leave an older entry's output unreachable too.
  void sweep() {
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
      if (it->output.expired()) {
        it->inputs.clear();
        it->backward = nullptr;
      }
    }
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [](const Entry& e) { return e.output.expired(); }),
                  entries.end());
    reset_sweep_threshold();
  }
};

Tape& tape() {
  thread_local Tape t;
  return t;
}

}  // namespace

bool grad_enabled() {
  return tl_grad_enabled;
}

bool anomaly_enabled() {
  return tl_anomaly;
}
DetectAnomalyGuard::DetectAnomalyGuard() : previous_(tl_anomaly) {
  tl_anomaly = true;
}
DetectAnomalyGuard::~DetectAnomalyGuard() {
  tl_anomaly = previous_;
}

NoGradGuard::NoGradGuard() : previous_(tl_grad_enabled) {
  tl_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  tl_grad_enabled = previous_;
}

std::size_t tape_size() {
  return tape().entries.size();
}

const std::vector<Entry>& tape_entries() {
  return tape().entries;
}

void clear_tape() {
  Tape& tp = tape();
  for (auto it = tp.entries.rbegin(); it != tp.entries.rend(); ++it) {
    if (auto out = it->output.lock()) out->graph_freed = out->graph_cleared = true;
  }
  tp.entries.clear();
  tp.reset_sweep_threshold();
}

namespace {

// Anomaly mode's check of a forward output: throws naming the op, its tape position and the input
// shapes when `value` holds NaN or inf.
template <class T>
void check_forward_output(const std::string& op, const xt::xarray<T>& value,
                          const std::vector<std::shared_ptr<NodeBase>>& inputs) {
  if (!tl_anomaly || all_finite(value)) return;
  std::vector<Shape> shapes;
  for (const auto& n : inputs) shapes.push_back(n->shape());
  throw AnomalyError("anomaly: " + op + " (tape position " + std::to_string(tape().next_id) +
                     ") produced NaN or inf in its forward output; input shapes " +
                     input_shapes(shapes));
}

// Appends the entry that made `out` from `inputs` and marks `out` as its non-leaf result.
template <class T>
void append_entry(const std::string& op, Tensor<T>& out,
                  std::vector<std::shared_ptr<NodeBase>> inputs,
                  std::function<void(const Node<T>& out)> backward) {
  Tape& tp = tape();
  if (tp.entries.size() >= tp.sweep_at) tp.sweep();
  Entry e;
  e.id = tp.next_id++;
  e.op = op;
  e.output = out.node_ptr();
  e.inputs = std::move(inputs);
  e.backward = [fn = std::move(backward)](NodeBase& o) { fn(static_cast<const Node<T>&>(o)); };
  Node<T>& n = out.node();
  n.requires_grad = true;
  n.entry_id = e.id;
  n.tape_serial = tp.serial;
  tp.entries.push_back(std::move(e));
}

}  // namespace

template <class T>
Tensor<T> record(const std::string& op, xt::xarray<T> value, const std::vector<Tensor<T>>& inputs,
                 std::function<void(const Node<T>& out)> backward) {
  if (tl_anomaly) {
    std::vector<std::shared_ptr<NodeBase>> nodes;
    for (const auto& t : inputs) nodes.push_back(t.node_ptr());
    check_forward_output(op, value, nodes);
  }
  Tensor<T> out(std::move(value));
  if (!needs_record(inputs)) return out;
  std::vector<std::shared_ptr<NodeBase>> nodes;
  nodes.reserve(inputs.size());
  for (const auto& t : inputs) nodes.push_back(t.node_ptr());
  append_entry(op, out, std::move(nodes), std::move(backward));
  return out;
}

template <class T, class U>
Tensor<T> record_cast(const std::string& op, xt::xarray<T> value, const Tensor<U>& input,
                      std::function<void(const Node<T>& out)> backward) {
  check_forward_output(op, value, {input.node_ptr()});
  Tensor<T> out(std::move(value));
  if (!grad_enabled() || !input.requires_grad()) return out;
  append_entry(op, out, {input.node_ptr()}, std::move(backward));
  return out;
}

template <class T>
void accumulate_grad(const Tensor<T>& t, xt::xarray<T>&& g, const std::string& op) {
  Node<T>& n = t.node();
  if (!n.requires_grad) return;
  if (tl_anomaly && !all_finite(g)) {
    std::string where = op;
    std::vector<Shape> shapes;
    if (tl_running) {
      where = tl_running->op + " (tape position " + std::to_string(tl_running->id) + ")";
      for (const auto& in : tl_running->inputs) shapes.push_back(in->shape());
    }
    throw AnomalyError("anomaly: the backward of " + where +
                       " produced NaN or inf in a gradient of shape " + shape_str(t.shape()) +
                       "; input shapes " + input_shapes(shapes));
  }
  if (!std::equal(g.shape().begin(), g.shape().end(), n.value.shape().begin(),
                  n.value.shape().end()))
    throw std::logic_error("backward of " + op + " produced a gradient of shape " +
                           shape_str(to_shape(g.shape())) + " for an input of shape " +
                           shape_str(to_shape(n.value.shape())));
  if (n.grad_defined) {
    n.grad += g;
  } else {
    n.grad = std::move(g);
    n.grad_defined = true;
  }
}

// --- backward, step by step ------------------------------------------------------------------
namespace {

template <class T>
void check_requires_grad(const Tensor<T>& loss) {
  if (!loss.requires_grad())
    throw std::logic_error("backward: " + describe(loss) +
                           " does not require grad (no input of its graph requires grad, or it was "
                           "made under NoGradGuard)");
}

// Why a node's graph is gone, for the errors below: clear_tape() or an earlier backward.
std::string why_graph_is_gone(const NodeBase& n) {
  if (n.graph_cleared)
    return "its graph was dropped by clear_tape(), which turns every graph on the tape into "
           "constants; record it again after clear_tape()";
  return "its graph was already freed by an earlier backward (backward through the graph a second "
         "time); pass retain_graph=true to the first call if you need to";
}

// Where the entry that made `loss` sits on this thread's tape. Throws when the loss was recorded
// on another thread, or its graph was freed (by backward or clear_tape) and so is not there.
std::size_t position_of_loss_entry(const Tape& tp, const NodeBase& loss, const std::string& what) {
  if (loss.tape_serial != tp.serial)
    throw std::logic_error("backward: " + what +
                           " was recorded on another thread's tape; call backward on that thread");
  if (loss.graph_freed)
    throw std::logic_error("backward: " + what + ": " + why_graph_is_gone(loss));
  // Entries are sorted by id, so a binary search finds it.
  auto pos = std::lower_bound(tp.entries.begin(), tp.entries.end(), loss.entry_id,
                              [](const Entry& e, std::uint64_t id) { return e.id < id; });
  if (pos == tp.entries.end() || pos->id != loss.entry_id)
    throw std::logic_error("backward: the graph of " + what + " is no longer on the tape");
  return static_cast<std::size_t>(pos - tp.entries.begin());
}

// Marks e's inputs as lying on a path to the loss (stamp), so that their own entries will run.
void stamp_inputs(const Entry& e, std::uint64_t stamp) {
  for (const auto& in : e.inputs) {
    if (!in->requires_grad) continue;
    if (in->entry_id != 0 && in->graph_freed)
      throw std::logic_error("backward: " + e.op +
                             " uses a tensor whose graph is gone: " + why_graph_is_gone(*in));
    in->backward_stamp = stamp;
  }
}

// Runs e's backward closure: d(loss)/d(output) -> contributions to d(loss)/d(inputs). tl_running
// names the entry in anomaly messages while it runs.
void run_backward_closure(const Entry& e, NodeBase& out) {
  tl_running = &e;
  try {
    e.backward(out);
  } catch (...) {
    tl_running = nullptr;
    throw;
  }
  tl_running = nullptr;
}

// The reverse walk from the loss's entry (at `last`) down to the first entry. An entry runs when
// its output was stamped by a later entry (it lies on a path to the loss). Returns the positions of
// the entries that ran: the graph of this loss.
std::vector<std::size_t> walk_tape_in_reverse(Tape& tp, std::size_t last, std::uint64_t stamp) {
  std::vector<std::size_t> ran;
  for (std::size_t i = last + 1; i-- > 0;) {
    Entry& e = tp.entries[i];
    std::shared_ptr<NodeBase> out = e.output.lock();
    if (!out || out->backward_stamp != stamp) continue;  // not on a path to the loss
    ran.push_back(i);
    stamp_inputs(e, stamp);
    if (out->has_grad()) run_backward_closure(e, *out);
    if (!out->retains_grad) out->release_grad();  // a non-leaf's grad is only needed until here
  }
  return ran;
}

// Frees the entries that ran (unless retain_graph): marks their outputs, so that a second backward
// through them says so, and drops them from the tape with the tensors they held.
void free_entries(Tape& tp, const std::vector<std::size_t>& ran) {
  for (std::size_t i : ran) {
    Entry& e = tp.entries[i];
    if (auto out = e.output.lock()) out->graph_freed = true;
    e.inputs.clear();
    e.backward = nullptr;
    e.output.reset();
  }
  tp.entries.erase(std::remove_if(tp.entries.begin(), tp.entries.end(),
                                  [](const Entry& e) { return e.output.expired(); }),
                   tp.entries.end());
  tp.reset_sweep_threshold();
}

// The pass itself, once d(loss)/d(loss) is known: seed the loss's grad (moved, not copied), walk
// the tape back from the loss's entry, free what ran.
template <class T>
void backward_from_seed(const Tensor<T>& loss, xt::xarray<T>&& seed, bool retain_graph) {
  Node<T>& ln = loss.node();
  if (ln.entry_id == 0) {  // a leaf: its gradient is the seed itself
    accumulate_grad(loss, std::move(seed), "backward");
    return;
  }
  Tape& tp = tape();
  const std::size_t last = position_of_loss_entry(tp, ln, describe(loss));
  const std::uint64_t stamp = tp.next_stamp++;
  ln.backward_stamp = stamp;
  accumulate_grad(loss, std::move(seed), "backward");
  const std::vector<std::size_t> ran = walk_tape_in_reverse(tp, last, stamp);
  if (!retain_graph) free_entries(tp, ran);
}

}  // namespace

template <class T>
void backward(const Tensor<T>& loss, bool retain_graph) {
  check_requires_grad(loss);
  if (loss.size() != 1)
    throw std::invalid_argument("backward: " + describe(loss) +
                                " is not a scalar; pass the gradient d(loss)/d(output) explicitly");
  backward_from_seed(loss, xt::xarray<T>(xt::ones_like(loss.value())), retain_graph);
}

template <class T>
void backward(const Tensor<T>& loss, xt::xarray<T> grad, bool retain_graph) {
  check_requires_grad(loss);
  if (!std::equal(grad.shape().begin(), grad.shape().end(), loss.value().shape().begin(),
                  loss.value().shape().end()))
    throw std::invalid_argument("backward: gradient of shape " + shape_str(to_shape(grad.shape())) +
                                " for " + describe(loss));
  backward_from_seed(loss, std::move(grad), retain_graph);
}

#define TAPEGRAD_INSTANTIATE(T)                                                                  \
  template Tensor<T> record<T>(const std::string&, xt::xarray<T>, const std::vector<Tensor<T>>&, \
                               std::function<void(const Node<T>&)>);                             \
  template void accumulate_grad<T>(const Tensor<T>&, xt::xarray<T>&&, const std::string&);       \
  template void backward<T>(const Tensor<T>&, bool);                                             \
  template void backward<T>(const Tensor<T>&, xt::xarray<T>, bool);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE
template Tensor<float> record_cast<float, double>(const std::string&, xt::xarray<float>,
                                                  const Tensor<double>&,
                                                  std::function<void(const Node<float>&)>);
template Tensor<double> record_cast<double, float>(const std::string&, xt::xarray<double>,
                                                   const Tensor<float>&,
                                                   std::function<void(const Node<double>&)>);

}  // namespace tapegrad
