// The tensor handle and the node it points to.
//
// A Tensor<T> is a cheap handle (one shared_ptr) to a Node<T>, which owns
//   value          xt::xarray<T>, row-major
//   grad           xt::xarray<T> of the same shape, defined only after a backward pass reached it
//   requires_grad  whether backward should compute d(loss)/d(this)
//   name           optional, used in error messages
// Copying a Tensor copies the handle, not the data: `Tensor<double> b = a;` makes b and a the same
// tensor (the same value and grad), exactly like `b = a` in Python.
//
// A node made by the user is a *leaf*. A node made by an op that recorded a tape entry (because
// some input required grad and grad mode was on) is a *non-leaf*; it remembers the id of its entry.
// The tape (tape.h) is the only owner of the graph: nodes never point at other nodes, so freeing a
// long chain of them cannot recurse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "ops/kernels/shape.h"

namespace tapegrad {

// The number of elements of `shape` (the product of its extents, 1 for a scalar), checked before
// anything is allocated: throws std::length_error naming `op` and the shape when the product does
// not fit in std::size_t, or when that many elements of `element_bytes` bytes each are more than
// one allocation can hold (PTRDIFF_MAX bytes, std::allocator's limit). Without the check,
// (2^32, 2^32) wraps around to 0 elements and (2^62,) fails inside the allocator naming nothing.
// Every factory calls it; an op that computes a new shape calls it too, with sizeof(T):
//   const std::size_t n = checked_numel("repeat", out_shape, sizeof(T));
std::size_t checked_numel(const std::string& op, const Shape& shape, std::size_t element_bytes);

// What every node has, whatever its element type: the tape works on these.
class NodeBase {
 public:
  virtual ~NodeBase() = default;
  virtual bool has_grad() const = 0;
  virtual void release_grad() = 0;
  virtual Shape shape() const = 0;

  bool requires_grad = false;
  bool retains_grad = false;   // keep the grad of a non-leaf after backward (torch retain_grad)
  std::uint64_t entry_id = 0;  // id of the tape entry that made this node; 0 for a leaf
  bool graph_freed = false;  // the entry that made this node was freed (by backward or clear_tape)
  bool graph_cleared = false;  // ... and it was clear_tape() that freed it (for the error message)
  // Serial number of the (thread-local) tape holding that entry. Tapes are numbered, not
  // identified by address: a new thread may get a dead thread's storage, hence its tape's address.
  std::uint64_t tape_serial = 0;
  std::uint64_t backward_stamp = 0;  // marks nodes on the path to the loss during one backward
  std::string name;
};

template <class T>
class Node final : public NodeBase {
 public:
  explicit Node(xt::xarray<T> v) : value(std::move(v)) {}
  bool has_grad() const override { return grad_defined || seed != nullptr; }
  void release_grad() override {
    grad = xt::xarray<T>();
    grad_defined = false;
    seed = nullptr;
  }
  // d(loss)/d(this), what this node's backward closure receives: the grad accumulated from the ops
  // that used it, or, for the loss of a backward(loss, g) call, the caller's g itself, borrowed
  // for the length of that pass (never copied).
  const xt::xarray<T>& upstream() const { return seed ? *seed : grad; }
  Shape shape() const override { return to_shape(value.shape()); }

  xt::xarray<T> value;
  xt::xarray<T> grad;
  bool grad_defined = false;
  const xt::xarray<T>* seed = nullptr;  // the borrowed d(loss)/d(loss), during one backward pass
};

template <class T>
class Tensor {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "tapegrad tensors hold float or double");

 public:
  using value_type = T;
  using array = xt::xarray<T>;

  Tensor() = default;  // a null handle; most functions reject it
  explicit Tensor(array value, bool requires_grad = false);
  explicit Tensor(std::shared_ptr<Node<T>> node) : node_(std::move(node)) {}

  // --- data ---------------------------------------------------------------------------------
  const array& value() const { return node().value; }
  // Writable access for optimizers and for gradcheck's perturbations. Changing a value that a
  // recorded op saved for its backward changes that backward, as in-place ops do in PyTorch.
  array& mutable_value() { return node().value; }
  Shape shape() const { return to_shape(node().value.shape()); }
  std::size_t dim() const { return node().value.dimension(); }
  std::size_t size() const { return node().value.size(); }
  T item() const;  // the single element of a one-element tensor

  // --- gradient -----------------------------------------------------------------------------
  bool requires_grad() const { return node().requires_grad; }
  // Marks a leaf as a parameter (or not). Throws on a non-leaf, as torch does.
  Tensor& requires_grad_(bool on = true);
  bool has_grad() const { return node().grad_defined; }
  const array& grad() const;  // throws std::logic_error when no backward has reached this tensor
  // Sets the grad to zeros (keeps it defined), like torch's zero_grad(set_to_none=False).
  void zero_grad();
  // Forgets the grad (torch: t.grad = None).
  void clear_grad() { node().release_grad(); }
  void retain_grad();  // keep this non-leaf's grad after backward
  bool is_leaf() const { return node().entry_id == 0; }

