// models/nadaraya_watson_nd.h: Nadaraya-Watson on vectors and on classes. PyTorch float64
// reference numbers (tests/reference/make_nd_reference.py -> nd_reference.json) for forward values
// and gradients in both dtypes, float64 gradchecks of every differentiable function on several
// shapes, wrong shapes, the cross-entropy's stability, and agreement with the 1-D chapter model.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autograd/throws_with.h"
#include "autograd/gradcheck_gtest.h"
#include "model_test_util.h"
#include "data/datasets.h"
#include "models/nadaraya_watson.h"
#include "models/nadaraya_watson_nd.h"
#include "optim/sgd.h"
#include "ops/attention_nd.h"
#include "tapegrad.h"

using namespace tapegrad;
using namespace tapegrad::testutil;
using nlohmann::json;

namespace {

// --- the reference file and comparisons -----------------------------------------------------

const json& nd_reference() {
  static const json j = [] {
    const std::string path = std::string(TAPEGRAD_CHAPTER_REF_DIR) + "/../nd_reference.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return j;
}

// {"shape": [...], "data": [...]} -> xarray<T>.
template <class T>
xt::xarray<T> ref_array(const json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  const auto data = j.at("data").get<std::vector<double>>();
  xt::xarray<T> a = xt::zeros<T>(shape);
  if (a.size() != data.size()) throw std::runtime_error("nd_reference: size mismatch");
  std::transform(data.begin(), data.end(), a.data(), [](double v) { return static_cast<T>(v); });
  return a;
}
template <class T>
Tensor<T> ref_tensor(const json& j, bool requires_grad = false) {
  return Tensor<T>(ref_array<T>(j), requires_grad);
}

// float32 inputs are the float64 ones rounded once: compared at a float32-sized tolerance.
template <class T>
double tol() {
  return std::is_same_v<T, double> ? 1e-10 : 2e-4;
}

// Shapes equal and |a - e| <= tol (1 + |e|) everywhere; names the first bad element.
template <class T>
::testing::AssertionResult close_to(const std::string& what, const xt::xarray<T>& a,
                                    const xt::xarray<double>& e, double tolerance) {
  if (to_shape(a.shape()) != to_shape(e.shape()))
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(to_shape(a.shape()))
                                         << ", expected " << shape_str(to_shape(e.shape()));
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a.data()[i]), y = e.data()[i];
    if (!(std::abs(x - y) <= tolerance * (1 + std::abs(y))))
      return ::testing::AssertionFailure()
             << what << ": flat element " << i << " is " << x << ", expected " << y;
  }
  return ::testing::AssertionSuccess();
}
template <class T>
::testing::AssertionResult matches(const std::string& what, const xt::xarray<T>& a, const json& e) {
  return close_to(what, a, ref_array<double>(e), tol<T>());
}

// a as a 1-D array, (n, 1) -> (n,).
template <class T>
xt::xarray<T> flat(const xt::xarray<T>& a) {
  xt::xarray<T> f = a;
  f.reshape({a.size()});
  return f;
}

const char* dtype_name(float) {
  return "float32";
}
const char* dtype_name(double) {
  return "float64";
}

// Sets w to the case's values (w keeps requires_grad and its name).
template <class T>
void set_w(NWKernelRegressionND<T>& net, const json& w) {
  net.w().mutable_value() = ref_array<T>(w);
}

Widths case_widths(const json& c) {
  return widths_from_string(c.at("widths").get<std::string>());
}

std::vector<std::int64_t> labels_of(const json& j) {
  return j.get<std::vector<std::int64_t>>();
}

// --- PyTorch reference: forward values and gradients, both dtypes ----------------------------

template <class T>
void check_distance_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto q = ref_tensor<T>(c["queries"], true), k = ref_tensor<T>(c["keys"], true);
  auto w = ref_tensor<T>(c["w"], true);
  const Tensor<T> s = weighted_sq_distances(q, k, w);
  EXPECT_TRUE(matches("s", s.value(), c["out"]));
  s.backward(ref_array<T>(c["G"]));
  EXPECT_TRUE(matches("grad queries", q.grad(), c["grad_queries"]));
  EXPECT_TRUE(matches("grad keys", k.grad(), c["grad_keys"]));
  EXPECT_TRUE(matches("grad w", w.grad(), c["grad_w"]));
}

TEST(NDReference, WeightedSqDistances) {
  const json& cases = nd_reference().at("weighted_sq_distances");
  ASSERT_EQ(cases.size(), 12u);  // d = 1, 2, 3; keys (n, m, d) and (m, d); shared, per-coordinate
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["widths"].get<std::string>() + ", keys " +
                 c["keys"]["shape"].dump());
    check_distance_case<double>(c);
    check_distance_case<float>(c);
  }
}

template <class T>
void check_forward_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto q = ref_tensor<T>(c["queries"], true), k = ref_tensor<T>(c["keys"], true);
  auto v = ref_tensor<T>(c["values"], true);
  NWKernelRegressionND<T> net(q.shape()[1], case_widths(c), T(1));
  set_w(net, c["w"]);
  const Tensor<T> out = net.forward(q, k, v);
  EXPECT_TRUE(matches("out", out.value(), c["out"]));
  EXPECT_TRUE(matches("attention weights", net.attention_weights().value(), c["weights"]));
  out.backward(ref_array<T>(c["G"]));
  EXPECT_TRUE(matches("grad queries", q.grad(), c["grad_queries"]));
  EXPECT_TRUE(matches("grad keys", k.grad(), c["grad_keys"]));
  EXPECT_TRUE(matches("grad values", v.grad(), c["grad_values"]));
  EXPECT_TRUE(matches("grad w", net.w().grad(), c["grad_w"]));
}

TEST(NDReference, ModelForward) {
  const json& cases = nd_reference().at("forward");
  ASSERT_EQ(cases.size(), 12u);  // d = 1, 2, 3; shared, per-coordinate; C = 1, 3
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["widths"].get<std::string>() + ", values " +
                 c["values"]["shape"].dump());
    check_forward_case<double>(c);
    check_forward_case<float>(c);
  }
}

