// The tape: reverse-mode autodiff as a list of recorded operations.
//
// Recording. When an op runs with grad mode on and at least one input requiring grad, it appends
// one Entry to the calling thread's tape: its name, its inputs, a weak reference to its output, and
// a backward closure that turns d(loss)/d(output) into contributions to d(loss)/d(inputs). Entries
// are appended in creation order, and an op can only consume tensors that already exist, so the
// tape is already a topological order of the graph: backward is one loop over it in reverse, no
// recursion, no sort, and a chain of 10^5 ops costs 10^5 iterations and no stack.
//
// Backward. backward(loss) seeds d(loss)/d(loss) (1 for a scalar, or the given grad), then walks
// the tape from the loss's entry down to the first entry. An entry runs when its output lies on a
// path to the loss (its output was stamped by a later entry that ran); it then stamps its inputs.
// Each input's contribution is *added* to its grad (a tensor used twice receives both terms). The
// grad of a non-leaf is freed as soon as its entry has run, unless retain_grad() was called; leaves
// keep theirs and keep accumulating across backward calls until zero_grad().
//
// Lifecycle.
//  - backward(loss) frees the entries it ran (the graph of this loss) unless retain_graph is true.
//    The outputs of freed entries are marked; backpropagating through one of them again throws
//    std::logic_error ("... a second time ... retain_graph=true"), like PyTorch.
//  - Entries of graphs nobody can reach any more (every handle to their output dropped, and no
//    later entry using it) are swept away as the tape grows, so a loop that builds graphs and never
//    calls backward, or drops them, runs in bounded memory.
//  - Inside a NoGradGuard scope nothing is recorded: outputs are leaves with requires_grad false.
//  - The tape is thread_local: each thread records and backpropagates its own graphs, so
//    independent models can train on different threads. Backward of a tensor recorded on another
//    thread throws.
//  - clear_tape() drops every entry of this thread (all graphs become constants); backward through
//    a graph it dropped throws std::logic_error saying so.
//
// The seed. backward(loss, g) borrows g: the loss's backward closure receives g itself as its
// upstream gradient, so no copy of g is made (a leaf loss, or one that retains its grad, stores
// a copy, as its .grad must outlive the call).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/anomaly.h"
#include "autograd/tensor.h"

namespace tapegrad {

// --- grad mode ------------------------------------------------------------------------------
bool grad_enabled();  // true unless inside a NoGradGuard (per thread)

// RAII scope in which ops record nothing (torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// --- the tape -------------------------------------------------------------------------------
struct Entry {
  std::uint64_t id = 0;
  std::string op;
  std::weak_ptr<NodeBase> output;                 // weak: the entry must not keep its output alive
  std::vector<std::shared_ptr<NodeBase>> inputs;  // strong: backward needs them
  std::function<void(NodeBase& output)> backward;
};

std::size_t tape_size();  // entries on this thread's tape (for tests and curious learners)
// This thread's entries, oldest first, read-only: what print_tape and to_dot (autograd/graph.h)
// show.
const std::vector<Entry>& tape_entries();
void clear_tape();

// True when an op with these inputs must record an entry (grad mode on, some input requires grad).
template <class T>
bool needs_record(const std::vector<Tensor<T>>& inputs) {
  if (!grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

// What an op's backward closure is given: `grad`, d(loss)/d(output), and the output node (for
// rules that reuse the forward's result, out.value). It adds d(loss)/d(input) to each input
// through accumulate_grad().
template <class T>
using BackwardFn = std::function<void(const xt::xarray<T>& grad, const Node<T>& out)>;

// The one way ops make their result. Wraps `value` in a new node; when needs_record(inputs),
// appends an entry whose backward calls `backward(grad, out)`, and marks the result
// requires_grad.
template <class T>
Tensor<T> record(const std::string& op, xt::xarray<T> value, const std::vector<Tensor<T>>& inputs,
                 BackwardFn<T> backward);

// record() for an op whose one input has the other element type: the dtype cast `to`
// (ops/elementwise.h), float -> double or double -> float. The same entry, the same rules.
template <class T, class U>
Tensor<T> record_cast(const std::string& op, xt::xarray<T> value, const Tensor<U>& input,
                      BackwardFn<T> backward);

// grad(t) += g, allocating it on first use; skipped when t does not require grad. Throws
// std::logic_error if g's shape differs from t's: a backward rule that returns a wrong shape is a
// bug in that rule, and this is where it shows.
template <class T>
void accumulate_grad(const Tensor<T>& t, xt::xarray<T>&& g, const std::string& op);

// Backward from a one-element `loss`, seeded with d(loss)/d(loss) = 1.
template <class T>
void backward(const Tensor<T>& loss, bool retain_graph = false);
// Backward from `loss` of any shape; `grad` is d(loss)/d(loss), of loss's shape, borrowed for the
// pass (not copied; it must not change while backward runs).
template <class T>
void backward(const Tensor<T>& loss, const xt::xarray<T>& grad, bool retain_graph = false);

}  // namespace tapegrad
