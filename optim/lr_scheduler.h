// Learning-rate schedules, torch.optim.lr_scheduler style: a scheduler holds an optimiser (any
// Optimizer, optim/optimizer.h) and the lr it started with (base_lr); each step() advances the
// epoch count and sets the optimiser's lr for the new epoch. Call it once per epoch, after the
// epoch's optimizer.step(), as in PyTorch:
//
//   Adam<double> opt(params, 0.01);
//   CosineAnnealingLR<double> schedule(opt, /*T_max=*/100);
//   for (int epoch = 0; epoch < 100; ++epoch) { ...; opt.step(); schedule.step(); }
//
// The lr of epoch e is a closed form of e (torch computes the same numbers by a recursion, equal
// to rounding). The scheduler keeps a reference to the optimiser, which must outlive it.
#pragma once

#include "optim/optimizer.h"

namespace tapegrad {

template <class T>
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;

  // epoch <- epoch + 1; the optimiser's lr <- lr_at(epoch).
  void step();
  // The lr the last step() set (the optimiser's lr at construction before any step), torch's
  // get_last_lr()[0].
  T get_last_lr() const { return last_lr_; }
  long last_epoch() const { return last_epoch_; }
  T base_lr() const { return base_lr_; }
  // Resuming (e.g. from a checkpoint's meta): the epoch count becomes `epoch` and the optimiser's
  // lr that epoch's. Throws std::invalid_argument for a negative epoch.
  void set_last_epoch(long epoch);
  // The schedule itself: the lr of epoch `epoch` (>= 0); lr_at(0) = base_lr.
  virtual T lr_at(long epoch) const = 0;

 protected:
  explicit LRScheduler(Optimizer<T>& optimizer);

 private:
  Optimizer<T>* optimizer_;
  T base_lr_, last_lr_;
  long last_epoch_ = 0;
};

// torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma=0.1):
//   lr(e) = base_lr * gamma^floor(e / step_size)
// Throws std::invalid_argument naming StepLR unless step_size >= 1 and gamma >= 0.
template <class T>
class StepLR : public LRScheduler<T> {
 public:
  StepLR(Optimizer<T>& optimizer, long step_size, T gamma = T(0.1));
  T lr_at(long epoch) const override;

 private:
  long step_size_;
  T gamma_;
};

// torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max, eta_min=0):
//   lr(e) = eta_min + (base_lr - eta_min) (1 + cos(pi e / T_max)) / 2
// from base_lr at e = 0 down to eta_min at e = T_max (and, like torch, back up after it).
// Throws std::invalid_argument naming CosineAnnealingLR unless T_max >= 1 and eta_min >= 0.
template <class T>
class CosineAnnealingLR : public LRScheduler<T> {
 public:
  CosineAnnealingLR(Optimizer<T>& optimizer, long T_max, T eta_min = 0);
  T lr_at(long epoch) const override;

 private:
  long t_max_;
  T eta_min_;
};

}  // namespace tapegrad