template <class T>
void check_predict_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto q = ref_tensor<T>(c["queries"], true), x = ref_tensor<T>(c["x_train"], true);
  auto v = ref_tensor<T>(c["values"], true);
  NWKernelRegressionND<T> net(q.shape()[1], case_widths(c), T(1));
  set_w(net, c["w"]);
  const Tensor<T> out = net.predict(q, x, v);
  EXPECT_TRUE(matches("out", out.value(), c["out"]));
  EXPECT_TRUE(matches("attention weights", net.attention_weights().value(), c["weights"]));
  out.backward(ref_array<T>(c["G"]));
  EXPECT_TRUE(matches("grad queries", q.grad(), c["grad_queries"]));
  EXPECT_TRUE(matches("grad x_train", x.grad(), c["grad_x_train"]));
  EXPECT_TRUE(matches("grad values", v.grad(), c["grad_values"]));
  EXPECT_TRUE(matches("grad w", net.w().grad(), c["grad_w"]));
}

TEST(NDReference, ModelPredict) {
  const json& cases = nd_reference().at("predict");
  ASSERT_EQ(cases.size(), 4u);
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["widths"].get<std::string>());
    check_predict_case<double>(c);
    check_predict_case<float>(c);
  }
}

template <class T>
void check_cross_entropy_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto logits = ref_tensor<T>(c["logits"], true);
  const auto kl = c["key_labels"].get<std::vector<std::vector<std::int64_t>>>();
  xt::xarray<std::int64_t> key_labels = xt::zeros<std::int64_t>(logits.shape());
  for (std::size_t i = 0; i < kl.size(); ++i)
    for (std::size_t j = 0; j < kl[i].size(); ++j) key_labels(i, j) = kl[i][j];
  const Tensor<T> loss = nw_cross_entropy(logits, key_labels, labels_of(c["labels"]));
  EXPECT_TRUE(matches("loss", loss.value(), c["out"]));
  loss.backward();
  EXPECT_TRUE(matches("grad logits", logits.grad(), c["grad_logits"]));
}

TEST(NDReference, CrossEntropyOfLogits) {
  const json& cases = nd_reference().at("cross_entropy");
  ASSERT_EQ(cases.size(), 2u);
  for (const json& c : cases) {
    check_cross_entropy_case<double>(c);
    check_cross_entropy_case<float>(c);
  }
}

// The whole training loss as the program builds it: keys and values (leave-one-out or all pairs),
// the model, and the squared or cross-entropy loss; gradients of w and of the training inputs.
template <class T>
void check_training_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  auto x = ref_tensor<T>(c["x_train"], true);
  const bool loo = c["leave_one_out"].get<bool>();
  const bool classification = c["task"] == "classification";
  std::vector<std::int64_t> labels;
  Tensor<T> values;
  if (classification) {
    labels = labels_of(c["labels"]);
    values = one_hot<T>(labels, 3);
  } else {
    values = ref_tensor<T>(c["values"]);
  }
  NWKernelRegressionND<T> net(x.shape()[1], case_widths(c), T(1));
  set_w(net, c["w"]);
  const auto [keys, vals] = training_keys_values_nd(x, values, loo);
  const Tensor<T> p = net.forward(x, keys, vals);
  EXPECT_TRUE(matches("p", p.value(), c["p"]));
  const Tensor<T> loss =
      c["loss"] == "squared"
          ? squared_loss(p, values)
          : nw_cross_entropy(net.logits(), training_key_labels(labels, loo), labels);
  EXPECT_TRUE(matches("loss", loss.value(), c["out"]));
  loss.backward();
  EXPECT_TRUE(matches("grad w", net.w().grad(), c["grad_w"]));
  EXPECT_TRUE(matches("grad x_train", x.grad(), c["grad_x_train"]));
}

TEST(NDReference, TrainingLosses) {
  const json& cases = nd_reference().at("training");
  ASSERT_EQ(cases.size(), 7u);
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["widths"].get<std::string>() + ", " +
                 c["task"].get<std::string>() + ", " + c["loss"].get<std::string>() +
                 (c["leave_one_out"].get<bool>() ? ", leave-one-out" : ", all pairs"));
    check_training_case<double>(c);
    check_training_case<float>(c);
  }
}

template <class T>
void check_nonparametric_case(const json& c) {
  SCOPED_TRACE(dtype_name(T()));
  const NWResult<T> r = nadaraya_watson_nd(
      ref_tensor<T>(c["x_train"]), ref_tensor<T>(c["values"]), ref_tensor<T>(c["x_query"]),
      kernel_from_string(c["kernel"].get<std::string>()), static_cast<T>(c["sigma"].get<double>()));
  EXPECT_EQ(r.empty_rows, 0u);
  EXPECT_TRUE(matches("weights", r.weights.value(), c["weights"]));
  EXPECT_TRUE(matches("y_hat", r.y_hat.value(), c["y_hat"]));
}

TEST(NDReference, NonparametricPooling) {
  const json& cases = nd_reference().at("nonparametric");
  ASSERT_EQ(cases.size(), 32u);  // d = 1, 2, 2, 3 x four kernels x two widths
  for (const json& c : cases) {
    SCOPED_TRACE("d " + c["d"].dump() + ", " + c["kernel"].get<std::string>() + ", sigma " +
                 c["sigma"].dump());
    check_nonparametric_case<double>(c);
    check_nonparametric_case<float>(c);
  }
}

// --- float64 gradchecks -----------------------------------------------------------------------

// Uniform in [lo, hi), requires_grad as asked.
Tensor<double> uniform(std::mt19937& rng, const Shape& shape, double lo, double hi,
                       bool requires_grad = true) {
  std::uniform_real_distribution<double> d(lo, hi);
  xt::xarray<double> a = xt::zeros<double>(shape);
  for (auto& v : a) v = d(rng);
  return Tensor<double>(std::move(a), requires_grad);
}

// f's output times a fixed non-uniform tensor, summed: the backward rules see a non-uniform seed.
GradcheckFn weighted(GradcheckFn f, Tensor<double> g) {
  return [f = std::move(f), g](const std::vector<Tensor<double>>& in) { return sum(f(in) * g); };
}

struct NdShape {
  std::size_t d;
  Widths widths;
  std::size_t w_len() const { return widths == Widths::Shared ? 1 : d; }
  std::string str() const { return "d " + std::to_string(d) + ", " + to_string(widths); }
};
const NdShape kShapes[] = {{1, Widths::Shared}, {1, Widths::PerCoordinate},
                           {2, Widths::Shared}, {2, Widths::PerCoordinate},
                           {3, Widths::Shared}, {3, Widths::PerCoordinate}};

