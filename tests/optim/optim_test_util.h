// What the optimiser tests share: the small problem of tests/reference/make_blocks_reference.py
// (a 3-5-1 tanh MLP on 8 fixed points, its data and starting parameters stored by the script) and
// the reference cases.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../ops/blocks_reference.h"
#include "ops/linalg.h"
#include "ops/shape.h"
#include "optim/adam.h"
#include "optim/lr_scheduler.h"

namespace tapegrad::test {

// loss = mean((tanh(X W1^T + b1) W2^T + b2 - y)^2), torch's mlp_loss.
template <class T>
struct MlpProblem {
  Tensor<T> X, y;
  std::vector<Tensor<T>> params;  // W1 (5, 3), b1 (5,), W2 (1, 5), b2 (1,)

  explicit MlpProblem(const json& c)
      : X(array_from_json<T>(c.at("X"))), y(array_from_json<T>(c.at("y"))) {
    for (const char* name : {"W1", "b1", "W2", "b2"})
      params.emplace_back(array_from_json<T>(c.at("start").at(name)), true);
  }
  Tensor<T> loss() const {
    const Tensor<T> h = tanh(matmul(X, transpose(params[0], 0, 1)) + params[1]);
    return mean(square(matmul(h, transpose(params[2], 0, 1)) + params[3] - y));
  }
};

// Adam or AdamW with the case's arguments, the rest torch's defaults.
template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const json& c, const std::vector<Tensor<T>>& params) {
  const json& a = c.at("args");
  const bool adamw = c.at("optimizer") == "AdamW";
  const T lr = a.value("lr", 1e-3), eps = a.value("eps", 1e-8);
  const T wd = a.value("weight_decay", adamw ? 1e-2 : 0.0);
  const auto betas = a.value("betas", std::vector<double>{0.9, 0.999});
  const std::pair<T, T> b = {T(betas[0]), T(betas[1])};
  const bool amsgrad = a.value("amsgrad", false);
  if (adamw) return std::make_unique<AdamW<T>>(params, lr, b, eps, wd, amsgrad);
  return std::make_unique<Adam<T>>(params, lr, b, eps, wd, amsgrad);
}

// The case's schedule, or null.
template <class T>
std::unique_ptr<LRScheduler<T>> make_schedule(const json& c, Optimizer<T>& opt) {
  const json& s = c.at("schedule");
  if (s.is_null()) return nullptr;
  if (s.at("name") == "StepLR")
    return std::make_unique<StepLR<T>>(opt, s.at("step_size").get<long>(), s.at("gamma").get<T>());
  return std::make_unique<CosineAnnealingLR<T>>(opt, s.at("T_max").get<long>(),
                                                s.at("eta_min").get<T>());
}

}  // namespace tapegrad::test
