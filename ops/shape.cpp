#include "ops/shape.h"

#include <algorithm>

#include <xtensor/xmanipulation.hpp>

#include "ops/common.h"

namespace tapegrad {

namespace {

Shape infer_shape(const std::string& op, const Shape& from, const std::vector<long>& to) {
  Shape out;
  std::size_t known = 1;
  long infer_at = -1;
  for (std::size_t i = 0; i < to.size(); ++i) {
    if (to[i] == -1) {
      if (infer_at >= 0)
        throw std::invalid_argument(op + ": only one extent may be -1 (shape " + shape_str(from) +
                                    ")");
      infer_at = static_cast<long>(i);
      out.push_back(1);
    } else if (to[i] < 0) {
      throw std::invalid_argument(op + ": invalid extent " + std::to_string(to[i]));
    } else {
      out.push_back(static_cast<std::size_t>(to[i]));
      known *= out.back();
    }
  }
  const std::size_t n = numel(from);
  auto target_str = [&] {
    std::string s = "(";
    for (std::size_t i = 0; i < to.size(); ++i) s += (i ? ", " : "") + std::to_string(to[i]);
    return s + ")";
  };
  if (infer_at >= 0) {
    if (known == 0 || n % known != 0)
      throw std::invalid_argument(op + ": cannot reshape " + shape_str(from) + " to " +
                                  target_str());
    out[static_cast<std::size_t>(infer_at)] = n / known;
  } else if (known != n) {
    throw std::invalid_argument(op + ": cannot reshape " + shape_str(from) + " (" +
                                std::to_string(n) + " elements) to " + target_str());
  }
  return out;
}

// Moves axes; records the inverse permutation for backward.
template <class T>
Tensor<T> permute_impl(const std::string& op, const Tensor<T>& a,
                       const std::vector<std::size_t>& perm) {
  std::vector<std::size_t> inverse(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = i;
  xt::xarray<T> v = xt::transpose(a.value(), perm);
  return record<T>(op, std::move(v), {a},
                   [a, op, inverse](const xt::xarray<T>& grad, const Node<T>&) {
                     accumulate_grad(a, xt::xarray<T>(xt::transpose(grad, inverse)), op);
                   });
}

// A reshape recorded under the name of the op that asked for it (reshape, unsqueeze, squeeze), so
// the tape and its picture show what the code called.
// self: grad.reshape(self.shape)
template <class T>
Tensor<T> reshape_as_op(const std::string& op, const Tensor<T>& a, const std::vector<long>& shape) {
  const Shape to = with_names([&] { return infer_shape(op, a.shape(), shape); }, a);
  xt::xarray<T> v = a.value();
  v.reshape(to);
  return record<T>(op, std::move(v), {a}, [a, op](const xt::xarray<T>& grad, const Node<T>&) {
    xt::xarray<T> g = grad;
    g.reshape(a.value().shape());
    accumulate_grad(a, std::move(g), op);
  });
}

}  // namespace

template <class T>
Tensor<T> reshape(const Tensor<T>& a, const Dims& shape) {
  check_defined("reshape", a);
  return reshape_as_op("reshape", a, shape.values());
}

template <class T>
Tensor<T> flatten(const Tensor<T>& a) {
  check_defined("flatten", a);
  return reshape(a, {-1});
}

template <class T>
Tensor<T> unsqueeze(const Tensor<T>& a, long axis) {
  check_defined("unsqueeze", a);
  Shape s = a.shape();
  const long n = static_cast<long>(s.size()) + 1;
  const long ax = axis < 0 ? axis + n : axis;
  if (ax < 0 || ax >= n)
    throw std::invalid_argument("unsqueeze: axis " + std::to_string(axis) +
                                " is out of range for " + describe(a));
  s.insert(s.begin() + ax, 1);
  return reshape_as_op("unsqueeze", a, std::vector<long>(s.begin(), s.end()));
}

template <class T>
Tensor<T> squeeze(const Tensor<T>& a, long axis) {
  check_defined("squeeze", a);
  Shape s = a.shape();
  const std::size_t ax = with_names([&] { return normalize_axis("squeeze", axis, s); }, a);
  if (s[ax] != 1)
    throw std::invalid_argument("squeeze: axis " + std::to_string(axis) + " of " + describe(a) +
                                " has extent " + std::to_string(s[ax]) + ", not 1");
  s.erase(s.begin() + static_cast<long>(ax));
  return reshape_as_op("squeeze", a, std::vector<long>(s.begin(), s.end()));
}

template <class T>
Tensor<T> squeeze(const Tensor<T>& a) {
  check_defined("squeeze", a);
  Shape s;
  for (auto e : a.shape())
    if (e != 1) s.push_back(e);
  return reshape(a, s);
}

// self: grad.transpose(axis0, axis1)
template <class T>
Tensor<T> transpose(const Tensor<T>& a, long axis0, long axis1) {
  check_defined("transpose", a);
  const Shape s = a.shape();
  std::vector<std::size_t> perm(s.size());
  for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  with_names(
      [&] {
        std::swap(perm[normalize_axis("transpose", axis0, s)],
                  perm[normalize_axis("transpose", axis1, s)]);
      },
      a);
  return permute_impl("transpose", a, perm);
}

// self: grad.permute(inverse(dims))
template <class T>
Tensor<T> permute(const Tensor<T>& a, const std::vector<long>& dims) {
  check_defined("permute", a);
  const Shape s = a.shape();
  if (dims.size() != s.size())
    throw std::invalid_argument("permute: " + std::to_string(dims.size()) + " axes given for " +
                                describe(a));
  std::vector<std::size_t> perm;
  for (long d : dims)
    perm.push_back(with_names([&] { return normalize_axis("permute", d, s); }, a));
  std::vector<std::size_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw std::invalid_argument("permute: repeated axis for " + describe(a));
  return permute_impl("permute", a, perm);
}

#define TAPEGRAD_INSTANTIATE(T)                               \
  template Tensor<T> reshape(const Tensor<T>&, const Dims&);  \
  template Tensor<T> flatten(const Tensor<T>&);               \
  template Tensor<T> unsqueeze(const Tensor<T>&, long);       \
  template Tensor<T> squeeze(const Tensor<T>&, long);         \
  template Tensor<T> squeeze(const Tensor<T>&);               \
  template Tensor<T> transpose(const Tensor<T>&, long, long); \
  template Tensor<T> permute(const Tensor<T>&, const std::vector<long>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
