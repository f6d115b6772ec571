#include "ops/loss.h"

#include <algorithm>
#include <cmath>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/reduction.h"
#include "ops/softmax.h"

namespace tapegrad {

namespace {

void check_reduction(const std::string& op, const std::string& reduction) {
  if (reduction != "none" && reduction != "mean" && reduction != "sum")
    throw std::invalid_argument(op + ": reduction must be \"none\", \"mean\" or \"sum\", got \"" +
                                reduction + "\"");
}

// The class axis of a classification input: 0 for one sample (C,), else 1.
template <class T>
std::size_t class_axis(const Tensor<T>& input) {
  return input.dim() == 1 ? 0 : 1;
}

// input (N, C, d...) or (C,) and target (N, d...) or (): the shapes, and every target a class
// index or ignore_index.
template <class T>
void check_classification(const std::string& op, const Tensor<T>& input, const IndexArray& target,
                          std::int64_t ignore_index) {
  check_defined(op, input);
  const Shape in = input.shape(), ts = to_shape(target.shape());
  if (in.empty())
    throw std::invalid_argument(op + ": input " + describe(input) +
                                " must be (C,), (N, C) or (N, C, d1, ...)");
  Shape expected = in;
  expected.erase(expected.begin() + static_cast<long>(class_axis(input)));
  if (ts != expected)
    throw std::invalid_argument(op + ": target " + shape_str(ts) + " does not fit input " +
                                describe(input) + " (expected target " + shape_str(expected) + ")");
  const std::int64_t classes = static_cast<std::int64_t>(in[class_axis(input)]);
  for (const std::int64_t t : target)
    if (t != ignore_index && (t < 0 || t >= classes))
      throw std::invalid_argument(op + ": target " + std::to_string(t) + " is out of range for " +
                                  std::to_string(classes) + " classes (input " + describe(input) +
                                  ", ignore_index " + std::to_string(ignore_index) + ")");
}

// -input[n, target[n], ...] per target element (0 where ignored), then reduced; the mean divides
// by the number of counted targets.
// self: -grad at each counted target's position, 0 elsewhere (the reduction's rule first)
template <class T>
Tensor<T> nll_checked(const Tensor<T>& input, const IndexArray& target,
                      const std::string& reduction, std::int64_t ignore_index) {
  const AxisSplit s = split_at_axis(input.shape(), class_axis(input));
  xt::xarray<T> v = xt::xarray<T>::from_shape(target.shape());
  std::vector<std::size_t> at(target.size());  // flat position in input, or SIZE_MAX if ignored
  std::size_t counted = 0;
  for (std::size_t o = 0; o < s.outer; ++o)
    for (std::size_t i = 0; i < s.inner; ++i) {
      const std::size_t e = o * s.inner + i;
      const std::int64_t t = target.data()[e];
      const bool ignored = t == ignore_index;
      at[e] = ignored ? SIZE_MAX : (o * s.len + static_cast<std::size_t>(t)) * s.inner + i;
      v.data()[e] = ignored ? T(0) : -input.value().data()[at[e]];
      counted += ignored ? 0 : 1;
    }
  Tensor<T> losses = record<T>("nll_loss", std::move(v), {input},
                               [input, at](const xt::xarray<T>& grad, const Node<T>&) {
                                 xt::xarray<T> g = xt::zeros<T>(input.value().shape());
                                 for (std::size_t e = 0; e < at.size(); ++e)
                                   if (at[e] != SIZE_MAX) g.data()[at[e]] = -grad.data()[e];
                                 accumulate_grad(input, std::move(g), "nll_loss");
                               });
  if (reduction == "none") return losses;
  if (reduction == "sum") return sum(losses);
  // 0 / 0 = NaN when nothing is counted, as in torch.
  return mul(sum(losses), T(1) / static_cast<T>(counted));
}

// binary_cross_entropy's rules, elementwise on the unreduced losses' gradient g:
//   self: g * (self - target) / max(self (1 - self), eps)     target: g * (log(1 - self) - log(self))
// eps is torch's, a float 1e-12 (9.99999996e-13 as a double) in both dtypes.
template <class T>
void binary_cross_entropy_backward(const Tensor<T>& input, const Tensor<T>& target,
                                   const xt::xarray<T>& grad) {
  const T eps = static_cast<T>(1e-12f);
  const std::size_t n = grad.size();
  const T *x = input.value().data(), *t = target.value().data(), *g = grad.data();
  if (input.requires_grad()) {
    xt::xarray<T> gi = xt::xarray<T>::from_shape(grad.shape());
    for (std::size_t i = 0; i < n; ++i)
      gi.data()[i] = g[i] * (x[i] - t[i]) / std::max(x[i] * (T(1) - x[i]), eps);
    accumulate_grad(input, std::move(gi), "binary_cross_entropy");
  }
  if (target.requires_grad()) {
    xt::xarray<T> gt = xt::xarray<T>::from_shape(grad.shape());
    for (std::size_t i = 0; i < n; ++i)
      gt.data()[i] = g[i] * (std::log(T(1) - x[i]) - std::log(x[i]));
    accumulate_grad(target, std::move(gt), "binary_cross_entropy");
  }
}

}  // namespace

template <class T>
Tensor<T> mse_loss(const Tensor<T>& pred, const Tensor<T>& target, const std::string& reduction) {
  check_defined("mse_loss", pred);
  check_defined("mse_loss", target);
  if (pred.shape() != target.shape())
    throw std::invalid_argument("mse_loss: pred " + describe(pred) + " and target " +
                                describe(target) + " differ in shape");
  check_reduction("mse_loss", reduction);
  if (reduction == "mean" && pred.size() == 0)  // torch returns NaN; we say why instead
    throw std::invalid_argument("mse_loss: reduction \"mean\" of empty tensors of shape " +
                                shape_str(pred.shape()));
  Tensor<T> sq = square(sub(pred, target));
  if (reduction == "none") return sq;
  if (reduction == "sum") return sum(sq);
  return mean(sq);
}

template <class T>
Tensor<T> nll_loss(const Tensor<T>& input, const IndexArray& target, const std::string& reduction,
                   std::int64_t ignore_index) {
  check_reduction("nll_loss", reduction);
  check_classification("nll_loss", input, target, ignore_index);
  return nll_checked(input, target, reduction, ignore_index);
}

// cross_entropy = nll_loss(log_softmax(input, class axis)): its rule is theirs chained,
// input: (softmax(input) - onehot(target)) * grad
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& input, const IndexArray& target,
                        const std::string& reduction, std::int64_t ignore_index) {
  check_reduction("cross_entropy", reduction);
  check_classification("cross_entropy", input, target, ignore_index);
  const long axis = static_cast<long>(class_axis(input));
  return nll_checked(log_softmax(input, axis), target, reduction, ignore_index);
}

