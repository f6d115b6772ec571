// gradcheck: is a backward rule right? Compare it with finite differences, in float64.
//
// For f: inputs -> output (any shapes), the Jacobian J[j][e] = d output_j / d input_e is computed
// two ways and compared element by element:
//   analytical  one backward pass per output element j, seeded with the one-hot vector e_j
//               (a vector-Jacobian product gives row j of J);
//   numerical   central differences (f(x + eps e) - f(x - eps e)) / (2 eps) per input element e.
// An element passes when |analytical - numerical| <= atol + rtol * |numerical|, as in
// torch.autograd.gradcheck. Checking the full Jacobian covers every upstream gradient, uniform
// or not.
//
// Only inputs with requires_grad are checked (at least one must have it). f must build its output
// from the given tensors and be deterministic. The inputs' own grads are left as they were found.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace tapegrad {

struct GradcheckResult {
  bool ok = false;
  std::string message;  // on failure: input, element, output, both values; on success a summary
  double max_abs_error = 0;  // largest |analytical - numerical| seen
  explicit operator bool() const { return ok; }
};
std::ostream& operator<<(std::ostream& os, const GradcheckResult& r);

using GradcheckFn = std::function<Tensor<double>(const std::vector<Tensor<double>>&)>;

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor<double>>& inputs,
                          double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);

}  // namespace tapegrad
