#include "autograd/tensor.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "autograd/tape.h"

namespace tapegrad {

std::size_t checked_numel(const std::string& op, const Shape& shape, std::size_t element_bytes) {
  // Largest element count one allocation can hold: PTRDIFF_MAX bytes (std::allocator's max_size).
  const std::size_t max_count =
      static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) /
      std::max<std::size_t>(element_bytes, 1);
  std::size_t count = 1;
  for (std::size_t extent : shape) {
    if (extent == 0) return 0;  // a size-0 axis: nothing to allocate, however big the others
  }
  for (std::size_t extent : shape) {
    if (count > std::numeric_limits<std::size_t>::max() / extent)
      throw std::length_error(op + ": shape " + shape_str(shape) +
                              " has more elements than std::size_t can count");
    count *= extent;
  }
  if (count > max_count)
    throw std::length_error(op + ": shape " + shape_str(shape) + " has " + std::to_string(count) +
                            " elements of " + std::to_string(element_bytes) +
                            " bytes, more than one allocation can hold");
  // More bytes than the machine has memory can never be allocated: say so by name here, rather
  // than a bare std::bad_alloc later.
  const long pages = sysconf(_SC_PHYS_PAGES), page_bytes = sysconf(_SC_PAGESIZE);
  const double bytes = double(count) * double(element_bytes);
  const double memory = double(pages) * double(page_bytes);
  if (pages > 0 && page_bytes > 0 && bytes > memory) {
    std::ostringstream os;
    os.precision(3);
    os << op << ": shape " << shape_str(shape) << " needs " << bytes / (1 << 30)
       << " GiB, more than this machine's memory (" << memory / (1 << 30) << " GiB)";
    throw std::length_error(os.str());
  }
  return count;
}

template <class T>
Tensor<T>::Tensor(array value, bool requires_grad)
    : node_(std::make_shared<Node<T>>(std::move(value))) {
  node_->requires_grad = requires_grad;
}

template <class T>
Node<T>& Tensor<T>::node() const {
  if (!node_) throw std::logic_error("tapegrad: use of an undefined (default-constructed) Tensor");
  return *node_;
}

template <class T>
T Tensor<T>::item() const {
  if (size() != 1)
    throw std::invalid_argument("item: tensor of shape " + shape_str(shape()) +
                                " has more than one element");
  return *node().value.data();
}

template <class T>
Tensor<T>& Tensor<T>::requires_grad_(bool on) {
  if (!is_leaf())
    throw std::logic_error("requires_grad_: " + describe(*this) +
                           " is not a leaf; call detach() first");
  node().requires_grad = on;
  return *this;
}

template <class T>
const typename Tensor<T>::array& Tensor<T>::grad() const {
  if (!node().grad_defined)
    throw std::logic_error("grad: " + describe(*this) +
                           " has no gradient (it does not require grad, backward has not reached "
                           "it, or it is a non-leaf without retain_grad())");
  return node().grad;
}

template <class T>
void Tensor<T>::zero_grad() {
  auto& n = node();
  if (n.grad_defined) n.grad.fill(T(0));
}

template <class T>
void Tensor<T>::retain_grad() {
  node().retains_grad = true;
}

template <class T>
Tensor<T> Tensor<T>::detach() const {
  return Tensor<T>(node().value, false);
}

template <class T>
void Tensor<T>::backward(bool retain_graph) const {
  tapegrad::backward<T>(*this, retain_graph);
}

template <class T>
void Tensor<T>::backward(const array& grad, bool retain_graph) const {
  tapegrad::backward<T>(*this, grad, retain_graph);
}

namespace {

// An array of `shape` with every element `v`, its size checked before the allocation.
template <class T>
xt::xarray<T> filled(const std::string& factory, const Shape& shape, T v) {
  checked_numel(factory, shape, sizeof(T));
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  a.fill(v);
  return a;
}

// A bound or a count as a person would write it: 0.5, nan, inf, 1e+30.
std::string number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// ceil((stop - start) / step), the number of elements of arange, validated.
std::size_t arange_count(double start, double stop, double step, std::size_t element_bytes) {
  if (!std::isfinite(start) || !std::isfinite(stop))
    throw std::invalid_argument("arange: bounds must be finite, got start " + number(start) +
                                " and stop " + number(stop));
  if (!std::isfinite(step) || step == 0)
    throw std::invalid_argument("arange: step must be finite and non-zero, got " + number(step));
  // Computed in double, as torch does, so arange(0, 5, 0.1) has 50 elements in float too.
  const double n = std::ceil((stop - start) / step);
  if (n <= 0) return 0;  // an empty range: stop is not beyond start in step's direction
  // 2^64 and above cannot be converted to std::size_t (n may even be inf: stop - start overflowed);
  // below that, checked_numel rejects what one allocation cannot hold.
  if (n >= 18446744073709551616.0)
    throw std::length_error("arange: shape (" + number(n) +
                            ",) has more elements than std::size_t can count");
  const std::size_t count = static_cast<std::size_t>(n);
  return checked_numel("arange", {count}, element_bytes);
}

}  // namespace

template <class T>
Tensor<T> zeros(const Shape& shape, bool requires_grad) {
  return Tensor<T>(filled<T>("zeros", shape, T(0)), requires_grad);
}

template <class T>
Tensor<T> ones(const Shape& shape, bool requires_grad) {
  return Tensor<T>(filled<T>("ones", shape, T(1)), requires_grad);
}

template <class T>
Tensor<T> full(const Shape& shape, T v, bool requires_grad) {
  return Tensor<T>(filled<T>("full", shape, v), requires_grad);
}

template <class T>
Tensor<T> arange(T start, T stop, T step) {
  const std::size_t count = arange_count(start, stop, step, sizeof(T));
  xt::xarray<T> a = xt::xarray<T>::from_shape({count});
  for (std::size_t i = 0; i < count; ++i)
    a(i) = static_cast<T>(double(start) + double(i) * double(step));
  return Tensor<T>(std::move(a));
}

template <class T>
Tensor<T> eye(std::size_t n, std::size_t m) {
  if (m == 0) m = n;
  xt::xarray<T> a = filled<T>("eye", {n, m}, T(0));
  for (std::size_t i = 0; i < std::min(n, m); ++i) a(i, i) = T(1);
  return Tensor<T>(std::move(a));
}

template <class T>
std::string describe(const Tensor<T>& t) {
  if (!t.defined()) return "<undefined tensor>";
  const std::string s = shape_str(t.shape());
  return t.name().empty() ? s : t.name() + " " + s;
}

#define TAPEGRAD_INSTANTIATE(T)                        \
  template class Tensor<T>;                            \
  template Tensor<T> zeros<T>(const Shape&, bool);     \
  template Tensor<T> ones<T>(const Shape&, bool);      \
  template Tensor<T> full<T>(const Shape&, T, bool);   \
  template Tensor<T> arange<T>(T, T, T);               \
  template Tensor<T> eye<T>(std::size_t, std::size_t); \
  template std::string describe<T>(const Tensor<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
