#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

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

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor<double>>& inputs,
                          double eps, double atol, double rtol) {
  GradcheckResult res;
  std::vector<std::size_t> checked;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      res.message = "gradcheck: input " + std::to_string(i) + " is undefined";
      return res;
    }
    if (inputs[i].requires_grad()) checked.push_back(i);
  }
  if (checked.empty()) {
    res.message = "gradcheck: no input requires grad; nothing to check";
    return res;
  }

  // Keep the caller's grads; gradcheck works on clean ones.
  std::vector<xt::xarray<double>> saved(inputs.size());
  std::vector<bool> had(inputs.size());
  for (std::size_t i : checked) {
    had[i] = inputs[i].has_grad();
    if (had[i]) saved[i] = inputs[i].grad();
  }
  auto restore = [&] {
    for (std::size_t i : checked) {
      Tensor<double> t = inputs[i];
      t.clear_grad();
      if (had[i]) accumulate_grad(t, xt::xarray<double>(saved[i]), "gradcheck");
    }
  };

  // Analytical Jacobian, one row per output element.
  const Tensor<double> y = f(inputs);
  const std::size_t m = y.size();
  if (!y.requires_grad()) {
    res.message = "gradcheck: the output does not require grad (f did not use the inputs?)";
    return res;
  }
  std::vector<std::vector<xt::xarray<double>>> analytical(checked.size());
  for (std::size_t j = 0; j < m; ++j) {
    for (std::size_t i : checked) Tensor<double>(inputs[i]).clear_grad();
    xt::xarray<double> seed = xt::zeros<double>(y.value().shape());
    seed.data()[j] = 1.0;
    y.backward(seed, /*retain_graph=*/true);
    for (std::size_t c = 0; c < checked.size(); ++c) {
      const Tensor<double>& t = inputs[checked[c]];
      analytical[c].push_back(
          t.has_grad() ? t.grad() : xt::xarray<double>(xt::zeros<double>(t.value().shape())));
    }
  }
  restore();

  // Numerical Jacobian, one column per input element, compared as it is made.
  NoGradGuard no_grad;
  for (std::size_t c = 0; c < checked.size(); ++c) {
    Tensor<double> t = inputs[checked[c]];
    for (std::size_t e = 0; e < t.size(); ++e) {
      double& x = t.mutable_value().data()[e];
      const double x0 = x;
      x = x0 + eps;
      const xt::xarray<double> plus = f(inputs).value();
      x = x0 - eps;
      const xt::xarray<double> minus = f(inputs).value();
      x = x0;
      if (plus.size() != m || minus.size() != m) {
        res.message =
            "gradcheck: f changed its output size when " + label(t, checked[c]) + " was perturbed";
        return res;
      }
      for (std::size_t j = 0; j < m; ++j) {
        const double num = (plus.data()[j] - minus.data()[j]) / (2 * eps);
        const double ana = analytical[c][j].data()[e];
        const double err = std::abs(ana - num);
        res.max_abs_error = std::max(res.max_abs_error, err);
        if (!(err <= atol + rtol * std::abs(num))) {  // also catches NaN
          std::ostringstream os;
          os.precision(10);
          os << "gradcheck failed: " << label(t, checked[c]) << ", element "
             << unravel(e, t.shape()) << ", output element " << unravel(j, y.shape())
             << " of shape " << shape_str(y.shape()) << ": analytical " << ana << " vs numerical "
             << num << " (|diff| " << err
             << " > atol + rtol * |numerical| = " << atol + rtol * std::abs(num) << ")";
          res.message = os.str();
          return res;
        }
      }
    }
  }
  res.ok = true;
  std::ostringstream os;
  os << "gradcheck passed: " << checked.size() << " input(s), " << m
     << " output element(s), max |analytical - numerical| = " << res.max_abs_error;
  res.message = os.str();
  return res;
}

}  // namespace tapegrad
