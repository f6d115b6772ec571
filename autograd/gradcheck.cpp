#include "autograd/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <xtensor/xbuilder.hpp>

#include "autograd/tape.h"

namespace tapegrad {

namespace {

// "(1, 2)" for flat index 5 of shape (2, 3).
std::string unravel(std::size_t flat, const Shape& shape) {
  Shape idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(idx);
}

std::string label(const Tensor<double>& t, std::size_t i) {
  std::string s = "input " + std::to_string(i);
  if (!t.name().empty()) s += " '" + t.name() + "'";
  return s + " of shape " + shape_str(t.shape());
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const GradcheckResult& r) {
  return os << r.message;
}

namespace {

// The positions of the inputs to check (those requiring grad). Sets `error` and returns none when
// an input is undefined or none requires grad.
std::vector<std::size_t> inputs_to_check(const std::vector<Tensor<double>>& inputs,
                                         std::string& error) {
  std::vector<std::size_t> checked;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      error = "gradcheck: input " + std::to_string(i) + " is undefined";
      return {};
    }
    if (inputs[i].requires_grad()) checked.push_back(i);
  }
  if (checked.empty()) error = "gradcheck: no input requires grad; nothing to check";
  return checked;
}

// The caller's grads, put aside while gradcheck works on clean ones, and put back after.
class SavedGrads {
 public:
  explicit SavedGrads(std::vector<Tensor<double>> tensors) : tensors_(std::move(tensors)) {
    for (const auto& t : tensors_) {
      had_.push_back(t.has_grad());
      grads_.push_back(t.has_grad() ? t.grad() : xt::xarray<double>());
    }
  }
  void restore() {
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      tensors_[i].clear_grad();
      if (had_[i]) accumulate_grad(tensors_[i], xt::xarray<double>(grads_[i]), "gradcheck");
    }
  }

 private:
  std::vector<Tensor<double>> tensors_;
  std::vector<bool> had_;
  std::vector<xt::xarray<double>> grads_;
};

// Row j of the Jacobian of y for every checked tensor, by one backward pass seeded with the
// one-hot vector e_j (a vector-Jacobian product): result[c][j] = d y_j / d checked[c].
std::vector<std::vector<xt::xarray<double>>> analytical_jacobian(
    const Tensor<double>& y, std::vector<Tensor<double>> checked) {
  std::vector<std::vector<xt::xarray<double>>> jacobian(checked.size());
  for (std::size_t j = 0; j < y.size(); ++j) {
    for (auto& t : checked) t.clear_grad();
    xt::xarray<double> one_hot = xt::zeros<double>(y.value().shape());
    one_hot.data()[j] = 1.0;
    y.backward(std::move(one_hot), /*retain_graph=*/true);
    for (std::size_t c = 0; c < checked.size(); ++c) {
      const Tensor<double>& t = checked[c];
      jacobian[c].push_back(t.has_grad() ? t.grad()
                                         : xt::xarray<double>(xt::zeros<double>(t.shape())));
    }
  }
  return jacobian;
}

// Column e of the Jacobian by central differences: (f(x + eps e) - f(x - eps e)) / (2 eps), with x
// restored after. None when f's output no longer has m elements under the perturbation.
std::optional<xt::xarray<double>> numerical_column(const GradcheckFn& f,
                                                   const std::vector<Tensor<double>>& inputs,
                                                   Tensor<double> t, std::size_t e, double eps,
                                                   std::size_t m) {
  double& x = t.mutable_value().data()[e];
  const double x0 = x;
  x = x0 + eps;
  const xt::xarray<double> plus = f(inputs).value();
  x = x0 - eps;
  const xt::xarray<double> minus = f(inputs).value();
  x = x0;
  if (plus.size() != m || minus.size() != m) return std::nullopt;
  return xt::xarray<double>((plus - minus) / (2 * eps));
}

// The failure message: which input, element and output, both values and the tolerance.
std::string mismatch(const std::string& input, const Shape& input_shape, std::size_t e,
                     const Shape& output_shape, std::size_t j, double ana, double num,
                     double tolerance) {
  std::ostringstream os;
  os.precision(10);
  os << "gradcheck failed: " << input << ", element " << unravel(e, input_shape)
     << ", output element " << unravel(j, output_shape) << " of shape " << shape_str(output_shape)
     << ": analytical " << ana << " vs numerical " << num << " (|diff| " << std::abs(ana - num)
     << " > atol + rtol * |numerical| = " << tolerance << ")";
  return os.str();
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor<double>>& inputs,
                          double eps, double atol, double rtol) {
  GradcheckResult res;
  const std::vector<std::size_t> checked = inputs_to_check(inputs, res.message);
  if (checked.empty()) return res;
  std::vector<Tensor<double>> checked_tensors;
  for (std::size_t i : checked) checked_tensors.push_back(inputs[i]);

  // Analytical Jacobian, one row per output element, on clean grads.
  SavedGrads caller_grads(checked_tensors);
  const Tensor<double> y = f(inputs);
  if (!y.requires_grad()) {
    res.message = "gradcheck: the output does not require grad (f did not use the inputs?)";
    return res;
  }
  const auto analytical = analytical_jacobian(y, checked_tensors);
  caller_grads.restore();

  // Numerical Jacobian, one column per input element, compared as it is made.
  NoGradGuard no_grad;
  for (std::size_t c = 0; c < checked.size(); ++c) {
    const Tensor<double>& t = checked_tensors[c];
    for (std::size_t e = 0; e < t.size(); ++e) {
      const auto numerical = numerical_column(f, inputs, t, e, eps, y.size());
      if (!numerical) {
        res.message =
            "gradcheck: f changed its output size when " + label(t, checked[c]) + " was perturbed";
        return res;
      }
      for (std::size_t j = 0; j < y.size(); ++j) {
        const double num = numerical->data()[j], ana = analytical[c][j].data()[e];
        const double tolerance = atol + rtol * std::abs(num);
        res.max_abs_error = std::max(res.max_abs_error, std::abs(ana - num));
        if (!(std::abs(ana - num) <= tolerance)) {  // also catches NaN
          res.message =
              mismatch(label(t, checked[c]), t.shape(), e, y.shape(), j, ana, num, tolerance);
          return res;
        }
      }
    }
  }
  res.ok = true;
  std::ostringstream os;
  os << "gradcheck passed: " << checked.size() << " input(s), " << y.size()
     << " output element(s), max |analytical - numerical| = " << res.max_abs_error;
  res.message = os.str();
  return res;
}

}  // namespace tapegrad
