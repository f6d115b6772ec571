// The engine: recording ops on the tape, and backward as one reverse walk over it.
// (Freeing graphs lives in lifecycle.cpp, NaN hunting in anomaly.cpp.)
#include "autograd/tape.h"

#include <algorithm>
#include <stdexcept>

#include <xtensor/xbuilder.hpp>

#include "autograd/tape_internal.h"

namespace tapegrad {

using detail::Tape;
using detail::tape;

namespace {
thread_local bool tl_grad_enabled = true;
}  // namespace

bool grad_enabled() {
  return tl_grad_enabled;
}
NoGradGuard::NoGradGuard() : previous_(tl_grad_enabled) {
  tl_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  tl_grad_enabled = previous_;
}

namespace {

// Appends the entry that made `out` from `inputs` and marks `out` as its non-leaf result.
template <class T>
void append_entry(const std::string& op, Tensor<T>& out,
                  std::vector<std::shared_ptr<NodeBase>> inputs, BackwardFn<T> backward) {
  Tape& tp = tape();
  if (tp.entries.size() >= tp.sweep_at) tp.sweep();
  Entry e;
  e.id = tp.next_id++;
  e.op = op;
  e.output = out.node_ptr();
  e.inputs = std::move(inputs);
  e.backward = [fn = std::move(backward)](NodeBase& o) {
    const auto& node = static_cast<const Node<T>&>(o);
    fn(node.upstream(), node);
  };
  Node<T>& n = out.node();
  n.requires_grad = true;
  n.entry_id = e.id;
  n.tape_serial = tp.serial;
  tp.entries.push_back(std::move(e));
}

}  // namespace

// Recording: wrap the value in a new node; if some input requires grad (and grad mode is on),
// append an entry that remembers the inputs, the output (weakly) and how to backpropagate.
template <class T>
Tensor<T> record(const std::string& op, xt::xarray<T> value, const std::vector<Tensor<T>>& inputs,
                 BackwardFn<T> backward) {
  detail::check_forward_finite(op, value, inputs, tape().next_id);
  Tensor<T> out(std::move(value));
  if (!needs_record(inputs)) return out;
  std::vector<std::shared_ptr<NodeBase>> nodes;
  for (const auto& t : inputs) nodes.push_back(t.node_ptr());
  append_entry(op, out, std::move(nodes), std::move(backward));
  return out;
}

template <class T, class U>
Tensor<T> record_cast(const std::string& op, xt::xarray<T> value, const Tensor<U>& input,
                      BackwardFn<T> backward) {
  detail::check_forward_finite(op, value, std::vector<Tensor<U>>{input}, tape().next_id);
  Tensor<T> out(std::move(value));
  if (!grad_enabled() || !input.requires_grad()) return out;
  append_entry(op, out, {input.node_ptr()}, std::move(backward));
  return out;
}

// grad(t) += g: a tensor used by several ops receives the sum of their contributions.
template <class T>
void accumulate_grad(const Tensor<T>& t, xt::xarray<T>&& g, const std::string& op) {
  Node<T>& n = t.node();
  if (!n.requires_grad) return;
  detail::check_gradient_finite(op, g, t.shape());
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

namespace {

template <class T>
void check_requires_grad(const Tensor<T>& loss) {
  if (!loss.requires_grad())
    throw std::logic_error("backward: " + describe(loss) +
                           " does not require grad (no input of its graph requires grad, or it was "
                           "made under NoGradGuard)");
}

// The reverse walk from the loss's entry (at `last`) down to the first entry. An entry runs when
// its output was stamped by a later entry that ran (it lies on a path to the loss); it then
// stamps its own inputs. Returns the positions of the entries that ran: the graph of this loss.
std::vector<std::size_t> walk_tape_in_reverse(Tape& tp, std::size_t last, std::uint64_t stamp) {
  std::vector<std::size_t> ran;
  for (std::size_t i = last + 1; i-- > 0;) {
    Entry& e = tp.entries[i];
    std::shared_ptr<NodeBase> out = e.output.lock();
    if (!out || out->backward_stamp != stamp) continue;  // not on a path to the loss
    ran.push_back(i);
    detail::check_inputs_alive(e);
    for (const auto& in : e.inputs)
      if (in->requires_grad) in->backward_stamp = stamp;
    if (out->has_grad()) detail::run_backward_closure(e, *out);
    if (!out->retains_grad) out->release_grad();  // a non-leaf's grad is only needed until here
  }
  return ran;
}

// Lends the seed to the loss's node for one pass, and takes it back however the pass ends.
template <class T>
struct BorrowedSeed {
  Node<T>& node;
  BorrowedSeed(Node<T>& n, const xt::xarray<T>* seed) : node(n) { node.seed = seed; }
  ~BorrowedSeed() { node.seed = nullptr; }
  BorrowedSeed(const BorrowedSeed&) = delete;
  BorrowedSeed& operator=(const BorrowedSeed&) = delete;
};

// The pass itself, once d(loss)/d(loss) is known: lend the seed to the loss (a leaf, or a loss
// that retains its grad, keeps a copy instead), walk the tape back from the loss's entry, free
// what ran.
template <class T>
void backward_from_seed(const Tensor<T>& loss, const xt::xarray<T>& seed, bool retain_graph) {
  Node<T>& ln = loss.node();
  if (ln.entry_id == 0) {  // a leaf: its gradient is the seed itself
    accumulate_grad(loss, xt::xarray<T>(seed), "backward");
    return;
  }
  Tape& tp = tape();
  const std::size_t last = detail::position_of_loss_entry(tp, ln, describe(loss));
  const std::uint64_t stamp = tp.next_stamp++;
  ln.backward_stamp = stamp;
  const bool keeps_copy = ln.retains_grad;  // its .grad must outlive the call
  if (keeps_copy)
    accumulate_grad(loss, xt::xarray<T>(seed), "backward");
  else
    detail::check_gradient_finite("backward", seed, loss.shape());
  BorrowedSeed<T> lent(ln, keeps_copy ? nullptr : &seed);
  const std::vector<std::size_t> ran = walk_tape_in_reverse(tp, last, stamp);
  if (!retain_graph) detail::free_entries(tp, ran);
}

}  // namespace

template <class T>
void backward(const Tensor<T>& loss, bool retain_graph) {
  check_requires_grad(loss);
  if (loss.size() != 1)
    throw std::invalid_argument("backward: " + describe(loss) +
                                " is not a scalar; pass the gradient d(loss)/d(output) explicitly");
  const xt::xarray<T> one = xt::ones_like(loss.value());
  backward_from_seed(loss, one, retain_graph);
}

template <class T>
void backward(const Tensor<T>& loss, const xt::xarray<T>& grad, bool retain_graph) {
  check_requires_grad(loss);
  if (!std::equal(grad.shape().begin(), grad.shape().end(), loss.value().shape().begin(),
                  loss.value().shape().end()))
    throw std::invalid_argument("backward: gradient of shape " + shape_str(to_shape(grad.shape())) +
                                " for " + describe(loss));
  backward_from_seed(loss, grad, retain_graph);
}

#define TAPEGRAD_INSTANTIATE(T)                                                                  \
  template Tensor<T> record<T>(const std::string&, xt::xarray<T>, const std::vector<Tensor<T>>&, \
                               BackwardFn<T>);                                                   \
  template void accumulate_grad<T>(const Tensor<T>&, xt::xarray<T>&&, const std::string&);       \
  template void backward<T>(const Tensor<T>&, bool);                                             \
  template void backward<T>(const Tensor<T>&, const xt::xarray<T>&, bool);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE
template Tensor<float> record_cast<float, double>(const std::string&, xt::xarray<float>,
                                                  const Tensor<double>&, BackwardFn<float>);
template Tensor<double> record_cast<double, float>(const std::string&, xt::xarray<double>,
                                                   const Tensor<float>&, BackwardFn<double>);

}  // namespace tapegrad
