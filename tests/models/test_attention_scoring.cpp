// models/attention_scoring.h and models/linear.h: PyTorch float64 reference numbers (forward and every
// gradient, to 1e-10), float64 gradchecks, wrong shapes, and the exercise's identity: on the unit
// sphere, Gaussian attention pooling with width w is softmax(w^2 x . x_i) pooling.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <xtensor/xview.hpp>

#include "autograd/gradcheck_gtest.h"
#include "models/attention_scoring.h"
#include "models/linear.h"
#include "tapegrad.h"

using namespace tapegrad;
using nlohmann::json;

namespace {

// attention_reference.json (tests/reference/make_attention_reference.py), parsed once.
const json& attention_reference() {
  static const json j = [] {
    const std::string path = std::string(TAPEGRAD_CHAPTER_REF_DIR) + "/../attention_reference.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return j;
}

// A nested JSON list -> an xarray of its shape (the shape read from the first element at each
// depth; PyTorch wrote rectangular lists).
void json_shape(const json& j, Shape& s) {
  if (!j.is_array()) return;
  s.push_back(j.size());
  if (!j.empty()) json_shape(j[0], s);
}
void json_fill(const json& j, std::vector<double>& flat) {
  if (!j.is_array()) return flat.push_back(j.get<double>());
  for (const json& e : j) json_fill(e, flat);
}
xt::xarray<double> json_array(const json& j) {
  Shape s;
  json_shape(j, s);
  std::vector<double> flat;
  json_fill(j, flat);
  xt::xarray<double> a = xt::zeros<double>(s);
  std::copy(flat.begin(), flat.end(), a.begin());
  return a;
}
Tensor<double> json_tensor(const json& j) {
  return Tensor<double>(json_array(j), true);
}
ValidLens json_lens(const json& j) {
  xt::xarray<double> a = json_array(j);
  ValidLens v = xt::zeros<std::size_t>(a.shape());
  std::transform(a.begin(), a.end(), v.begin(), [](double x) { return std::size_t(x); });
  return v;
}

// Max |a - b|, with a shape check.
double max_diff(const xt::xarray<double>& a, const xt::xarray<double>& b) {
  EXPECT_EQ(to_shape(a.shape()), to_shape(b.shape()));
  if (a.shape() != b.shape()) return INFINITY;
  return xt::amax(xt::abs(a - b))();
}

// Backpropagates sum(out * G) and compares out and the named inputs' grads with the case.
void expect_matches(const json& c, const Tensor<double>& out,
                    const std::vector<std::pair<std::string, Tensor<double>>>& inputs) {
  EXPECT_LE(max_diff(out.value(), json_array(c["out"])), 1e-10) << "forward";
  sum(out * Tensor<double>(json_array(c["G"]))).backward();
  for (const auto& [name, t] : inputs)
    EXPECT_LE(max_diff(t.grad(), json_array(c["grad_" + name])), 1e-10) << "grad of " << name;
}

TEST(MaskedSoftmax, MatchesPyTorchIncludingEmptyRows) {
  for (const json& c : attention_reference()["masked_softmax"]) {
    Tensor<double> x = json_tensor(c["x"]);
    Tensor<double> out = c["valid_lens"].is_null() ? masked_softmax(x)
                                                   : masked_softmax(x, json_lens(c["valid_lens"]));
    expect_matches(c, out, {{"x", x}});
  }
}

TEST(MaskedSoftmax, MaskedEntriesAreExactlyZeroAndEmptyRowsUniform) {
  Tensor<double> x(xt::xarray<double>{{{3.0, -2.0, 50.0}, {1.0, 2.0, 3.0}}}, true);
  ValidLens lens = {{2, 0}};  // per row: row 0 sees 2 entries, row 1 none
  Tensor<double> p = masked_softmax(x, lens);
  EXPECT_EQ(p.value()(0, 0, 2), 0.0);  // a huge logit past the valid length still gets 0
  EXPECT_NEAR(p.value()(0, 0, 0) + p.value()(0, 0, 1), 1.0, 1e-15);
  for (std::size_t j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(p.value()(0, 1, j), 1.0 / 3.0);
  sum(p * Tensor<double>(xt::xarray<double>{{{1, 2, 3}, {4, 5, 6}}})).backward();
  for (std::size_t j = 0; j < 3; ++j) EXPECT_EQ(x.grad()(0, 1, j), 0.0);  // no gradient
  EXPECT_EQ(x.grad()(0, 0, 2), 0.0);
}

// Whatever a masked entry holds (a logit below the valid ones, inf, -inf, NaN), it gets weight 0,
// the valid entries keep the softmax of the valid logits alone, and no gradient reaches it.
TEST(MaskedSoftmax, WhateverMaskedEntriesHoldTheyGetNoWeightAndNoGradient) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double held : {-2e6, -1e300, inf, -inf, std::nan("")}) {
    Tensor<double> x(xt::xarray<double>{{{0.5, -1.5, held, held}}}, true);
    Tensor<double> p = masked_softmax(x, ValidLens{2});
    const double e = std::exp(-2.0);  // softmax of (0.5, -1.5): 1 / (1 + e), e / (1 + e)
    EXPECT_NEAR(p.value()(0, 0, 0), 1.0 / (1.0 + e), 1e-15) << held;
    EXPECT_NEAR(p.value()(0, 0, 1), e / (1.0 + e), 1e-15) << held;
    EXPECT_EQ(p.value()(0, 0, 2), 0.0) << held;
    EXPECT_EQ(p.value()(0, 0, 3), 0.0) << held;
    sum(p * Tensor<double>(xt::xarray<double>{{{1, 2, 3, 4}}})).backward();
    EXPECT_EQ(x.grad()(0, 0, 2), 0.0) << held;
    EXPECT_EQ(x.grad()(0, 0, 3), 0.0) << held;
    EXPECT_TRUE(std::isfinite(x.grad()(0, 0, 0))) << held;
  }
}

TEST(MaskedSoftmax, Gradcheck) {
  for (ValidLens lens : {ValidLens{2, 0, 4}, ValidLens{{1, 3}, {0, 2}, {4, 4}}}) {
    Tensor<double> x(xt::xarray<double>{{{0.3, -1.2, 2.0, 0.1}, {1.1, 0.4, -0.7, 0.2}},
                                        {{0.5, 0.9, -0.3, 1.7}, {-2.0, 0.6, 0.8, 0.0}},
                                        {{1.5, -0.4, 0.3, 0.2}, {0.7, 0.7, -1.0, 2.2}}},
                     true);
    EXPECT_TRUE(gradcheck_passes([&](const auto& in) { return masked_softmax(in[0], lens); }, {x}));
  }
}

TEST(MaskedSoftmax, WrongShapesThrowNamingTheOp) {
  Tensor<double> x = zeros<double>({2, 3, 4});
  for (ValidLens bad : {ValidLens{1, 2, 3}, ValidLens{{1, 2}, {3, 4}}}) {
    try {
      masked_softmax(x, bad);
      ADD_FAILURE() << "no throw";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("masked_softmax"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(masked_softmax(zeros<double>({2, 4}), ValidLens{1, 2}), std::invalid_argument);
}

// Runs a DotProductAttention on a reference case's q, k, v, valid_lens.
Tensor<double> run_dot(const json& c, const std::vector<Tensor<double>>& qkv) {
  DotProductAttention<double> att;
  return c["valid_lens"].is_null()
             ? att.forward(qkv[0], qkv[1], qkv[2])
             : att.forward(qkv[0], qkv[1], qkv[2], json_lens(c["valid_lens"]));
}

TEST(DotProductAttention, MatchesPyTorch) {
  for (const json& c : attention_reference()["dot_product_attention"]) {
    Tensor<double> q = json_tensor(c["q"]), k = json_tensor(c["k"]), v = json_tensor(c["v"]);
    DotProductAttention<double> att;
    Tensor<double> out = c["valid_lens"].is_null()
                             ? att.forward(q, k, v)
                             : att.forward(q, k, v, json_lens(c["valid_lens"]));
    EXPECT_LE(max_diff(att.attention_weights().value(), json_array(c["weights"])), 1e-10);
    expect_matches(c, out, {{"q", q}, {"k", k}, {"v", v}});
  }
}

TEST(DotProductAttention, Gradcheck) {
  for (const json& c : attention_reference()["dot_product_attention"]) {
    std::vector<Tensor<double>> in = {json_tensor(c["q"]), json_tensor(c["k"]),
                                      json_tensor(c["v"])};
    EXPECT_TRUE(gradcheck_passes([&](const auto& x) { return run_dot(c, x); }, in));
  }
}

// An AdditiveAttention whose three Linear layers hold the reference case's weights.
AdditiveAttention<double> additive_from(const json& c) {
  const xt::xarray<double> W_q = json_array(c["W_q"]), W_k = json_array(c["W_k"]);
  const std::size_t h = W_q.shape()[0];
  Rng rng(0);
  AdditiveAttention<double> att(W_k.shape()[1], W_q.shape()[1], h, rng);
  att.W_q().weight().mutable_value() = W_q;
  att.W_k().weight().mutable_value() = W_k;
  att.w_v().weight().mutable_value() = json_array(c["w_v"]);
  return att;
}

Tensor<double> run_additive(AdditiveAttention<double>& att, const json& c,
                            const std::vector<Tensor<double>>& qkv) {
  return c["valid_lens"].is_null()
             ? att.forward(qkv[0], qkv[1], qkv[2])
             : att.forward(qkv[0], qkv[1], qkv[2], json_lens(c["valid_lens"]));
}

TEST(AdditiveAttention, MatchesPyTorch) {
  for (const json& c : attention_reference()["additive_attention"]) {
    AdditiveAttention<double> att = additive_from(c);
    Tensor<double> q = json_tensor(c["q"]), k = json_tensor(c["k"]), v = json_tensor(c["v"]);
    Tensor<double> out = run_additive(att, c, {q, k, v});
    EXPECT_LE(max_diff(att.attention_weights().value(), json_array(c["weights"])), 1e-10);
    expect_matches(c, out,
                   {{"q", q},
                    {"k", k},
                    {"v", v},
                    {"W_q", att.W_q().weight()},
                    {"W_k", att.W_k().weight()},
                    {"w_v", att.w_v().weight()}});
  }
}

TEST(AdditiveAttention, GradcheckInputsAndParameters) {
  for (const json& c : attention_reference()["additive_attention"]) {
    AdditiveAttention<double> att = additive_from(c);
    std::vector<Tensor<double>> in = {json_tensor(c["q"]), json_tensor(c["k"]),
                                      json_tensor(c["v"])};
    for (const Tensor<double>& p : att.parameters()) in.push_back(p);  // perturbed in place
    EXPECT_TRUE(gradcheck_passes([&](const auto& x) { return run_additive(att, c, x); }, in));
  }
}

TEST(Attention, WrongShapesThrowNamingTheModule) {
  DotProductAttention<double> dot;
  Rng rng(1);
  AdditiveAttention<double> add(2, 3, 4, rng);
  auto q = zeros<double>({2, 3, 2}), k = zeros<double>({2, 4, 3}), v = zeros<double>({2, 4, 1});
  auto names = [](const std::function<void()>& f, const std::string& op) {
    try {
      f();
      ADD_FAILURE() << op << ": no throw";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(op), std::string::npos) << e.what();
    }
  };
  names([&] { dot.forward(q, k, v); }, "DotProductAttention");  // d 2 vs 3
  names([&] { dot.forward(q, q, zeros<double>({2, 5, 1})); }, "DotProductAttention");
  names([&] { add.forward(zeros<double>({2, 3}), k, v); }, "AdditiveAttention");
  names([&] { add.forward(zeros<double>({2, 3, 3}), zeros<double>({2, 4, 3}), v); }, "Linear");
}

TEST(Linear, MatchesPyTorch) {
  for (const json& c : attention_reference()["linear"]) {
    const xt::xarray<double> W = json_array(c["W"]);
    Rng rng(0);
    Linear<double> lin(W.shape()[1], W.shape()[0], c["bias"].get<bool>(), rng);
    lin.weight().mutable_value() = W;
    if (lin.has_bias()) lin.bias().mutable_value() = json_array(c["b"]);
    Tensor<double> x = json_tensor(c["x"]);
    std::vector<std::pair<std::string, Tensor<double>>> in = {{"x", x}, {"W", lin.weight()}};
    if (lin.has_bias()) in.push_back({"b", lin.bias()});
    expect_matches(c, lin(x), in);
  }
}

TEST(Linear, GradcheckSeededInitAndWrongShape) {
  Rng rng(7);
  Linear<double> lin(3, 2, true, rng);
  const double bound = 1.0 / std::sqrt(3.0);
  EXPECT_LE(xt::amax(xt::abs(lin.weight().value()))(), bound);
  Rng again(7);
  Linear<double> same(3, 2, true, again);
  EXPECT_EQ(lin.weight().value(), same.weight().value());  // seeded: reproducible
  Tensor<double> x(xt::xarray<double>{{{0.2, -0.5, 1.0}, {0.7, 0.1, -0.3}}}, true);
  EXPECT_TRUE(
      gradcheck_passes([&](const auto& in) { return lin(in[0]); }, {x, lin.weight(), lin.bias()}));
  EXPECT_THROW(lin(zeros<double>({2, 4})), std::invalid_argument);
}

// Without an Rng, Linear draws from the thread's manual_seed generator, as torch.nn.Linear draws
// from torch.manual_seed's: after manual_seed(s) it equals the layer drawn from Rng(s), a second
// layer takes the next numbers, and manual_seed(s) again gives the first layer's.
TEST(Linear, DefaultDrawsFromTheManualSeedGenerator) {
  manual_seed(11);
  const Linear<double> first(3, 2);
  const Linear<double> second(3, 2);
  Rng rng(11);
  const Linear<double> from_rng(3, 2, true, rng);
  Linear<double> a = first, b = from_rng;
  EXPECT_EQ(a.weight().value(), b.weight().value());
  EXPECT_EQ(a.bias().value(), b.bias().value());
  Linear<double> c = second;
  EXPECT_NE(c.weight().value(), a.weight().value());
  manual_seed(11);
  Linear<float> again(3, 2, false);
  EXPECT_FALSE(again.has_bias());
  EXPECT_EQ(again.weight().value(), xt::xarray<float>(xt::cast<float>(a.weight().value())));
}

// Exercise 3 of the 2nd edition: for x, x_i on the unit sphere, ||x - x_i||^2 = 2 - 2 x . x_i,
// so exp(-(w^2 / 2) ||x - x_i||^2) = exp(-w^2) exp(w^2 x . x_i): the factor exp(-w^2) is the same
// for every key and cancels in the softmax. Gaussian pooling with width w is softmax(w^2 x . x_i)
// pooling, which DotProductAttention computes from queries scaled by w^2 sqrt(d).
TEST(KernelToAttention, GaussianPoolingOnTheSphereIsDotProductAttention) {
  Rng rng(3);
  for (std::size_t d : {1, 2, 3, 8}) {
    auto on_sphere = [&](std::size_t n) {
      xt::xarray<double> a = xt::zeros<double>({std::size_t(2), n, d});
      for (auto& e : a) e = rng.normal();
      for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t i = 0; i < n; ++i) {
          auto row = xt::view(a, b, i, xt::all());
          row /= std::sqrt(xt::sum(row * row)());
        }
      return Tensor<double>(a);
    };
    const Tensor<double> q = on_sphere(5), k = on_sphere(30);
    xt::xarray<double> values = xt::zeros<double>({2, 30, 3});
    for (auto& e : values) e = rng.normal();
    const Tensor<double> v(values);
    for (double w : {0.3, 1.0, 4.0}) {
      Tensor<double> gauss_weights;
      Tensor<double> gauss = gaussian_attention_pool(q, k, v, full<double>({1}, w), &gauss_weights);
      DotProductAttention<double> dot;
      Tensor<double> att = dot.forward(q * (w * w * std::sqrt(double(d))), k, v);
      EXPECT_LE(max_diff(gauss.value(), att.value()), 1e-13) << "d " << d << ", w " << w;
      EXPECT_LE(max_diff(gauss_weights.value(), dot.attention_weights().value()), 1e-13);
    }
  }
}

TEST(KernelToAttention, GaussianAttentionPoolGradcheck) {
  Tensor<double> q(xt::xarray<double>{{{0.1, 0.5}, {-0.3, 0.2}}}, true);
  Tensor<double> k(xt::xarray<double>{{{0.0, 0.4}, {0.6, -0.1}, {-0.5, 0.3}}}, true);
  Tensor<double> v(xt::xarray<double>({{{1.0, 0.5}, {2.0, -0.2}, {-1.0, 0.3}}}), true);
  Tensor<double> w = full<double>({1}, 1.3, true);
  EXPECT_TRUE(gradcheck_passes(
      [](const auto& in) { return gaussian_attention_pool(in[0], in[1], in[2], in[3]); },
      {q, k, v, w}));
}

}  // namespace
