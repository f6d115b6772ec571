// tapegrad against PyTorch on the chapter: the numbers in tests/reference/chapter come from the
// chapter's own PyTorch code run in float64 (make_chapter_reference.py) on fixed data.
//
// float64 must agree to 1e-9 relative: the same formulas in the same precision, differing only in
// summation order. float32 must agree with the float64 reference to 1e-4 relative, and with
// PyTorch's own float32 run of the chapter (the reference's "float32") to 1e-6: what a float32
// program prints, up to rounding in the last digit.
// Both formulations of the parametric model are checked: the chapter's composed ops
// (NWKernelRegression::forward on (n, n - 1) key/value matrices) and the fused op (forward_fused).
#include <gtest/gtest.h>

#include "model_test_util.h"
#include "models/nadaraya_watson.h"
#include "ops/fused/nw_attention.h"
#include "optim/sgd.h"
#include "tapegrad.h"

using namespace tapegrad;
using namespace tapegrad::testutil;

namespace {

template <class T>
struct TrainRun {
  std::vector<double> loss;
  double w = 0;
  NWKernelRegression<T> net{T(0)};
};

enum class Impl { Composed, Fused };

// The chapter's training loop, as examples/nadaraya_watson.cpp runs it:
//   l = MSELoss(reduction='none')(net(x, keys, values), y) / 2; l.sum().backward(); trainer.step()
template <class T>
TrainRun<T> train(Impl impl, bool leave_one_out, double momentum = 0, double weight_decay = 0) {
  const auto& ref = reference();
  const auto& d = ref_data();
  const Tensor<T> x = to_tensor<T>(d.x_train), y = to_tensor<T>(d.y_train);
  auto [keys, values] = training_keys_values(x, y, leave_one_out);
  TrainRun<T> r;
  r.net = NWKernelRegression<T>(static_cast<T>(ref["w_init"].get<double>()));
  SGD<T> trainer(r.net.parameters(), static_cast<T>(ref["lr"].get<double>()),
                 static_cast<T>(momentum), static_cast<T>(weight_decay));
  const int epochs = ref["epochs"].get<int>();
  for (int epoch = 0; epoch < epochs; ++epoch) {
    trainer.zero_grad();
    const Tensor<T> f =
        impl == Impl::Fused ? r.net.forward_fused(x, x, y, leave_one_out) : r.net(x, keys, values);
    Tensor<T> l = sum(mse_loss(f, y, "none") * T(0.5));
    l.backward();
    trainer.step();
    r.loss.push_back(static_cast<double>(l.item()));
  }
  r.w = static_cast<double>(r.net.w().value()(0));
  return r;
}

// Tolerances: float64 1e-9, float32 1e-4 (both relative to the float64 reference).
template <class T>
constexpr double tol() {
  return std::is_same_v<T, double> ? 1e-9 : 1e-4;
}
template <class T>
std::string tname(Impl impl = Impl::Composed) {
  return std::string(std::is_same_v<T, double> ? "float64" : "float32") +
         (impl == Impl::Fused ? " fused" : "");
}

template <class T>
void check_leave_one_out_training(Impl impl) {
  const auto& ref = reference()["parametric"];
  const auto& d = ref_data();
  TrainRun<T> r = train<T>(impl, true);
  const std::string name = tname<T>(impl);
  EXPECT_TRUE(
      within_rel(name + " loss per epoch", max_rel_diff(r.loss, json_vec(ref["loss"])), tol<T>()));
  EXPECT_TRUE(within_rel(name + " final w", rel_diff(r.w, ref["w"].get<double>()), tol<T>()));

  // Predictions on the queries with every training pair as keys, (n_query, n_train).
  NoGradGuard no_grad;
  const Tensor<T> x = to_tensor<T>(d.x_train), y = to_tensor<T>(d.y_train);
  const Tensor<T> q = to_tensor<T>(d.x_query);
  auto [keys, values] = query_keys_values(x, y, d.x_query.size());
  ASSERT_EQ(keys.shape(), (Shape{50, 50}));
  const Tensor<T> pred =
      impl == Impl::Fused ? r.net.forward_fused(q, x, y, false) : r.net(q, keys, values);
  EXPECT_TRUE(within_rel(name + " predictions",
                         max_rel_diff(to_vec(pred), json_vec(ref["predictions"])), tol<T>()));

  // Attention weights of that forward, (n_query, n_train). Weights far below 1 carry an absolute
  // error (from the rounding of exponents ~ -100 in float32), so they are compared relative to
  // max(|w|, floor): floor 1e-3 in float32; pure relative (any weight, even 1e-40) in float64.
  const auto wref = json_mat(ref["weights"]);
  const xt::xarray<T> aw =
      impl == Impl::Fused ? nw_attention_weights(q.value(), x.value(), r.net.w().value()(0), false)
                          : r.net.attention_weights().value();
  ASSERT_EQ(to_shape(aw.shape()), (Shape{50, 50}));
  const double floor = std::is_same_v<T, double> ? 1e-300 : 1e-3;
  double m = 0;
  for (std::size_t i = 0; i < 50; ++i)
    for (std::size_t j = 0; j < 50; ++j) m = std::max(m, rel_diff(aw(i, j), wref[i][j], floor));
  EXPECT_TRUE(within_rel(name + " attention weights", m, tol<T>()));
}

template <class T>
void check_gradients(Impl impl) {
  // dL/dw at several w, leave-one-out keys: the gradient the chapter's SGD step applies.
  const auto& ref = reference()["grad"];
  const auto& d = ref_data();
  const auto ws = json_vec(ref["w"]), losses = json_vec(ref["loss"]),
             grads = json_vec(ref["dloss_dw"]);
  const Tensor<T> x = to_tensor<T>(d.x_train), y = to_tensor<T>(d.y_train);
  auto [keys, values] = training_keys_values(x, y);
  std::vector<double> got_loss, got_grad;
  for (double w : ws) {
    NWKernelRegression<T> net(static_cast<T>(w));
    const Tensor<T> f =
        impl == Impl::Fused ? net.forward_fused(x, x, y, true) : net(x, keys, values);
    Tensor<T> l = sum(mse_loss(f, y, "none") * T(0.5));
    l.backward();
    got_loss.push_back(l.item());
    got_grad.push_back(net.w().grad()(0));
  }
  EXPECT_TRUE(within_rel(tname<T>(impl) + " loss at w in {0.1, 0.5, 1, 3, 10}",
                         max_rel_diff(got_loss, losses), tol<T>()));
  EXPECT_TRUE(within_rel(tname<T>(impl) + " dL/dw at w in {0.1, 0.5, 1, 3, 10}",
                         max_rel_diff(got_grad, grads), tol<T>()));
}

}  // namespace