TEST(NDGradcheck, WeightedSqDistances) {
  std::mt19937 rng(1101);
  const std::size_t n = 3, m = 4;
  for (const NdShape& s : kShapes)
    for (bool per_query : {true, false}) {
      SCOPED_TRACE(s.str() + (per_query ? ", keys (n, m, d)" : ", keys (m, d)"));
      auto q = uniform(rng, {n, s.d}, -1, 1);
      auto k = per_query ? uniform(rng, {n, m, s.d}, -1, 1) : uniform(rng, {m, s.d}, -1, 1);
      auto w = uniform(rng, {s.w_len()}, 0.5, 1.5);
      const GradcheckFn f = [](const auto& in) {
        return weighted_sq_distances(in[0], in[1], in[2]);
      };
      EXPECT_TRUE(gradcheck_passes(f, {q, k, w}));
      EXPECT_TRUE(gradcheck_passes(weighted(f, uniform(rng, {n, m}, -2, 2, false)), {q, k, w}));
    }
}

// softmax of the nearest-shifted logits is softmax(-s / 2): the shift is a per-row constant. The
// nearest key's logit is exactly 0 and every other logit is <= 0; gradients through the softmax
// are exact (gradcheck, in queries, keys and w, keys (n, m, d) and (m, d)).
TEST(NDShiftedLogits, SameSoftmaxAndGradients) {
  std::mt19937 rng(1108);
  const std::size_t n = 3, m = 5;
  for (const NdShape& s : kShapes)
    for (bool per_query : {true, false}) {
      SCOPED_TRACE(s.str() + (per_query ? ", keys (n, m, d)" : ", keys (m, d)"));
      auto q = uniform(rng, {n, s.d}, -1, 1), w = uniform(rng, {s.w_len()}, 0.5, 1.5);
      auto k = per_query ? uniform(rng, {n, m, s.d}, -1, 1) : uniform(rng, {m, s.d}, -1, 1);
      const xt::xarray<double> shifted = nearest_shifted_logits(q, k, w).value();
      const xt::xarray<double> plain = (weighted_sq_distances(q, k, w) * -0.5).value();
      for (std::size_t i = 0; i < n; ++i) {
        double top = -1e300;
        for (std::size_t j = 0; j < m; ++j) top = std::max(top, shifted(i, j));
        EXPECT_EQ(top, 0.0) << "row " << i;
        for (std::size_t j = 0; j < m; ++j)  // the same logits up to the row's constant
          EXPECT_NEAR(shifted(i, j) - shifted(i, 0), plain(i, j) - plain(i, 0), 1e-12);
      }
      const GradcheckFn f = [](const auto& in) {
        return softmax(nearest_shifted_logits(in[0], in[1], in[2]), 1);
      };
      EXPECT_TRUE(gradcheck_passes(weighted(f, uniform(rng, {n, m}, -2, 2, false)), {q, k, w}));
    }
}

// Passes when f throws std::invalid_argument naming every one of parts.
template <class F>
::testing::AssertionResult throws_naming(F&& f, const std::vector<std::string>& parts) {
  return throws_with_all<std::invalid_argument>(std::forward<F>(f), parts);
}

TEST(NDShiftedLogits, WrongShapesNameTheOpAndShapes) {
  const Tensor<double> q = zeros<double>({3, 2}), w2 = ones<double>({2});
  EXPECT_TRUE(throws_naming(
      [&] {
        nearest_shifted_logits(q, zeros<double>({4, 3}), w2);
      },
      {"nearest_shifted_logits", "queries (3, 2)", "keys (4, 3)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        nearest_shifted_logits(q, zeros<double>({2, 4, 2}), w2);
      },
      {"nearest_shifted_logits", "keys (2, 4, 2)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        nearest_shifted_logits(q, zeros<double>({4, 2}), ones<double>({3}));
      },
      {"nearest_shifted_logits", "w (3,)"}));
}

// A query far from the keys relative to their spacing: at q = (3000, 0), keys 1e-4 apart differ
// by about 0.3 in -s / 2 = -(q - k)^2 / 2 ~ -4.5e6, which float32 rounds to steps of 0.5: the plain
// logits lose the differences that decide the weights (the control below), the shifted ones keep
// them. Against a long double softmax(-s / 2) of the same float32 inputs; and a query so far
// (1e20) that s overflows float32: finite, all weight on the nearest key.
TEST(NDShiftedLogits, FarQueriesInFloat) {
  const xt::xarray<float> keys = {{0.f, 0.f}, {1e-4f, 0.f}, {2e-4f, 0.f}, {3e-4f, 0.f}};
  const xt::xarray<float> queries = {{3000.f, 0.f}, {-2500.f, 0.f}, {1e20f, 0.f}};
  NWKernelRegressionND<float> net(2, Widths::PerCoordinate, 1.f);
  const Tensor<float> y(xt::xarray<float>(xt::reshape_view(xt::arange<float>(1.f, 5.f), {4, 1})));
  NoGradGuard no_grad;
  const xt::xarray<float> f = net.predict(Tensor<float>(queries), Tensor<float>(keys), y).value();
  const xt::xarray<float> p = net.attention_weights().value();
  const xt::xarray<float> plain =
      softmax(weighted_sq_distances(Tensor<float>(queries), Tensor<float>(keys), net.w()) * -0.5f,
              1)
          .value();
  double plain_error = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    long double s[4], top = -1e300L, z = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const long double a = static_cast<long double>(queries(i, 0)) - keys(j, 0);
      s[j] = -(a * a) / 2;
      top = std::max(top, s[j]);
    }
    for (std::size_t j = 0; j < 4; ++j) z += std::exp(s[j] - top);
    for (std::size_t j = 0; j < 4; ++j) {
      const double want = double(std::exp(s[j] - top) / z);
      EXPECT_NEAR(p(i, j), want, 1e-5) << "query " << i << " key " << j;
      plain_error = std::max(plain_error, std::abs(plain(i, j) - want));
    }
  }
  EXPECT_GT(plain_error, 0.05) << "control: the unshifted float32 logits should lose the weights";
  for (std::size_t j = 0; j < 4; ++j) EXPECT_TRUE(std::isfinite(p(2, j)));
  EXPECT_EQ(p(2, 3), 1.f);  // (3e-4, 0) is the key nearest to (1e20, 0)
  EXPECT_EQ(f(2, 0), 4.f);
}

