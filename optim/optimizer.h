// The one optimiser interface (torch.optim.Optimizer): SGD (models/sgd.h), Adam and AdamW
// (optim/adam.h) implement it, the schedulers (optim/lr_scheduler.h) drive its learning rate, and
// the checkpoint code (models/checkpoint.h) saves and restores any of them through state().
//
//   step()       one update of every parameter that has a gradient (under NoGradGuard)
//   zero_grad()  every parameter's grad set to zeros (torch's set_to_none=False)
//   lr(), set_lr(lr)
//
// State. An optimiser keeps, per parameter, a fixed list of buffers (SGD: momentum_buffer; Adam:
// step, exp_avg, exp_avg_sq and, with amsgrad, max_exp_avg_sq), each of the parameter's shape or
// a scalar (shape ()). A parameter has all of them, or none yet (before its first update). state()
// lists them as named arrays "<prefix><buffer>.<i>", e.g. "sgd.momentum_buffer.0" or
// "adam.exp_avg_sq.3" (i the parameter's position): the names a checkpoint stores.
// load_state() checks a list of such arrays against the parameters (known buffers, indices in
// range, shapes, each parameter all or nothing) and only then replaces the state; check_state()
// is the check alone, so a checkpoint can check everything before it changes anything.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.h"

namespace tapegrad {

template <class T>
using NamedArrays = std::vector<std::pair<std::string, xt::xarray<T>>>;

template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = default;
  Optimizer(Optimizer&&) noexcept = default;
  Optimizer& operator=(const Optimizer&) = default;
  Optimizer& operator=(Optimizer&&) noexcept = default;

  virtual void step() = 0;
  void zero_grad();

  T lr() const { return lr_; }
  // Throws std::invalid_argument naming the optimiser unless lr is finite and >= 0.
  void set_lr(T lr);
  const std::vector<Tensor<T>>& params() const { return params_; }
  const std::string& name() const { return name_; }  // "SGD", "Adam", "AdamW"
  // What every state record's name starts with: "sgd.", "adam.", "adamw.".
  const std::string& state_prefix() const { return prefix_; }

  NamedArrays<T> state() const;
  // Throws std::invalid_argument, whose message contains "does not match the model", naming the
  // first record that does not fit; changes nothing.
  void check_state(const NamedArrays<T>& state) const;
  // check_state, then the state is exactly `state` (parameters it does not mention have none).
  void load_state(const NamedArrays<T>& state);

 protected:
  // One per-parameter buffer: its name, and whether it is a scalar (shape ()) rather than an
  // array of the parameter's shape.
  struct Buffer {
    std::string name;
    bool scalar = false;
  };
  // Checks lr and that every parameter is a defined leaf that requires grad; `prefix` is the
  // state records' prefix.
  Optimizer(std::string name, std::string prefix, std::vector<Tensor<T>> params, T lr,
            std::vector<Buffer> buffers);
  // A record's value beyond its shape (Adam: the step count a positive integer); throws
  // std::invalid_argument with the reason.
  virtual void check_value(std::size_t /*buffer*/, const xt::xarray<T>& /*value*/) const {}
  // Starts parameter i's state: every buffer zeros (of its shape) and has_state_[i] true.
  void init_state(std::size_t i);

  std::vector<Tensor<T>> params_;
  T lr_;
  std::vector<Buffer> buffers_;
  // state_[k][i]: buffer k of parameter i, meaningful when has_state_[i].
  std::vector<std::vector<xt::xarray<T>>> state_;
  std::vector<bool> has_state_;

 private:
  std::string name_, prefix_;
};

}  // namespace tapegrad