// Leave-one-out training (the chapter's setup): losses, learned w, predictions, attention weights.
TEST(Chapter, LeaveOneOutTrainingMatchesTorchFloat64) {
  check_leave_one_out_training<double>(Impl::Composed);
}
TEST(Chapter, LeaveOneOutTrainingMatchesTorchFloat32) {
  check_leave_one_out_training<float>(Impl::Composed);
}
TEST(Chapter, FusedLeaveOneOutTrainingMatchesTorchFloat64) {
  check_leave_one_out_training<double>(Impl::Fused);
}
TEST(Chapter, FusedLeaveOneOutTrainingMatchesTorchFloat32) {
  check_leave_one_out_training<float>(Impl::Fused);
}

// The backward of the whole model at five w values agrees with torch's autograd.
TEST(Chapter, GradientOfLossMatchesTorchFloat64) {
  check_gradients<double>(Impl::Composed);
}
TEST(Chapter, GradientOfLossMatchesTorchFloat32) {
  check_gradients<float>(Impl::Composed);
}
TEST(Chapter, FusedGradientOfLossMatchesTorchFloat64) {
  check_gradients<double>(Impl::Fused);
}
TEST(Chapter, FusedGradientOfLossMatchesTorchFloat32) {
  check_gradients<float>(Impl::Fused);
}

// Without leave-one-out each row sees its own (x_i, y_i): different losses and a larger w, still
// exactly torch's.
TEST(Chapter, KeepSelfTrainingMatchesTorch) {
  const auto& ref = reference()["keep_self"];
  for (Impl impl : {Impl::Composed, Impl::Fused}) {
    TrainRun<double> r = train<double>(impl, false);
    const std::string n64 = tname<double>(impl), n32 = tname<float>(impl);
    EXPECT_TRUE(
        within_rel(n64 + " keep-self loss", max_rel_diff(r.loss, json_vec(ref["loss"])), 1e-9));
    EXPECT_TRUE(within_rel(n64 + " keep-self w", rel_diff(r.w, ref["w"].get<double>()), 1e-9));
    TrainRun<float> f = train<float>(impl, false);
    EXPECT_TRUE(
        within_rel(n32 + " keep-self loss", max_rel_diff(f.loss, json_vec(ref["loss"])), 1e-4));
    EXPECT_TRUE(within_rel(n32 + " keep-self w", rel_diff(f.w, ref["w"].get<double>()), 1e-4));
  }
}

// SGD with momentum 0.9 and weight decay 0.01 follows torch.optim.SGD step for step.
TEST(Chapter, MomentumWeightDecayTrainingMatchesTorch) {
  const auto& ref = reference()["momentum"];
  const double mom = ref["momentum"].get<double>(), wd = ref["weight_decay"].get<double>();
  for (Impl impl : {Impl::Composed, Impl::Fused}) {
    const std::string n64 = tname<double>(impl), n32 = tname<float>(impl);
    TrainRun<double> r = train<double>(impl, true, mom, wd);
    EXPECT_TRUE(
        within_rel(n64 + " momentum loss", max_rel_diff(r.loss, json_vec(ref["loss"])), 1e-9));
    EXPECT_TRUE(within_rel(n64 + " momentum w", rel_diff(r.w, ref["w"].get<double>()), 1e-9));
    TrainRun<float> f = train<float>(impl, true, mom, wd);
    EXPECT_TRUE(
        within_rel(n32 + " momentum loss", max_rel_diff(f.loss, json_vec(ref["loss"])), 1e-4));
    EXPECT_TRUE(within_rel(n32 + " momentum w", rel_diff(f.w, ref["w"].get<double>()), 1e-4));
  }
}