  // A new leaf sharing nothing with the graph: same values (copied), requires_grad false.
  Tensor detach() const;

  // Reverse-mode pass from this tensor; see tape.h for the contract. `grad` is d(loss)/d(this),
  // borrowed for the pass, never copied (as PyTorch's backward(gradient)).
  void backward(bool retain_graph = false) const;
  void backward(const array& grad, bool retain_graph = false) const;

  // --- identity -----------------------------------------------------------------------------
  const std::string& name() const { return node().name; }
  Tensor& set_name(std::string n) {
    node().name = std::move(n);
    return *this;
  }
  bool defined() const { return static_cast<bool>(node_); }
  Node<T>& node() const;
  const std::shared_ptr<Node<T>>& node_ptr() const { return node_; }
  bool same(const Tensor& other) const { return node_ == other.node_; }

 private:
  std::shared_ptr<Node<T>> node_;
};

// --- factories (all make leaves) ------------------------------------------------------------
// zeros, ones, full, arange and eye check their size with checked_numel before allocating.
template <class T>
Tensor<T> tensor(xt::xarray<T> value, bool requires_grad = false) {
  return Tensor<T>(std::move(value), requires_grad);
}
template <class T>
Tensor<T> scalar(T v, bool requires_grad = false) {
  return Tensor<T>(xt::xarray<T>(v), requires_grad);
}
template <class T>
Tensor<T> zeros(const Shape& shape, bool requires_grad = false);
template <class T>
Tensor<T> ones(const Shape& shape, bool requires_grad = false);
template <class T>
Tensor<T> full(const Shape& shape, T v, bool requires_grad = false);
// start, start + step, start + 2 step, ... up to but excluding stop (torch.arange(start, stop,
// step)): ceil((stop - start) / step) elements, none when that is <= 0. Throws
// std::invalid_argument for a zero or non-finite step or non-finite bounds, and std::length_error
// when the count cannot be allocated.
template <class T>
Tensor<T> arange(T start, T stop, T step = T(1));
// The n x m identity (torch.eye); m = n when omitted.
template <class T>
Tensor<T> eye(std::size_t n, std::size_t m = 0);

// Factories that deduce the element type from the values, or default it to double as torch's
// float64 default does here: tensor({1.0, 2.0}) is a Tensor<double>, tensor({{1.0f}}) a
// Tensor<float> of shape (1, 1), zeros({2, 3}) a Tensor<double>.
template <class T>
Tensor<T> tensor(std::initializer_list<T> values, bool requires_grad = false) {
  xt::xarray<T> a = xt::xarray<T>::from_shape({values.size()});
  std::copy(values.begin(), values.end(), a.begin());
  return Tensor<T>(std::move(a), requires_grad);
}
// Rows of equal length; a ragged list throws std::invalid_argument.
template <class T>
Tensor<T> tensor(std::initializer_list<std::initializer_list<T>> rows, bool requires_grad = false) {
  const std::size_t cols = rows.size() ? rows.begin()->size() : 0;
  xt::xarray<T> a = xt::xarray<T>::from_shape({rows.size(), cols});
  auto out = a.begin();
  for (const auto& row : rows) {
    if (row.size() != cols)
      throw std::invalid_argument("tensor: rows of different lengths (" + std::to_string(cols) +
                                  " and " + std::to_string(row.size()) + ")");
    out = std::copy(row.begin(), row.end(), out);
  }
  return Tensor<T>(std::move(a), requires_grad);
}
inline Tensor<double> zeros(const Shape& shape, bool requires_grad = false) {
  return zeros<double>(shape, requires_grad);
}
inline Tensor<double> ones(const Shape& shape, bool requires_grad = false) {
  return ones<double>(shape, requires_grad);
}

// torch-style sizes as separate arguments: zeros(2, 3), ones<float>(4). Integers only (a bool is
// not a size: zeros({2, 3}, true) is the form that takes requires_grad).
template <class... I>
constexpr bool are_sizes_v = sizeof...(I) > 0 &&
                             ((std::is_integral_v<I> && !std::is_same_v<I, bool>)&&...);
template <class I>
std::size_t size_from(const char* op, I extent) {  // throws on a negative size
  if constexpr (std::is_signed_v<I>)
    if (extent < 0)
      throw std::invalid_argument(std::string(op) + ": negative size " + std::to_string(extent));
  return static_cast<std::size_t>(extent);
}
template <class T = double, class... I, std::enable_if_t<are_sizes_v<I...>, int> = 0>
Tensor<T> zeros(I... extents) {
  return zeros<T>(Shape{size_from("zeros", extents)...});
}
template <class T = double, class... I, std::enable_if_t<are_sizes_v<I...>, int> = 0>
Tensor<T> ones(I... extents) {
  return ones<T>(Shape{size_from("ones", extents)...});
}

// Anything that owns a name gets it into messages: "x (2, 3)" or "(2, 3)".
template <class T>
std::string describe(const Tensor<T>& t);

}  // namespace tapegrad