// The model's forward and predict, in every input and in w (the gradcheck input replaces the
// model's w, so finite differences perturb it too).
TEST(NDGradcheck, ModelForwardAndPredict) {
  std::mt19937 rng(1102);
  const std::size_t n = 3, m = 4;
  for (const NdShape& s : kShapes)
    for (std::size_t C : {1u, 3u}) {
      SCOPED_TRACE(s.str() + ", C " + std::to_string(C));
      auto q = uniform(rng, {n, s.d}, -1, 1), w = uniform(rng, {s.w_len()}, 0.5, 1.5);
      auto k = uniform(rng, {n, m, s.d}, -1, 1), v = uniform(rng, {n, m, C}, -1, 1);
      const GradcheckFn forward = [s](const auto& in) {
        NWKernelRegressionND<double> net(s.d, s.widths, 1.0);
        net.w() = in[3];
        return net.forward(in[0], in[1], in[2]);
      };
      EXPECT_TRUE(gradcheck_passes(forward, {q, k, v, w}));
      EXPECT_TRUE(
          gradcheck_passes(weighted(forward, uniform(rng, {n, C}, -2, 2, false)), {q, k, v, w}));
      auto x = uniform(rng, {m, s.d}, -1, 1), vm = uniform(rng, {m, C}, -1, 1);
      const GradcheckFn predict = [s](const auto& in) {
        NWKernelRegressionND<double> net(s.d, s.widths, 1.0);
        net.w() = in[3];
        return net.predict(in[0], in[1], in[2]);
      };
      EXPECT_TRUE(
          gradcheck_passes(weighted(predict, uniform(rng, {n, C}, -2, 2, false)), {q, x, vm, w}));
    }
}

// The leave-one-out copies route each key's gradient back to its training input.
TEST(NDGradcheck, TrainingKeysValues) {
  std::mt19937 rng(1103);
  for (std::size_t d : {1u, 2u, 3u})
    for (bool loo : {true, false}) {
      SCOPED_TRACE("d " + std::to_string(d) + (loo ? ", leave-one-out" : ", all pairs"));
      const std::size_t n = 4, m = loo ? 3 : 4, C = 2;
      auto x = uniform(rng, {n, d}, -1, 1), v = uniform(rng, {n, C}, -1, 1);
      const GradcheckFn keys = [loo](const auto& in) {
        return training_keys_values_nd(in[0], in[1], loo).first;
      };
      const GradcheckFn vals = [loo](const auto& in) {
        return training_keys_values_nd(in[0], in[1], loo).second;
      };
      EXPECT_TRUE(gradcheck_passes(weighted(keys, uniform(rng, {n, m, d}, -2, 2, false)), {x, v}));
      EXPECT_TRUE(gradcheck_passes(weighted(vals, uniform(rng, {n, m, C}, -2, 2, false)), {x, v}));
    }
}

// The losses: the cross-entropy in its logits, and both losses end to end in w and x_train
// (regression with C = 1, classification with C = 3, leave-one-out and all pairs).
TEST(NDGradcheck, Losses) {
  std::mt19937 rng(1104);
  const std::vector<std::int64_t> labels = {0, 2, 1, 0, 1, 2, 2};
  const std::size_t n = labels.size();
  for (bool loo : {true, false}) {
    SCOPED_TRACE(loo ? "leave-one-out" : "all pairs");
    const auto key_labels = training_key_labels(labels, loo);
    auto logits = uniform(rng, {n, loo ? n - 1 : n}, -3, 3);
    EXPECT_TRUE(gradcheck_passes(
        [&](const auto& in) { return nw_cross_entropy(in[0], key_labels, labels); }, {logits}));
    for (const NdShape& s : kShapes) {
      SCOPED_TRACE(s.str());
      auto x = uniform(rng, {n, s.d}, -1.5, 1.5), w = uniform(rng, {s.w_len()}, 0.5, 1.5);
      const Tensor<double> onehot = one_hot<double>(labels, 3);
      const Tensor<double> y = uniform(rng, {n, 1}, -1, 1, false);
      for (int loss : {0, 1, 2}) {  // cross-entropy, squared (classes), squared (regression)
        const GradcheckFn f = [&, s, loss](const auto& in) {
          NWKernelRegressionND<double> net(s.d, s.widths, 1.0);
          net.w() = in[1];
          const Tensor<double>& values = loss == 2 ? y : onehot;
          const auto [k, v] = training_keys_values_nd(in[0], values, loo);
          const Tensor<double> p = net.forward(in[0], k, v);
          return loss == 0 ? nw_cross_entropy(net.logits(), key_labels, labels)
                           : squared_loss(p, values);
        };
        EXPECT_TRUE(gradcheck_passes(f, {x, w})) << "loss " << loss;
      }
    }
  }
  auto p = uniform(rng, {4, 3}, 0, 1), t = uniform(rng, {4, 3}, 0, 1);
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return squared_loss(in[0], in[1]); }, {p, t}));
}

// Negative control: gradcheck must reject a wrong backward. Here the squared distances are built
// with w detached in one factor of the square, so the recorded gradient in w is half the truth.
TEST(NDGradcheck, RejectsAHalvedWidthGradient) {
  std::mt19937 rng(1105);
  auto q = uniform(rng, {3, 2}, -1, 1), k = uniform(rng, {4, 2}, -1, 1);
  auto w = uniform(rng, {2}, 0.5, 1.5);
  const GradcheckFn wrong = [](const auto& in) {
    const Tensor<double> diff = unsqueeze(in[0], 1) - unsqueeze(in[1], 0);
    return sum((diff * in[2]) * (diff * in[2].detach()), {-1});
  };
  EXPECT_FALSE(gradcheck(wrong, {q, k, w}).ok);
  // The same shape of computation written right passes.
  EXPECT_TRUE(gradcheck_passes(
      [](const auto& in) { return weighted_sq_distances(in[0], in[1], in[2]); }, {q, k, w}));
}

// --- the cross-entropy's stability -----------------------------------------------------------

