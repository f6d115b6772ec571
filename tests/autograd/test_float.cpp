// The float32 path: every op is instantiated for float, and a float model must agree with the same
// model in double to float precision, forward and backward.
#include <gtest/gtest.h>

#include "autograd/tape.h"
#include "ops/elementwise.h"
#include "ops/linalg.h"
#include "ops/loss.h"
#include "ops/reduction.h"
#include "ops/softmax.h"

using namespace tapegrad;

namespace {

template <class T>
struct Model {
  Tensor<T> w, b, v, loss;
};

// A small two-layer network with an attention-like softmax, touching most op families.
template <class T>
Model<T> run_model() {
  const xt::xarray<double> xv = {{0.5, -1.0, 0.25}, {1.5, 0.75, -0.5}, {-0.3, 0.2, 1.1}};
  const xt::xarray<double> wv = {{0.2, -0.4}, {0.7, 0.1}, {-0.5, 0.3}};
  const xt::xarray<double> bv = {0.05, -0.1};
  const xt::xarray<double> vv = {0.6, -0.8};
  const xt::xarray<double> yv = {0.3, -0.2, 0.5};
  Model<T> m;
  const auto x = tensor<T>(xt::cast<T>(xv));
  m.w = tensor<T>(xt::cast<T>(wv), true);
  m.b = tensor<T>(xt::cast<T>(bv), true);
  m.v = tensor<T>(xt::cast<T>(vv), true);
  const auto h = tanh(matmul(x, m.w) + m.b);                  // (3, 2)
  const auto attn = softmax(h * T(2), 1);                     // (3, 2)
  const auto pred = matmul(attn * sigmoid(h), m.v) / T(0.5);  // (3,)
  m.loss = mse_loss(pred, tensor<T>(xt::cast<T>(yv))) + mean(square(m.w)) * T(0.01);
  m.loss.backward();
  return m;
}

template <class A, class B>
void expect_close(const char* what, const A& f, const B& d, double tol) {
  ASSERT_EQ(f.size(), d.size()) << what;
  for (std::size_t i = 0; i < f.size(); ++i)
    EXPECT_NEAR(static_cast<double>(f.data()[i]), d.data()[i], tol) << what << " element " << i;
}

TEST(Float32, ModelMatchesFloat64) {
  const Model<float> f = run_model<float>();
  const Model<double> d = run_model<double>();
  expect_close("loss", f.loss.value(), d.loss.value(), 1e-5);
  expect_close("grad w", f.w.grad(), d.w.grad(), 1e-5);
  expect_close("grad b", f.b.grad(), d.b.grad(), 1e-5);
  expect_close("grad v", f.v.grad(), d.v.grad(), 1e-5);
}

// Scalar operands take the tensor's element type, so float code needs no casts or suffixes.
TEST(Float32, ScalarOperandsUseTheElementType) {
  auto x = scalar<float>(2.0f, true);
  auto y = 0.5 * x * x + 1 - x / 4.0;
  y.backward();
  EXPECT_FLOAT_EQ(y.item(), 2.5f);
  EXPECT_FLOAT_EQ(x.grad()(), 1.75f);
}

}  // namespace
