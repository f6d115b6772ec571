// What a training loop prints: which epochs get a line (--log-every, --quiet), a progress line on
// a terminal, a warning for a step that scales w by orders of magnitude, and what training
// produced. Shared by the example programs; nothing here knows the model.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace tapegrad {

// The epoch cadence when --log-every is not given: every epoch up to 40 epochs; beyond, the
// smallest of 1, 2, 5, 10, 20, 50, ... that keeps about 40 lines (2000 epochs: every 50th).
long default_log_every(long epochs);

// Which epochs print "epoch k, loss L": every every-th epoch number (numbers count from the first
// epoch ever trained, so a resumed run keeps its cadence), this run's first, and its last, which
// always prints; quiet prints the last alone.
struct EpochLog {
  long every = 1, first = 1, last = 0;
  bool quiet = false;
  bool prints(long number) const;
};

// A progress line on stderr when stderr is a terminal: "epoch 120/2000, 45.2 epochs/s, 42 s left",
// redrawn in place ("\r", the rest of the row cleared). Drawn from half a second into the run, at
// most five times a second; never drawn when disabled (stderr a file or a pipe, or --quiet).
class ProgressLine {
 public:
  ProgressLine(long total, bool enabled);
  ~ProgressLine() { erase(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  void update(long done);  // `done` epochs of `total` finished
  void erase();            // clears the row: call before printing a line of one's own

 private:
  long total_;
  bool enabled_, shown_ = false;
  double start_, last_draw_ = -1;
};

// Whether stderr is a terminal (where ProgressLine draws).
bool stderr_is_terminal();

// The warning for one SGD step (epoch `number`) that changed a coordinate of w more than kBigStep (100x)
// in magnitude, or "" when none did (nor when w was 0 or the new w is not finite): it names the
// cause, the loss summing over the n training points as in the book (its gradient, and so the
// step, grows with n), and a remedy, the learning rate divided by n.
std::string big_step_warning(const std::vector<double>& before, const std::vector<double>& after,
                             long number, std::size_t n, double lr);

// The run's first step that scaled w more than kBigStep (100x) gets big_step_warning on stderr as
// "<program>: warning: ...", once (warned), the progress line cleared first.
void warn_big_step(const std::string& program, std::size_t n, double lr,
                   const std::vector<double>& before, const std::vector<double>& after, long number,
                   ProgressLine& progress, bool& warned);

// What training produced: the loss of each epoch, the time, the learned w.
struct Training {
  std::vector<double> losses;  // L of each epoch, before its step
  double seconds = 0;          // the whole loop (epoch_seconds plus the printing between them)
  // Each epoch's forward, backward and step. The first also pays for one-time costs (OpenMP's
  // threads, the allocator's first pages), so its median is what to set against a benchmark's.
  std::vector<double> epoch_seconds;
  std::vector<double> w;                         // after the last epoch
  std::vector<std::vector<double>> w_per_epoch;  // w after each epoch's step
};

// The median of training.epoch_seconds (0 when no epoch ran).
double median_epoch_seconds(const Training& training);

// Throws UsageError (training diverged) when w or a loss is not finite.
void check_training_finite(const Training& training);

}  // namespace tapegrad