// Own-class logits -1e4 against 0 for the others: p_i[y_i] ~ exp(-1e4) underflows to 0, so the
// naive -log(p) is inf, but the stable form is finite and exact: log(#others) + 1e4 - log(#own).
TEST(NDCrossEntropy, FiniteWhenOwnClassLogitsAreHugelyNegative) {
  const std::vector<std::int64_t> labels = {0, 1};
  xt::xarray<std::int64_t> key_labels = {{0, 1, 1, 0}, {1, 0, 0, 0}};
  for (bool as_float : {false, true}) {
    SCOPED_TRACE(as_float ? "float32" : "float64");
    const xt::xarray<double> lv = {{-1e4, 0.0, 0.0, -1e4}, {-1e4, 0.0, 0.0, 0.0}};
    const double expected = (std::log(2.0) + 1e4 - std::log(2.0)) + (std::log(3.0) + 1e4);
    auto check = [&](auto zero) {
      using T = decltype(zero);
      auto logits = Tensor<T>(xt::xarray<T>(xt::cast<T>(lv)), true);
      // The naive route really does fail here.
      const xt::xarray<T> p = softmax(logits.detach(), 1).value();
      EXPECT_EQ(p(0, 0) + p(0, 3), T(0));
      const Tensor<T> loss = nw_cross_entropy(logits, key_labels, labels);
      ASSERT_TRUE(std::isfinite(loss.item()));
      EXPECT_NEAR(loss.item(), expected, expected * (as_float ? 1e-6 : 1e-14));
      loss.backward();
      for (T g : logits.grad()) EXPECT_TRUE(std::isfinite(g));
      // d/d logit of an own key: -(its share of the own class) + (its share of all) = -1/2 + 0.
      // (float: exp(self - result) with self = -1e4 and result = -1e4 + log 2 sees result rounded
      // to float's ulp at 1e4, 1e-3: the gradient is right to that, as in torch.)
      const double g_tol = as_float ? 2e-3 : 1e-12;
      EXPECT_NEAR(logits.grad()(0, 0), -0.5, g_tol);
      EXPECT_NEAR(logits.grad()(1, 1), 1.0 / 3, g_tol);  // another class: its softmax share
      EXPECT_NEAR(logits.grad()(1, 0), -1.0, g_tol);     // the only own key: -1 + ~0
    };
    if (as_float)
      check(0.0f);
    else
      check(0.0);
  }
}

// Where p does not underflow, the stable loss is -sum_i log p_i[y_i] with p the pooled one-hot
// probabilities of the model itself.
TEST(NDCrossEntropy, EqualsMinusLogOfPooledProbabilities) {
  std::mt19937 rng(1106);
  const std::vector<std::int64_t> labels = {0, 1, 2, 1, 0, 2, 1, 0};
  const std::size_t n = labels.size();
  auto x = uniform(rng, {n, 2}, -2, 2, false);
  NWKernelRegressionND<double> net(2, Widths::PerCoordinate, 1.3);
  const auto [k, v] = training_keys_values_nd(x, one_hot<double>(labels, 3), true);
  const Tensor<double> p = net.forward(x, k, v);
  double naive = 0;
  for (std::size_t i = 0; i < n; ++i) naive -= std::log(p.value()(i, labels[i]));
  const double stable =
      nw_cross_entropy(net.logits(), training_key_labels(labels, true), labels).item();
  EXPECT_NEAR(stable, naive, 1e-12 * std::abs(naive));
}

TEST(NDCrossEntropy, RowWithoutItsOwnClassThrows) {
  const auto logits = zeros<double>({2, 2});
  xt::xarray<std::int64_t> key_labels = {{0, 1}, {0, 0}};
  try {
    nw_cross_entropy(logits, key_labels, {0, 1});
    FAIL() << "did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("row 1 (label 1)"), std::string::npos) << e.what();
  }
}

// --- agreement with the 1-D chapter model ----------------------------------------------------

// For d = 1 and a shared w the d-D model is the chapter's NWKernelRegression (which shifts its
// logits by the nearest key instead of the row maximum): predictions, weights and the gradient
// of w agree to float rounding, leave-one-out training layout included.
template <class T>
void check_agrees_with_1d(double rel) {
  Rng rng(7);
  const ChapterData c = make_chapter_data(rng);
  const std::size_t n = c.x_train.size();
  const Tensor<T> x1 = to_tensor<T>(c.x_train), y1 = to_tensor<T>(c.y_train);
  const Tensor<T> xd = reshape(x1, {static_cast<long>(n), 1});
  const Tensor<T> yd = reshape(y1, {static_cast<long>(n), 1});
  for (bool loo : {true, false}) {
    SCOPED_TRACE(loo ? "leave-one-out" : "all pairs");
    NWKernelRegression<T> one(T(1.7));
    NWKernelRegressionND<T> nd(1, Widths::Shared, T(1.7));
    const auto [k1, v1] = training_keys_values(x1, y1, loo);
    const auto [kd, vd] = training_keys_values_nd(xd, yd, loo);
    const Tensor<T> f1 = one.forward(x1, k1, v1), fd = nd.forward(xd, kd, vd);
    EXPECT_TRUE(close_to("predictions", flat(fd.value()),
                         xt::xarray<double>(xt::cast<double>(f1.value())), rel));
    EXPECT_TRUE(close_to("weights", nd.attention_weights().value(),
                         xt::xarray<double>(xt::cast<double>(one.attention_weights().value())),
                         rel));
    sum(square(f1 - y1) * T(0.5)).backward();
    squared_loss(fd, yd).backward();
    EXPECT_TRUE(close_to("grad w", nd.w().grad(),
                         xt::xarray<double>(xt::cast<double>(one.w().grad())), rel * 10));
  }
  // Prediction on the chapter's queries, every training pair visible.
  NWKernelRegressionND<T> nd(1, Widths::Shared, T(1.7));
  NWKernelRegression<T> one(T(1.7));
  const Tensor<T> q1 = to_tensor<T>(c.x_query);
  const auto [kq, vq] = query_keys_values(x1, y1, q1.size());
  const Tensor<T> f1 = one.forward(q1, kq, vq);
  const Tensor<T> fd = nd.predict(reshape(q1, {-1, 1}), xd, yd);
  EXPECT_TRUE(close_to("query predictions", flat(fd.value()),
                       xt::xarray<double>(xt::cast<double>(f1.value())), rel));
}

TEST(NDAgreesWith1D, ParametricModel) {
  check_agrees_with_1d<double>(1e-12);
  check_agrees_with_1d<float>(2e-5);
}