// self: grad * (self - target) / max(self (1 - self), 1e-12)
// target: grad * (log(1 - self) - log(self))
// (binary_cross_entropy_backward above applies them)
template <class T>
Tensor<T> binary_cross_entropy(const Tensor<T>& input, const Tensor<T>& target,
                               const std::string& reduction) {
  const std::string op = "binary_cross_entropy";
  check_defined(op, input);
  check_defined(op, target);
  check_reduction(op, reduction);
  if (input.shape() != target.shape())
    throw std::invalid_argument(op + ": input " + describe(input) + " and target " +
                                describe(target) + " differ in shape");
  for (const T x : input.value())
    if (!(x >= T(0) && x <= T(1)))
      throw std::invalid_argument(op + ": every element of input " + describe(input) +
                                  " must be a probability in [0, 1], got " + std::to_string(x));
  auto clamped_log = [](T x) { return std::max(std::log(x), T(-100)); };
  xt::xarray<T> v = xt::xarray<T>::from_shape(input.value().shape());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const T x = input.value().data()[i], t = target.value().data()[i];
    v.data()[i] = -(t * clamped_log(x) + (T(1) - t) * clamped_log(T(1) - x));
  }
  Tensor<T> losses = record<T>(op, std::move(v), {input, target},
                               [input, target](const xt::xarray<T>& grad, const Node<T>&) {
                                 binary_cross_entropy_backward(input, target, grad);
                               });
  if (reduction == "none") return losses;
  if (reduction == "sum") return sum(losses);
  return mean(losses);
}

#define TAPEGRAD_INSTANTIATE(T)                                                             \
  template Tensor<T> mse_loss(const Tensor<T>&, const Tensor<T>&, const std::string&);      \
  template Tensor<T> nll_loss(const Tensor<T>&, const IndexArray&, const std::string&,      \
                              std::int64_t);                                                \
  template Tensor<T> cross_entropy(const Tensor<T>&, const IndexArray&, const std::string&, \
                                   std::int64_t);                                           \
  template Tensor<T> binary_cross_entropy(const Tensor<T>&, const Tensor<T>&, const std::string&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