// Nonparametric gaussian pooling (sigma 1) and average pooling equal the chapter's torch code.
TEST(Chapter, NonparametricAndAverageMatchTorch) {
  const auto& ref = reference();
  const auto& d = ref_data();
  const auto x = to_tensor<double>(d.x_train), y = to_tensor<double>(d.y_train);
  const auto q = to_tensor<double>(d.x_query);
  NWResult<double> r = nadaraya_watson(x, y, q, Kernel::Gaussian, 1.0);
  EXPECT_EQ(r.empty_rows, 0u);
  EXPECT_TRUE(within_rel(
      "float64 nonparametric predictions",
      max_rel_diff(to_vec(r.y_hat), json_vec(ref["nonparametric"]["predictions"])), 1e-9));
  const auto wref = json_mat(ref["nonparametric"]["weights"]);
  ASSERT_EQ(r.weights.shape(), (Shape{50, 50}));
  double m = 0;
  for (std::size_t i = 0; i < 50; ++i)
    for (std::size_t j = 0; j < 50; ++j)
      m = std::max(m, rel_diff(r.weights.value()(i, j), wref[i][j]));
  EXPECT_TRUE(within_rel("float64 nonparametric weights", m, 1e-9));

  const auto avg = average_pooling(y, 50);
  ASSERT_EQ(avg.shape(), (Shape{50}));
  const double a = ref["average"].get<double>();
  for (double v : to_vec(avg)) EXPECT_LE(rel_diff(v, a), 1e-12);

  // float32 too.
  const auto xf = to_tensor<float>(d.x_train), yf = to_tensor<float>(d.y_train);
  NWResult<float> rf = nadaraya_watson(xf, yf, to_tensor<float>(d.x_query), Kernel::Gaussian, 1.0f);
  EXPECT_TRUE(within_rel(
      "float32 nonparametric predictions",
      max_rel_diff(to_vec(rf.y_hat), json_vec(ref["nonparametric"]["predictions"])), 1e-4));
}

// The float32 chapter against PyTorch's float32 run: losses per epoch, learned w, predictions, the
// loss at five w and the nonparametric predictions, to 1e-6 relative. dL/dw at five w to 1e-5: it
// sums terms of both signs, so its float32 rounding is relative to the terms, not to the sum (at
// w = 10 the sum is 1/50 of its largest term).
TEST(Chapter, Float32MatchesTorchFloat32) {
  const auto& ref = reference()["float32"];
  const auto& d = ref_data();
  const Tensor<float> x = to_tensor<float>(d.x_train), y = to_tensor<float>(d.y_train);
  const Tensor<float> q = to_tensor<float>(d.x_query);
  const double tol = 1e-6;
  for (Impl impl : {Impl::Composed, Impl::Fused}) {
    const std::string name = tname<float>(impl);
    TrainRun<float> r = train<float>(impl, true);
    EXPECT_TRUE(
        within_rel(name + " loss per epoch", max_rel_diff(r.loss, json_vec(ref["loss"])), tol));
    EXPECT_TRUE(within_rel(name + " final w", rel_diff(r.w, ref["w"].get<double>()), tol));
    NoGradGuard no_grad;
    auto [keys, values] = query_keys_values(x, y, d.x_query.size());
    const Tensor<float> pred =
        impl == Impl::Fused ? r.net.forward_fused(q, x, y, false) : r.net(q, keys, values);
    EXPECT_TRUE(within_rel(name + " predictions",
                           max_rel_diff(to_vec(pred), json_vec(ref["predictions"])), tol));
  }
  for (Impl impl : {Impl::Composed, Impl::Fused}) {
    std::vector<double> losses, grads;
    auto [keys, values] = training_keys_values(x, y);
    for (double w : json_vec(reference()["grad"]["w"])) {
      NWKernelRegression<float> net(static_cast<float>(w));
      const Tensor<float> f =
          impl == Impl::Fused ? net.forward_fused(x, x, y, true) : net(x, keys, values);
      Tensor<float> l = sum(mse_loss(f, y, "none") * 0.5f);
      l.backward();
      losses.push_back(l.item());
      grads.push_back(net.w().grad()(0));
    }
    EXPECT_TRUE(within_rel(tname<float>(impl) + " loss at five w",
                           max_rel_diff(losses, json_vec(ref["grad_loss"])), tol));
    EXPECT_TRUE(within_rel(tname<float>(impl) + " dL/dw at five w",
                           max_rel_diff(grads, json_vec(ref["dloss_dw"])), 10 * tol));
  }
  const NWResult<float> r = nadaraya_watson(x, y, q, Kernel::Gaussian, 1.0f);
  EXPECT_TRUE(within_rel("float32 nonparametric predictions",
                         max_rel_diff(to_vec(r.y_hat), json_vec(ref["nonparametric_predictions"])),
                         tol));
}