// nadaraya_watson_nd on (m, 1) inputs is nadaraya_watson, for every kernel and width, including
// far queries (gaussian: all weight on the nearest key) and compact-kernel empty rows.
TEST(NDAgreesWith1D, NonparametricPooling) {
  Rng rng(8);
  const ChapterData c = make_chapter_data(rng);
  std::vector<double> qs = c.x_query;
  qs.push_back(40.0);
  qs.push_back(-25.0);
  const auto x1 = to_tensor<double>(c.x_train), y1 = to_tensor<double>(c.y_train);
  const auto q1 = to_tensor<double>(qs);
  const long m = static_cast<long>(c.x_train.size());
  for (Kernel k : {Kernel::Gaussian, Kernel::Boxcar, Kernel::Constant, Kernel::Epanechikov})
    for (double sigma : {0.05, 0.4, 2.0}) {
      SCOPED_TRACE(to_string(k) + ", sigma " + std::to_string(sigma));
      const NWResult<double> a = nadaraya_watson(x1, y1, q1, k, sigma);
      const NWResult<double> b = nadaraya_watson_nd(reshape(x1, {m, 1}), reshape(y1, {m, 1}),
                                                    reshape(q1, {-1, 1}), k, sigma);
      EXPECT_EQ(a.empty_rows, b.empty_rows);
      EXPECT_TRUE(close_to("weights", b.weights.value(), a.weights.value(), 1e-12));
      EXPECT_TRUE(close_to("y_hat", flat(b.y_hat.value()), a.y_hat.value(), 1e-12));
    }
}

// --- nonparametric pooling on vectors --------------------------------------------------------

// A query with no training input within sigma (compact kernels) takes its nearest input's value,
// or throws naming the query; the gaussian row of a far query puts all weight on the nearest
// input, finite in both dtypes.
TEST(NDNonparametric, EmptyRowsAndFarQueries) {
  const xt::xarray<double> xv = {{0.0, 0.0}, {1.0, 0.0}, {0.0, 2.0}};
  const xt::xarray<double> vv = {{1.0, 0.0}, {0.0, 1.0}, {0.5, 0.5}};
  const auto x = tensor<double>(xv), v = tensor<double>(vv);
  const auto q = tensor<double>({{0.2, 0.1}, {30.0, -1.0}, {0.5, 40.0}});
  for (Kernel k : {Kernel::Boxcar, Kernel::Epanechikov}) {
    const NWResult<double> r = nadaraya_watson_nd(x, v, q, k, 1.0);
    EXPECT_EQ(r.empty_rows, 2u);
    EXPECT_EQ(r.weights.value()(1, 1), 1.0);
    EXPECT_EQ(r.weights.value()(2, 2), 1.0);
    EXPECT_EQ(r.y_hat.value()(1, 1), 1.0);
    try {
      nadaraya_watson_nd(x, v, q, k, 1.0, EmptyRow::Throw);
      FAIL() << "did not throw";
    } catch (const std::domain_error& e) {
      EXPECT_NE(std::string(e.what()).find("query (30, -1)"), std::string::npos) << e.what();
    }
  }
  const NWResult<double> g = nadaraya_watson_nd(x, v, q, Kernel::Gaussian, 1.0);
  EXPECT_NEAR(g.weights.value()(1, 1), 1.0, 1e-12);  // the next key is e^-29.5 behind
  EXPECT_NEAR(g.weights.value()(2, 2), 1.0, 1e-15);
  const NWResult<float> gf =
      nadaraya_watson_nd(Tensor<float>(xt::xarray<float>(xt::cast<float>(xv))),
                         Tensor<float>(xt::xarray<float>(xt::cast<float>(vv))),
                         tensor<float>({{1000.0f, 0.0f}}), Kernel::Gaussian, 1.0f);
  for (float w : gf.weights.value()) EXPECT_TRUE(std::isfinite(w));
  EXPECT_EQ(gf.weights.value()(0, 1), 1.0f);
}

// The model's far queries: s = 1e6 (distance 1e3, w = 1) is far below the dtype's max, the row
// maximum is subtracted, and the weights are finite with all weight on the nearest key, in both
// dtypes.
TEST(NDNonparametric, ModelFarQueryIsFinite) {
  NWKernelRegressionND<float> net(2, Widths::PerCoordinate, 1.0f);
  const auto x = tensor<float>({{0.0f, 0.0f}, {1.0f, 1.0f}, {2.0f, 0.0f}});
  const auto v = tensor<float>({{1.0f}, {2.0f}, {3.0f}});
  const Tensor<float> f = net.predict(tensor<float>({{1000.0f, 1.0f}}), x, v);
  EXPECT_EQ(f.value()(0, 0), 3.0f);
  for (float w : net.attention_weights().value()) EXPECT_TRUE(std::isfinite(w));
}

// --- small pieces --------------------------------------------------------------------------

