// Anomaly mode (autograd/anomaly.h): the checks record() and accumulate_grad() make inside a
// DetectAnomalyGuard scope, and the bookkeeping that names the op whose backward is running.
#include "autograd/anomaly.h"

#include <cmath>

#include "autograd/tape_internal.h"

namespace tapegrad {

namespace {
thread_local bool tl_anomaly = false;
// The entry whose backward is running (for anomaly messages about gradients).
thread_local const Entry* tl_running = nullptr;

template <class T>
bool all_finite(const xt::xarray<T>& a) {
  for (const T v : a)
    if (!std::isfinite(v)) return false;
  return true;
}

std::string input_shapes(const std::vector<Shape>& shapes) {
  std::string s;
  for (std::size_t i = 0; i < shapes.size(); ++i) s += (i ? ", " : "") + shape_str(shapes[i]);
  return s.empty() ? "none" : s;
}
}  // namespace

bool anomaly_enabled() {
  return tl_anomaly;
}
DetectAnomalyGuard::DetectAnomalyGuard() : previous_(tl_anomaly) {
  tl_anomaly = true;
}
DetectAnomalyGuard::~DetectAnomalyGuard() {
  tl_anomaly = previous_;
}

namespace detail {

template <class T, class U>
void check_forward_finite(const std::string& op, const xt::xarray<T>& value,
                          const std::vector<Tensor<U>>& inputs, std::uint64_t position) {
  if (!tl_anomaly || all_finite(value)) return;
  std::vector<Shape> shapes;
  for (const auto& t : inputs) shapes.push_back(t.shape());
  throw AnomalyError("anomaly: " + op + " (tape position " + std::to_string(position) +
                     ") produced NaN or inf in its forward output; input shapes " +
                     input_shapes(shapes));
}

template <class T>
void check_gradient_finite(const std::string& op, const xt::xarray<T>& g, const Shape& shape) {
  if (!tl_anomaly || all_finite(g)) return;
  std::string where = op;
  std::vector<Shape> shapes;
  if (tl_running) {
    where = tl_running->op + " (tape position " + std::to_string(tl_running->id) + ")";
    for (const auto& in : tl_running->inputs) shapes.push_back(in->shape());
  }
  throw AnomalyError("anomaly: the backward of " + where +
                     " produced NaN or inf in a gradient of shape " + shape_str(shape) +
                     "; input shapes " + input_shapes(shapes));
}

void run_backward_closure(const Entry& e, NodeBase& out) {
  tl_running = &e;
  try {
    e.backward(out);
  } catch (...) {
    tl_running = nullptr;
    throw;
  }
  tl_running = nullptr;
}

#define TAPEGRAD_INSTANTIATE(T, U)                                                   \
  template void check_forward_finite<T, U>(const std::string&, const xt::xarray<T>&, \
                                           const std::vector<Tensor<U>>&, std::uint64_t);
TAPEGRAD_INSTANTIATE(float, float)
TAPEGRAD_INSTANTIATE(double, double)
TAPEGRAD_INSTANTIATE(float, double)
TAPEGRAD_INSTANTIATE(double, float)
template void check_gradient_finite<float>(const std::string&, const xt::xarray<float>&,
                                           const Shape&);
template void check_gradient_finite<double>(const std::string&, const xt::xarray<double>&,
                                            const Shape&);
#undef TAPEGRAD_INSTANTIATE

}  // namespace detail

}  // namespace tapegrad
