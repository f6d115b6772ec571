// Shape errors name the tensors that have names (Tensor::set_name), through ops/common.h's
// with_names() and autograd's describe(): "keys (3, 4)" instead of "(3, 4)".
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "tapegrad.h"

namespace tapegrad {
namespace {

// The message of the std::invalid_argument that f throws ("" if it throws nothing).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

Tensor<double> named(Shape shape, const std::string& name) {
  Tensor<double> t = zeros<double>(shape);
  if (!name.empty()) t.set_name(name);
  return t;
}

TEST(ErrorNames, BinaryOpsNameTheirNamedInputs) {
  const auto keys = named({3, 4}, "keys"), w = named({5}, "w"), anon = named({5}, "");
  const std::string both = error_of([&] { add(keys, w); });
  EXPECT_NE(both.find("add: shapes (3, 4) and (5,) cannot be broadcast"), std::string::npos)
      << both;
  EXPECT_NE(both.find("keys (3, 4)"), std::string::npos) << both;
  EXPECT_NE(both.find("w (5,)"), std::string::npos) << both;
  const std::string one = error_of([&] { mul(keys, anon); });
  EXPECT_NE(one.find("(inputs: keys (3, 4))"), std::string::npos) << one;
  // No names: the message stays as it was.
  const std::string none = error_of([&] { sub(named({3, 4}, ""), anon); });
  EXPECT_EQ(none.find("inputs"), std::string::npos) << none;
  EXPECT_FALSE(none.empty());
}

TEST(ErrorNames, MatmulBmmAndLossNameTheirOperands) {
  const auto q = named({2, 3}, "queries"), k = named({4, 3}, "keys");
  const std::string mm = error_of([&] { matmul(q, k); });
  EXPECT_NE(mm.find("queries (2, 3) and keys (4, 3)"), std::string::npos) << mm;
  const std::string b = error_of([&] { bmm(named({2, 3, 4}, "attn"), named({2, 5, 1}, "")); });
  EXPECT_NE(b.find("attn (2, 3, 4) and (2, 5, 1)"), std::string::npos) << b;
  const std::string l = error_of([&] { mse_loss(named({3}, "y_hat"), named({4}, "y"), "mean"); });
  EXPECT_NE(l.find("y_hat (3,) and target y (4,)"), std::string::npos) << l;
}

TEST(ErrorNames, AxisAndReshapeErrorsNameTheTensor) {
  const auto scores = named({2, 3}, "scores");
  const std::string sm = error_of([&] { softmax(scores, 2); });
  EXPECT_NE(sm.find("softmax: axis 2 is out of range"), std::string::npos) << sm;
  EXPECT_NE(sm.find("scores (2, 3)"), std::string::npos) << sm;
  const std::string r = error_of([&] { reshape(scores, {4, 2}); });
  EXPECT_NE(r.find("scores (2, 3)"), std::string::npos) << r;
  const std::string sq = error_of([&] { squeeze(scores, 0); });
  EXPECT_NE(sq.find("of scores (2, 3) has extent 2"), std::string::npos) << sq;
  const std::string t = error_of([&] { transpose(scores, 0, 5); });
  EXPECT_NE(t.find("scores (2, 3)"), std::string::npos) << t;
}

}  // namespace
}  // namespace tapegrad