TEST(NDPieces, OneHotArgmaxAndWidthNames) {
  const Tensor<float> oh = one_hot<float>({2, 0, 1}, 3);
  EXPECT_EQ(oh.value(), (xt::xarray<float>{{0, 0, 1}, {1, 0, 0}, {0, 1, 0}}));
  try {
    one_hot<double>({0, 3}, 3);
    FAIL() << "did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("label 3 at index 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(one_hot<double>({-1}, 3), std::invalid_argument);
  // Ties go to the smallest label.
  const xt::xarray<double> p = {{0.2, 0.4, 0.4}, {0.5, 0.5, 0.0}, {0.1, 0.3, 0.6}, {1, 1, 1}};
  EXPECT_EQ(argmax_labels(p), (std::vector<std::int64_t>{1, 0, 2, 0}));
  EXPECT_THROW(argmax_labels(xt::xarray<double>({1.0, 2.0})), std::invalid_argument);
  for (Widths w : {Widths::Shared, Widths::PerCoordinate})
    EXPECT_EQ(widths_from_string(to_string(w)), w);
  EXPECT_THROW(widths_from_string("per_coordinate"), std::invalid_argument);
  // The model's w: (1,) or (d,), every coordinate w_init, named, a parameter.
  NWKernelRegressionND<double> shared(3, Widths::Shared, 2.5), per(3, Widths::PerCoordinate, 2.5);
  EXPECT_EQ(shared.w().shape(), (Shape{1}));
  EXPECT_EQ(per.w().value(), (xt::xarray<double>{2.5, 2.5, 2.5}));
  EXPECT_TRUE(per.w().requires_grad());
  EXPECT_EQ(per.w().name(), "w");
  EXPECT_EQ(per.parameters().size(), 1u);
  EXPECT_THROW(NWKernelRegressionND<double>(0, Widths::Shared, 1.0), std::invalid_argument);
}

// Leave-one-out layout: row i holds every row of x but row i, in order; labels the same way.
TEST(NDPieces, TrainingLayout) {
  const auto x = tensor<double>({{1, 10}, {2, 20}, {3, 30}});
  const auto v = tensor<double>({{7}, {8}, {9}});
  const auto [k, val] = training_keys_values_nd(x, v, true);
  EXPECT_EQ(k.value(),
            (xt::xarray<double>{{{2, 20}, {3, 30}}, {{1, 10}, {3, 30}}, {{1, 10}, {2, 20}}}));
  xt::xarray<double> expected_values = {8, 9, 7, 9, 7, 8};
  expected_values.reshape({3, 2, 1});
  EXPECT_EQ(val.value(), expected_values);
  const auto [ka, va] = training_keys_values_nd(x, v, false);
  EXPECT_EQ(ka.shape(), (Shape{3, 3, 2}));
  EXPECT_EQ(va.shape(), (Shape{3, 3, 1}));
  EXPECT_EQ(training_key_labels({4, 5, 6}, true),
            (xt::xarray<std::int64_t>{{5, 6}, {4, 6}, {4, 5}}));
  EXPECT_EQ(training_key_labels({4, 5}, false), (xt::xarray<std::int64_t>{{4, 5}, {4, 5}}));
  EXPECT_THROW(training_key_labels({4}, true), std::invalid_argument);
}

// --- wrong shapes: the message names the op and the shapes ----------------------------------

TEST(NDErrors, WrongShapesNameTheOpAndShapes) {
  const auto q = zeros<double>({3, 2}), k2 = zeros<double>({4, 2}), k3 = zeros<double>({3, 4, 2});
  const auto w1 = ones<double>({1}), w3 = ones<double>({3});
  const std::string wsd = "weighted_sq_distances";
  EXPECT_TRUE(throws_naming(
      [&] {
        weighted_sq_distances(q, zeros<double>({4, 3}), w1);
      },
      {wsd, "queries (3, 2)", "keys (4, 3)", "w (1,)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        weighted_sq_distances(q, zeros<double>({2, 4, 2}), w1);
      },
      {wsd, "keys (2, 4, 2)"}));
  EXPECT_TRUE(throws_naming([&] { weighted_sq_distances(q, k2, w3); }, {wsd, "w (3,)"}));
  EXPECT_TRUE(throws_naming([&] { weighted_sq_distances(zeros<double>({3}), k2, w1); },
                            {wsd, "queries", "(3,)"}));
  EXPECT_TRUE(
      throws_naming([&] { weighted_sq_distances(q, zeros<double>({2}), w1); }, {wsd, "keys (2,)"}));
  NWKernelRegressionND<double> net(2, Widths::PerCoordinate, 1.0);
  EXPECT_TRUE(throws_naming(
      [&] {
        net.forward(q, k3, zeros<double>({3, 5, 1}));
      },
      {"NWKernelRegressionND::forward", "keys (3, 4, 2)", "values (3, 5, 1)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        net.forward(q, k2, zeros<double>({3, 4, 1}));
      },
      {"NWKernelRegressionND::forward", "keys", "(4, 2)"}));
  NWKernelRegressionND<double> net3(3, Widths::PerCoordinate, 1.0);
  EXPECT_TRUE(throws_naming(
      [&] {
        net3.forward(q, k3, zeros<double>({3, 4, 1}));
      },
      {"nearest_shifted_logits", "w (3,)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        net.predict(q, k2, zeros<double>({5, 1}));
      },
      {"NWKernelRegressionND::predict", "x_train (4, 2)", "values (5, 1)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        training_keys_values_nd(k2, zeros<double>({3, 1}));
      },
      {"training_keys_values_nd", "x_train (4, 2)", "values (3, 1)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        training_keys_values_nd(zeros<double>({1, 2}), ones<double>({1, 1}));
      },
      {"training_keys_values_nd", "at least 2"}));
  xt::xarray<std::int64_t> kl = xt::zeros<std::int64_t>({3, 3});
  EXPECT_TRUE(throws_naming(
      [&] {
        nw_cross_entropy(zeros<double>({3, 4}), kl, {0, 0, 0});
      },
      {"nw_cross_entropy", "logits (3, 4)", "key_labels (3, 3)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        squared_loss(zeros<double>({3, 2}), zeros<double>({3, 1}));
      },
      {"squared_loss", "(3, 2)", "(3, 1)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        nadaraya_watson_nd(k2, zeros<double>({4, 1}), zeros<double>({2, 3}), Kernel::Gaussian);
      },
      {"nadaraya_watson_nd", "x_train (4, 2)", "x_query (2, 3)"}));
  EXPECT_TRUE(throws_naming(
      [&] {
        nadaraya_watson_nd(k2, zeros<double>({4, 1}), q, Kernel::Boxcar, 0.0);
      },
      {"nadaraya_watson_nd", "sigma"}));
}

// --- training with SGD ---------------------------------------------------------------------

// Leave-one-out training learns which coordinate matters: y depends on x1 only, x2 is noise, and
// per-coordinate widths start equal. SGD on the squared loss lowers it, grows w1 and shrinks |w2|
// (the 2nd edition's exercise 2, in small).
TEST(NDTraining, PerCoordinateWidthsLearnToIgnoreAnIrrelevantCoordinate) {
  Rng rng(11);
  const std::size_t n = 60;
  xt::xarray<double> xv = xt::zeros<double>({n, std::size_t(2)});
  xt::xarray<double> yv = xt::zeros<double>({n, std::size_t(1)});
  for (std::size_t i = 0; i < n; ++i) {
    xv(i, 0) = 5 * rng.uniform();
    xv(i, 1) = 5 * rng.uniform();
    yv(i, 0) = 2 * std::sin(xv(i, 0)) + 0.1 * rng.normal();
  }
  const auto x = tensor<double>(xv), y = tensor<double>(yv);
  NWKernelRegressionND<double> net(2, Widths::PerCoordinate, 1.0);
  SGD<double> sgd(net.parameters(), 0.01);
  const auto [k, v] = training_keys_values_nd(x, y, true);
  double first = 0, last = 0;
  for (int epoch = 0; epoch < 200; ++epoch) {
    sgd.zero_grad();
    const Tensor<double> loss = squared_loss(net.forward(x, k, v), y);
    loss.backward();
    sgd.step();
    (epoch == 0 ? first : last) = loss.item();
  }
  const xt::xarray<double> w = net.w().value();
  RecordProperty("loss_first_last_w1_w2", std::to_string(first) + " " + std::to_string(last) + " " +
                                              std::to_string(w(0)) + " " + std::to_string(w(1)));
  EXPECT_LT(last, 0.5 * first);
  EXPECT_GT(w(0), 1.0);
  EXPECT_LT(std::abs(w(1)), 0.5) << "w = " << w;
}

// Classification with the cross-entropy: two well-separated blobs in 3-D; SGD lowers the loss and
// the leave-one-out predictions (argmax of the pooled one-hot values) are all right.
TEST(NDTraining, CrossEntropyClassifiesTwoBlobs) {
  Rng rng(12);
  const std::size_t n = 40;
  std::vector<std::int64_t> labels(n);
  xt::xarray<double> xv = xt::zeros<double>({n, std::size_t(3)});
  for (std::size_t i = 0; i < n; ++i) {
    labels[i] = static_cast<std::int64_t>(i % 2);
    for (std::size_t k = 0; k < 3; ++k) xv(i, k) = (labels[i] ? 2.0 : -2.0) + rng.normal();
  }
  const auto x = tensor<double>(xv);
  const Tensor<double> onehot = one_hot<double>(labels, 2);
  const auto [k, v] = training_keys_values_nd(x, onehot, true);
  const auto key_labels = training_key_labels(labels, true);
  NWKernelRegressionND<double> net(3, Widths::Shared, 0.2);
  SGD<double> sgd(net.parameters(), 0.01);
  double first = 0, last = 0;
  Tensor<double> p;
  for (int epoch = 0; epoch < 50; ++epoch) {
    sgd.zero_grad();
    p = net.forward(x, k, v);
    const Tensor<double> loss = nw_cross_entropy(net.logits(), key_labels, labels);
    loss.backward();
    sgd.step();
    (epoch == 0 ? first : last) = loss.item();
  }
  RecordProperty("loss_first_last_w", std::to_string(first) + " " + std::to_string(last) + " " +
                                          std::to_string(net.w().value()(0)));
  EXPECT_LT(last, first);
  EXPECT_EQ(argmax_labels(p.value()), labels);
}

// --- the readable path and the fused op, far from the examples ---------------------------------

// |a - b| <= rtol |b| + atol everywhere (a and b of one shape), naming the first offender.
template <class T>
::testing::AssertionResult near_all(const std::string& what, const xt::xarray<T>& a,
                                    const xt::xarray<T>& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return ::testing::AssertionFailure() << what << ": shapes differ";
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a.data()[i], y = b.data()[i];
    if (!(std::abs(x - y) <= rtol * std::abs(y) + atol))
      return ::testing::AssertionFailure() << what << "[" << i << "]: " << x << " vs " << y;
  }
  return ::testing::AssertionSuccess();
}

