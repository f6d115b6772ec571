// Anomaly mode: inside a DetectAnomalyGuard the first NaN or inf, in a forward output or in a
// gradient, throws AnomalyError naming the op, its tape position and its input shapes. Outside it,
// nothing is checked (NaN flows through, as in PyTorch).
#include <gtest/gtest.h>

#include <limits>

#include "tapegrad.h"

using namespace tapegrad;

namespace {
std::string anomaly_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const AnomalyError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ReliabilityAnomaly, LogOfNegativeNamesTheOpAndShapes) {
  DetectAnomalyGuard guard;
  auto x = tensor<double>(xt::xarray<double>{{1.0, -2.0}}, true);
  const std::string m = anomaly_message([&] { log(x); });
  EXPECT_NE(m.find("log"), std::string::npos) << m;
  EXPECT_NE(m.find("tape position"), std::string::npos) << m;
  EXPECT_NE(m.find("(1, 2)"), std::string::npos) << m;
}

TEST(ReliabilityAnomaly, SoftmaxOfInfIsCaught) {
  DetectAnomalyGuard guard;
  auto x = tensor<double>(xt::xarray<double>{std::numeric_limits<double>::infinity(), 1.0}, true);
  const std::string m = anomaly_message([&] { softmax(x, 0); });
  EXPECT_NE(m.find("softmax"), std::string::npos) << m;
}

TEST(ReliabilityAnomaly, NonFiniteGradientNamesTheBackwardOp) {
  DetectAnomalyGuard guard;
  auto x = tensor<double>(xt::xarray<double>{0.0, 4.0}, true);  // d sqrt(x)/dx = inf at 0
  auto y = sum(sqrt(x));
  const std::string m = anomaly_message([&] { y.backward(); });
  EXPECT_NE(m.find("backward of sqrt"), std::string::npos) << m;
}

TEST(ReliabilityAnomaly, OffByDefaultAndRestoredAfterTheScope) {
  EXPECT_FALSE(anomaly_enabled());
  {
    DetectAnomalyGuard guard;
    EXPECT_TRUE(anomaly_enabled());
  }
  EXPECT_FALSE(anomaly_enabled());
  auto x = tensor<double>(xt::xarray<double>{-1.0}, true);
  EXPECT_NO_THROW(log(x));  // NaN, unchecked
}
