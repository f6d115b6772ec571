// Anomaly mode: find the op that first made a NaN or an inf.
#pragma once

#include <stdexcept>

namespace tapegrad {

// Inside a DetectAnomalyGuard scope (torch.autograd.detect_anomaly), every op's forward output and
// every gradient backward computes are checked for NaN and inf. The first one found throws
// AnomalyError naming the op that produced it, its tape position (entry id) and its input shapes.
// Off by default: the checks read every element once more.
class AnomalyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
bool anomaly_enabled();
class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard();
  ~DetectAnomalyGuard();
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace tapegrad