// One case: the composed model (predict, and forward on leave-one-out keys) against the fused op
// (ops/attention_nd.h) in dtype T: outputs, and dL/dw for L = sum(f * g), g fixed.
template <class T>
void expect_fused_equals_composed(const xt::xarray<double>& x, const xt::xarray<double>& q,
                                  const xt::xarray<double>& v, const xt::xarray<double>& w0,
                                  double tol) {
  const Tensor<T> xt_{xt::xarray<T>(x)}, qt{xt::xarray<T>(q)}, vt{xt::xarray<T>(v)};
  NWKernelRegressionND<T> net(x.shape()[1], Widths::PerCoordinate, T(1));
  net.w() = Tensor<T>(xt::xarray<T>(w0), true);
  const Tensor<T> composed = net.predict(qt, xt_, vt);
  const Tensor<T> fused = nw_attention_pool_nd(qt, xt_, vt, net.w());
  EXPECT_TRUE(near_all("prediction", fused.value(), composed.value(), tol, tol));
  for (const T f : fused.value()) EXPECT_TRUE(std::isfinite(f));
  // Training: leave-one-out keys, dL/dw of a non-uniform L.
  auto [keys, values] = training_keys_values_nd(xt_, vt, true);
  const Tensor<T> g{xt::xarray<T>(xt::xarray<double>(v * 0.7 + 0.3))};
  net.w().zero_grad();
  sum(net.forward(xt_, keys, values) * g).backward();
  const xt::xarray<T> grad_composed = net.w().grad();
  net.w().zero_grad();
  sum(nw_attention_pool_nd(xt_, xt_, vt, net.w(), true) * g).backward();
  EXPECT_TRUE(near_all("dL/dw", net.w().grad(), grad_composed, tol,
                       tol * std::max<double>(1, xt::amax(xt::abs(grad_composed))())));
}

// Inputs scaled by 1e-6 .. 1e6 with widths from flat to sharp (x w from 0.3 to 300, where most
// weights underflow), queries 1e3 spans outside the data: the fused op and the composed model give
// the same numbers in both dtypes.
TEST(NDFusedAgreesWithComposed, AcrossScalesSharpWidthsAndFarQueries) {
  std::mt19937 rng(1109);
  for (double scale : {1e-6, 1e-3, 1.0, 1e3, 1e6})
    for (double sharpness : {0.3, 3.0, 30.0, 300.0}) {
      SCOPED_TRACE("scale " + std::to_string(scale) + ", x w ~ " + std::to_string(sharpness));
      const xt::xarray<double> x = uniform(rng, {9, 2}, 0, scale, false).value();
      xt::xarray<double> q = uniform(rng, {7, 2}, -0.2 * scale, 1.2 * scale, false).value();
      q(5, 0) = 1e3 * scale, q(6, 1) = -1e3 * scale;  // far outside the data
      const xt::xarray<double> v = uniform(rng, {9, 2}, -1, 1, false).value();
      const xt::xarray<double> w = {sharpness / scale, 0.5 * sharpness / scale};
      expect_fused_equals_composed<double>(x, q, v, w, 1e-9);
      expect_fused_equals_composed<float>(x, q, v, w, 2e-4);
    }
}

}  // namespace
