// models/multi_head_attention.h and models/dropout.h: d2l's MultiHeadAttention against PyTorch
// float64 (tests/reference/make_blocks_reference.py writes the weights, inputs, output and every
// gradient; to 1e-10) for the book's shapes, gradcheck, the heads' reshapes, dropout on the
// attention weights, shape errors; the Dropout module's modes.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "../ops/blocks_reference.h"
#include "autograd/gradcheck_gtest.h"
#include "autograd/random.h"
#include "models/dropout.h"
#include "models/multi_head_attention.h"
#include "ops/linalg.h"

namespace tapegrad::test {
namespace {

const json& mha_reference() {
  static const json j = load_reference("mha_reference.json");
  return j;
}

ValidLens lens_from_json(const json& j) {
  const IndexArray a = index_array_from_json(j);
  ValidLens v = ValidLens::from_shape(a.shape());
  std::copy(a.begin(), a.end(), v.begin());
  return v;
}

// The case's model, its weights loaded, in eval mode (no dropout, as PyTorch's reference).
template <class T>
MultiHeadAttention<T> model_of(const json& c) {
  Rng rng(0);
  const json& s = c.at("sizes");
  MultiHeadAttention<T> m(s.at("key").get<std::size_t>(), s.at("query").get<std::size_t>(),
                          s.at("value").get<std::size_t>(), c.at("num_hiddens").get<std::size_t>(),
                          c.at("num_heads").get<std::size_t>(), T(0.5), rng);
  m.eval();
  m.W_q().weight().mutable_value() = array_from_json<T>(c.at("tensors").at("W_q"));
  m.W_k().weight().mutable_value() = array_from_json<T>(c.at("tensors").at("W_k"));
  m.W_v().weight().mutable_value() = array_from_json<T>(c.at("tensors").at("W_v"));
  m.W_o().weight().mutable_value() = array_from_json<T>(c.at("tensors").at("W_o"));
  return m;
}

template <class T>
void check_case(const std::string& name, double tol) {
  SCOPED_TRACE(name);
  const json& c = mha_reference().at("multi_head_attention").at(name);
  MultiHeadAttention<T> m = model_of<T>(c);
  std::map<std::string, Tensor<T>> in;
  for (const char* k : {"queries", "keys", "values"})
    in[k] = Tensor<T>(array_from_json<T>(c.at("tensors").at(k)), true);
  const Tensor<T> out =
      m.forward(in["queries"], in["keys"], in["values"], lens_from_json(c.at("valid_lens")));
  EXPECT_TRUE(all_close("output", out.value(), array_from_json<double>(c.at("output")), 0.0, tol));
  EXPECT_TRUE(all_close("attention weights", m.attention_weights().value(),
                        array_from_json<double>(c.at("attention_weights")), 0.0, tol));
  sum(out * Tensor<T>(array_from_json<T>(c.at("G")))).backward();
  const std::map<std::string, Tensor<T>> grads = {
      {"W_q", m.W_q().weight()}, {"W_k", m.W_k().weight()},  {"W_v", m.W_v().weight()},
      {"W_o", m.W_o().weight()}, {"queries", in["queries"]}, {"keys", in["keys"]},
      {"values", in["values"]}};
  for (const auto& [k, t] : grads)
    EXPECT_TRUE(all_close("gradient of " + k, t.grad(),
                          array_from_json<double>(c.at("grads").at(k)), 0.0, tol));
}

// The book's shapes: batch 2, 4 queries, 6 key-value pairs, valid lengths [3, 2], num_hiddens
// 100, 5 heads; and a small case with a valid length per query (0 among them).
TEST(MultiHeadAttentionTorch, BookShapesForwardAndEveryGradient) {
  check_case<double>("book", 1e-10);
  check_case<double>("small_per_query_lens", 1e-10);
  check_case<float>("book", 1e-4);
  check_case<float>("small_per_query_lens", 1e-4);
}

// d2l's own check: ones in, (2, 4, 100) out.
TEST(MultiHeadAttention, BookShapeCheck) {
  Rng rng(1);
  MultiHeadAttention<double> attention(100, 5, 0.5, rng);
  attention.eval();
  const auto X = ones<double>({2, 4, 100}), Y = ones<double>({2, 6, 100});
  EXPECT_EQ(attention.forward(X, Y, Y, ValidLens{3, 2}).shape(), (Shape{2, 4, 100}));
  EXPECT_EQ(attention.attention_weights().shape(), (Shape{10, 4, 6}));
  EXPECT_EQ(attention.parameters().size(), 4u);
}

TEST(MultiHeadAttention, TransposesAreInverseAndHeadsAreSlices) {
  Rng rng(2);
  MultiHeadAttention<double> m(6, 3, 0.0, rng);
  manual_seed(3);
  const auto x = randn({2, 4, 6});
  const auto heads = m.transpose_qkv(x);
  EXPECT_EQ(heads.shape(), (Shape{6, 4, 2}));
  // Head j of batch entry i holds features 2j, 2j + 1 of entry i.
  EXPECT_EQ(heads.value()(1 * 3 + 2, 3, 1), x.value()(1, 3, 2 * 2 + 1));
  EXPECT_EQ(m.transpose_output(heads).value(), x.value());
}

// Each head is DotProductAttention on its slice of the projections.
TEST(MultiHeadAttention, EachHeadIsDotProductAttention) {
  Rng rng(4);
  MultiHeadAttention<double> m(3, 4, 5, 8, 2, 0.0, rng);
  manual_seed(5);
  const auto q = randn({2, 3, 4}), k = randn({2, 5, 3}), v = randn({2, 5, 5});
  const ValidLens lens = {{1, 4, 5}, {2, 0, 3}};
  const auto out = m.forward(q, k, v, lens);
  DotProductAttention<double> dot;
  const auto heads = dot.forward(m.transpose_qkv(m.W_q()(q)), m.transpose_qkv(m.W_k()(k)),
                                 m.transpose_qkv(m.W_v()(v)), repeat_valid_lens(lens, 2));
  EXPECT_TRUE(
      all_close("output", out.value(), m.W_o()(m.transpose_output(heads)).value(), 1e-14, 1e-14));
  EXPECT_EQ(repeat_valid_lens(ValidLens{3, 2}, 2), (ValidLens{3, 3, 2, 2}));
}

TEST(MultiHeadAttentionGradcheck, InputsAndEveryParameter) {
  Rng rng(6);
  MultiHeadAttention<double> m(3, 2, 3, 4, 2, 0.0, rng, /*bias=*/true);
  manual_seed(7);
  const auto q = randn({2, 2, 2}, true), k = randn({2, 3, 3}, true), v = randn({2, 3, 3}, true);
  std::vector<Tensor<double>> inputs = {q, k, v};
  for (const auto& p : m.parameters()) inputs.push_back(p);
  ASSERT_EQ(inputs.size(), 11u);  // 4 weights, 4 biases
  for (const ValidLens& lens : {ValidLens{2, 3}, ValidLens{{1, 3}, {2, 2}}}) {
    auto f = [&](const std::vector<Tensor<double>>& in) {
      return m.forward(in[0], in[1], in[2], lens);
    };
    EXPECT_TRUE(gradcheck_passes(f, inputs));
    EXPECT_TRUE(gradcheck_passes(weighted_sum(f, randn({2, 2, 4})), inputs));
  }
}

// In training mode dropout zeroes attention weights (drawn from the manual_seed generator); eval
// switches it off.
TEST(MultiHeadAttention, DropoutOnlyInTraining) {
  Rng rng(8);
  MultiHeadAttention<double> m(8, 2, 0.5, rng);
  manual_seed(9);
  const auto x = randn({2, 5, 8});
  EXPECT_TRUE(m.training());
  manual_seed(10);
  const auto a = m.forward(x, x, x).value();
  manual_seed(10);
  EXPECT_EQ(m.forward(x, x, x).value(), a);  // the same seed, the same masks
  m.eval();
  const auto e = m.forward(x, x, x).value();
  EXPECT_FALSE(xt::allclose(a, e));
  EXPECT_EQ(m.forward(x, x, x).value(), e);
}

TEST(MultiHeadAttentionErrors, ShapesAndSizesNameTheModel) {
  Rng rng(11);
  auto message = [](auto f) -> std::string {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message([&] { MultiHeadAttention<double>(10, 3, 0.0, rng); }).find("num_heads 3"),
            std::string::npos);
  EXPECT_NE(message([&] { MultiHeadAttention<double>(10, 2, 1.5, rng); }).find("dropout"),
            std::string::npos);
  MultiHeadAttention<double> m(4, 2, 0.0, rng);
  auto q = zeros<double>({2, 3, 4}).set_name("queries");
  const std::string wrong = message([&] {
    m.forward(q, zeros<double>({2, 5, 3}), zeros<double>({2, 5, 4}));
  });
  EXPECT_NE(wrong.find("MultiHeadAttention"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("queries (2, 3, 4)"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("(2, 5, 3)"), std::string::npos) << wrong;
  EXPECT_NE(message([&] {
              m.forward(q, q, zeros<double>({2, 4, 4}));
            }).find("MultiHeadAttention"),
            std::string::npos);
  EXPECT_NE(message([&] {
              m.forward(q, q, q, ValidLens{1, 2, 3});
            }).find("valid_lens"),
            std::string::npos);
}

TEST(DropoutModule, TrainingAndEval) {
  Dropout<float> d(0.25f);
  EXPECT_TRUE(d.training());
  const auto x = ones<float>({50, 40});
  manual_seed(12);
  const auto y = d(x).value();
  std::size_t dropped = 0;
  for (const float v : y) dropped += v == 0.0f;
  EXPECT_GT(dropped, 350u);  // about 500 of 2000
  EXPECT_LT(dropped, 650u);
  d.eval();
  EXPECT_TRUE(d(x).same(x));
  d.train();
  EXPECT_TRUE(d.training());
  EXPECT_THROW(Dropout<double>(-0.5), std::invalid_argument);
}

}  // namespace
}  // namespace tapegrad::test
