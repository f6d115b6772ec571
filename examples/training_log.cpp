#include "examples/training_log.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "examples/errors.h"

namespace tapegrad {

long default_log_every(long epochs) {
  const long lines = 40;
  for (long decade = 1;; decade *= 10)
    for (long step : {decade, 2 * decade, 5 * decade})
      if (step * lines >= epochs) return step;
}

bool EpochLog::prints(long number) const {
  if (number == last) return true;
  return !quiet && (number == first || number % every == 0);
}

namespace {

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// 42 s, 3 min 5 s, 2 h 7 min.
std::string duration_text(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s";
  return std::to_string(s / 3600) + " h " + std::to_string(s % 3600 / 60) + " min";
}

}  // namespace

bool stderr_is_terminal() {
  return ::isatty(STDERR_FILENO) == 1;
}

ProgressLine::ProgressLine(long total, bool enabled)
    : total_(total), enabled_(enabled && total > 0), start_(seconds_now()) {}

void ProgressLine::update(long done) {
  if (!enabled_) return;
  const double now = seconds_now(), elapsed = now - start_;
  if (elapsed < 0.5 || (last_draw_ >= 0 && now - last_draw_ < 0.2) || done >= total_) return;
  const double rate = double(done) / elapsed;
  char text[160];
  std::snprintf(text, sizeof text, "\repoch %ld/%ld, %.3g epochs/s, %s left\033[K", done, total_,
                rate, duration_text(double(total_ - done) / rate).c_str());
  std::fputs(text, stderr);
  std::fflush(stderr);
  shown_ = true;
  last_draw_ = now;
}

void ProgressLine::erase() {
  if (!shown_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  shown_ = false;
}

// How much one step may scale w before the run is warned. Not 10: the chapter's own first step
// takes w from 0.62 to 9.8 (16x) and converges; a learning rate too large for the n (the loss is
// a sum over n) moves w by hundreds or thousands of times (6610x at n = 20000, lr 0.5).
constexpr double kBigStep = 100;

std::string big_step_warning(const std::vector<double>& before, const std::vector<double>& after,
                             long number, std::size_t n, double lr) {
  for (std::size_t k = 0; k < before.size() && k < after.size(); ++k) {
    const double from = std::abs(before[k]), to = std::abs(after[k]);
    if (from == 0 || !std::isfinite(to) || (to <= kBigStep * from && kBigStep * to >= from))
      continue;
    const double ratio = to > from ? to / from : from / to;
    std::ostringstream os;
    os << "epoch " << number << "'s step changed w"
       << (before.size() > 1 ? "_" + std::to_string(k + 1) : "") << " from " << before[k] << " to "
       << after[k] << " (" << std::llround(std::min(ratio, 1e18)) << "x"
       << (to > from ? "" : " smaller") << "): the loss is a sum over the n = " << n
       << " training points, as in the book, so its gradient and each step grow with n; for the "
          "step of the mean loss try --lr "
       << lr / double(n) << " (--lr / n)";
    return os.str();
  }
  return "";
}

void warn_big_step(const std::string& program, std::size_t n, double lr,
                   const std::vector<double>& before, const std::vector<double>& after, long number,
                   ProgressLine& progress, bool& warned) {
  if (warned) return;
  const std::string warning = big_step_warning(before, after, number, n, lr);
  if (warning.empty()) return;
  progress.erase();
  std::cerr << program << ": warning: " << warning << "\n";
  warned = true;
}

void check_training_finite(const Training& training) {
  const auto finite = [](double v) { return std::isfinite(v); };
  if (!std::all_of(training.w.begin(), training.w.end(), finite) ||
      !std::all_of(training.losses.begin(), training.losses.end(), finite))
    throw UsageError(
        "training diverged (w or the loss is not finite); try a smaller --lr or "
        "--w-init");
}

double median_epoch_seconds(const Training& training) {
  std::vector<double> sorted = training.epoch_seconds;
  if (sorted.empty()) return 0;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t half = sorted.size() / 2;
  return sorted.size() % 2 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
}

}  // namespace tapegrad
