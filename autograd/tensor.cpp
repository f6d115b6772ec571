#include "autograd/tensor.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include <xtensor/xbuilder.hpp>

#include "autograd/tape.h"

namespace tapegrad {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '(';
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ',';  // a Python tuple: (4,) is a shape, (4) would read as a number
  os << ')';
  return os.str();
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
  tapegrad::backward<T>(*this, nullptr, retain_graph);
}

template <class T>
void Tensor<T>::backward(const array& grad, bool retain_graph) const {
  tapegrad::backward<T>(*this, &grad, retain_graph);
}

template <class T>
Tensor<T> zeros(const Shape& shape, bool requires_grad) {
  return Tensor<T>(xt::xarray<T>(xt::zeros<T>(shape)), requires_grad);
}

template <class T>
Tensor<T> ones(const Shape& shape, bool requires_grad) {
  return Tensor<T>(xt::xarray<T>(xt::ones<T>(shape)), requires_grad);
}

template <class T>
Tensor<T> full(const Shape& shape, T v, bool requires_grad) {
  xt::xarray<T> a = xt::zeros<T>(shape);
  a.fill(v);
  return Tensor<T>(std::move(a), requires_grad);
}

template <class T>
Tensor<T> arange(T start, T stop, T step) {
  if (!(step != T(0))) throw std::invalid_argument("arange: step must be non-zero");
  // Count computed in double, as torch does, so arange(0, 5, 0.1) has 50 elements in float too.
  double n = std::ceil((double(stop) - double(start)) / double(step));
  std::size_t count = n > 0 ? static_cast<std::size_t>(n) : 0;
  xt::xarray<T> a = xt::zeros<T>({count});
  for (std::size_t i = 0; i < count; ++i)
    a(i) = static_cast<T>(double(start) + double(i) * double(step));
  return Tensor<T>(std::move(a));
}

template <class T>
Tensor<T> eye(std::size_t n, std::size_t m) {
  if (m == 0) m = n;
  xt::xarray<T> a = xt::zeros<T>({n, m});
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
