// ops/linalg.h: matmul (2-D and the 1-D promotions) and bmm (small loops, OpenMP-split small
// loops, and OpenBLAS for large products).
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <xtensor/xview.hpp>

#include "autograd/gradcheck_gtest.h"
#include "ops/linalg.h"
#include "ops/shape.h"
#include "reference.h"

namespace tapegrad::test {
namespace {

// --- PyTorch reference ----------------------------------------------------------------------
// The cases include bmm_medium_threaded (the loop path split across OpenMP threads) and
// bmm_large_blas (50 * 70 * 80 multiply-adds per batch entry, over the 64^3 threshold in
// ops/linalg.cpp, for the forward and both backward products): every bmm path is checked against
// torch's values and gradients, in float64 and float32.

template <class T>
Tensor<T> run_case(const json& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.at("op");
  if (op == "matmul") return matmul(in[0], in[1]);
  if (op == "bmm") return bmm(in[0], in[1]);
  throw std::runtime_error("test_linalg: no dispatch for op " + op);
}

TAPEGRAD_TORCH_REFERENCE_TESTS(LinalgTorch, "linalg")

// --- the book's checks ----------------------------------------------------------------------

TEST(Bmm, BookShapeCheck) {
  const auto x = ones<double>({2, 1, 4});
  const auto y = ones<double>({2, 4, 6});
  EXPECT_EQ(bmm(x, y).shape(), (Shape{2, 1, 6}));
}

// weights = 0.1 * ones(2, 10), values = arange(20).reshape(2, 10):
// bmm(weights.unsqueeze(1), values.unsqueeze(-1)) averages each row of values.
TEST(Bmm, BookWeightedAverage) {
  const auto weights = full<double>({2, 10}, 0.1);
  const auto values = reshape(arange<double>(0.0, 20.0), {2, 10});
  const auto out = bmm(unsqueeze(weights, 1), unsqueeze(values, -1));
  EXPECT_EQ(out.shape(), (Shape{2, 1, 1}));
  xt::xarray<double> expected = {4.5, 14.5};
  expected.reshape({2, 1, 1});
  EXPECT_TRUE(all_close("bmm", out.value(), expected));
  const auto outf = bmm(unsqueeze(full<float>({2, 10}, 0.1f), 1),
                        reshape(arange<float>(0.0f, 20.0f), {2, 10, 1}));
  EXPECT_TRUE(all_close("bmm float", outf.value(), expected));
}

TEST(Matmul, PromotionShapes) {
  const auto m23 = ones<double>({2, 3}), m34 = ones<double>({3, 4});
  const auto v3 = ones<double>({3});
  EXPECT_EQ(matmul(m23, m34).shape(), (Shape{2, 4}));
  EXPECT_EQ(matmul(v3, m34).shape(), Shape{4});
  EXPECT_EQ(matmul(m23, v3).shape(), Shape{2});
  EXPECT_EQ(matmul(v3, v3).shape(), Shape{});
  EXPECT_DOUBLE_EQ(matmul(v3, v3).item(), 3.0);
}

// --- gradcheck ------------------------------------------------------------------------------

TEST(LinalgGradcheck, MatmulAndPromotions) {
  std::mt19937 rng(71);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3}, {3, 4}}, {{3}, {3, 4}},    {{2, 3}, {3}},
      {{3}, {3}},       {{1, 5}, {5, 1}}, {{4, 1}, {1, 3}},
  };
  for (const auto& [sa, sb] : shapes) {
    SCOPED_TRACE(shape_str(sa) + " @ " + shape_str(sb));
    auto a = uniform(rng, sa, -1.0, 1.0);
    auto b = uniform(rng, sb, -1.0, 1.0);
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return matmul(in[0], in[1]); }, {a, b}));
  }
  // x @ x.T uses x twice; both contributions must arrive.
  auto x = uniform(rng, {3, 2}, -1.0, 1.0);
  EXPECT_TRUE(
      gradcheck_passes([](const auto& in) { return matmul(in[0], transpose(in[0], 0, 1)); }, {x}));
}

TEST(LinalgGradcheck, Bmm) {
  std::mt19937 rng(72);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3, 4}, {2, 4, 5}},
      {{1, 1, 4}, {1, 4, 1}},
      {{3, 2, 2}, {3, 2, 3}},
  };
  for (const auto& [sa, sb] : shapes) {
    SCOPED_TRACE(shape_str(sa) + " bmm " + shape_str(sb));
    auto a = uniform(rng, sa, -1.0, 1.0);
    auto b = uniform(rng, sb, -1.0, 1.0);
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return bmm(in[0], in[1]); }, {a, b}));
  }
}

// Batch entries are independent, so splitting them across OpenMP threads must give exactly what
// each product gives on its own: one entry alone never threads (a single batch entry is computed
// by the plain serial loop), and the two loops do the same arithmetic in the same order.
TEST(Bmm, ThreadedPathMatchesPerEntryProducts) {
  std::mt19937 rng(74);
  // 4 * 16 * 32 * 32 multiply-adds, forward and backward: over the threading threshold (2^15),
  // under the BLAS one (64^3 per entry).
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{4, 16, 32}, {4, 32, 32}},
      {{3, 8, 64}, {3, 64, 24}},
  };
  for (const auto& [sa, sb] : shapes) {
    SCOPED_TRACE(shape_str(sa) + " bmm " + shape_str(sb));
    auto a = uniform(rng, sa, -1.0, 1.0);
    auto b = uniform(rng, sb, -1.0, 1.0);
    const auto g = uniform(rng, {sa[0], sa[1], sb[2]}, -1.0, 1.0, false);
    auto out = bmm(a, b);
    out.backward(g.value());
    for (std::size_t e = 0; e < sa[0]; ++e) {
      SCOPED_TRACE("batch entry " + std::to_string(e));
      auto one = [e](const Tensor<double>& t, bool requires_grad) {
        xt::xarray<double> v = xt::view(t.value(), xt::range(e, e + 1));
        return tensor<double>(std::move(v), requires_grad);
      };
      auto ae = one(a, true), be = one(b, true);
      auto oe = bmm(ae, be);
      oe.backward(one(g, false).value());
      const double tol = 1e-13;
      EXPECT_TRUE(all_close("value", one(out, false).value(), oe.value(), tol, tol));
      EXPECT_TRUE(all_close("grad a", xt::xarray<double>(xt::view(a.grad(), xt::range(e, e + 1))),
                            ae.grad(), tol, tol));
      EXPECT_TRUE(all_close("grad b", xt::xarray<double>(xt::view(b.grad(), xt::range(e, e + 1))),
                            be.grad(), tol, tol));
    }
  }
}

TEST(LinalgGradcheck, NonUniformUpstreamGradient) {
  std::mt19937 rng(73);
  auto a = uniform(rng, {2, 3}, -1.0, 1.0);
  auto b = uniform(rng, {3, 4}, -1.0, 1.0);
  const auto w = uniform(rng, {2, 4}, -2.0, 2.0, false);
  EXPECT_TRUE(gradcheck_passes(weighted_sum([](const auto& in) { return matmul(in[0], in[1]); }, w),
                               {a, b}));
  auto p = uniform(rng, {2, 3, 4}, -1.0, 1.0);
  auto q = uniform(rng, {2, 4, 2}, -1.0, 1.0);
  const auto wb = uniform(rng, {2, 3, 2}, -2.0, 2.0, false);
  EXPECT_TRUE(
      gradcheck_passes(weighted_sum([](const auto& in) { return bmm(in[0], in[1]); }, wb), {p, q}));
}

// --- errors ---------------------------------------------------------------------------------

// --- N-D matmul: torch's broadcast batch dimensions ---------------------------------------------

// Every (batch index) slice of matmul(a, b) is the 2-D product of the broadcast slices of a and b;
// shapes follow torch: batch dimensions broadcast, 1-D operands promoted and their axis removed.
TEST(MatmulND, BroadcastBatchesMatchPerSliceProducts) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(-1, 1);
  auto random = [&](const Shape& s) {
    xt::xarray<double> v = xt::zeros<double>(s);
    for (auto& e : v) e = u(rng);
    return Tensor<double>(v, true);
  };
  const auto a = random({2, 1, 3, 4}), b = random({5, 4, 2});  // batch (2, 1) with (5,) -> (2, 5)
  const auto c = matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{2, 5, 3, 2}));
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 5; ++j) {
      const xt::xarray<double> slice_a = xt::view(a.value(), i, 0);
      const xt::xarray<double> slice_b = xt::view(b.value(), j);
      const auto want = matmul(Tensor<double>(slice_a), Tensor<double>(slice_b)).value();
      const xt::xarray<double> got = xt::view(c.value(), i, j);
      EXPECT_TRUE(xt::allclose(got, want, 1e-14, 1e-14)) << i << ", " << j;
    }
  EXPECT_EQ(matmul(random({4}), random({3, 4, 2})).shape(), (Shape{3, 2}));
  EXPECT_EQ(matmul(random({3, 2, 4}), random({4})).shape(), (Shape{3, 2}));
  // Attention's scores on (b, h, n, d): matmul(q, k^T) with transpose(k, -2, -1).
  const auto q = random({2, 3, 5, 4}), k = random({2, 3, 6, 4});
  EXPECT_EQ(matmul(q, transpose(k, -2, -1)).shape(), (Shape{2, 3, 5, 6}));
}

TEST(MatmulND, Gradcheck) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<double> u(-1, 1);
  auto random = [&](const Shape& s) {
    xt::xarray<double> v = xt::zeros<double>(s);
    for (auto& e : v) e = u(rng);
    return Tensor<double>(v, true);
  };
  auto mm = [](const std::vector<Tensor<double>>& in) { return matmul(in[0], in[1]); };
  for (auto [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{2, 3, 4}, {4, 2}},
                                                            {{3, 4}, {2, 4, 2}},
                                                            {{2, 1, 2, 3}, {3, 3, 2}},
                                                            {{3}, {2, 3, 2}},
                                                            {{2, 2, 3}, {3}}}) {
    EXPECT_TRUE(gradcheck_passes(mm, {random(sa), random(sb)}))
        << shape_str(sa) << " @ " << shape_str(sb);
  }
}

TEST(LinalgErrors, MessagesNameOpAndBothShapes) {
  const auto m23 = zeros<double>({2, 3}), m45 = zeros<double>({4, 5});
  EXPECT_TRUE(throws_invalid_argument([&] { matmul(m23, m45); }, {"matmul", "(2, 3)", "(4, 5)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { matmul(m23, zeros<double>({4})); },
                                      {"matmul", "(2, 3)", "(4,)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { matmul(zeros<double>({4}), m23); },
                                      {"matmul", "(4,)", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        matmul(zeros<double>({2, 2, 2}), m45);
      },
      {"matmul", "(2, 2, 2)", "(4, 5)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [&] {
        matmul(zeros<double>({2, 2, 3}), zeros<double>({4, 3, 5}));
      },
      {"matmul", "(2, 2, 3)", "(4, 3, 5)"}));
  EXPECT_TRUE(throws_invalid_argument([&] { matmul(scalar<double>(1.0), m23); },
                                      {"matmul", "()", "(2, 3)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [] {
        bmm(zeros<float>({2, 3, 4}), zeros<float>({3, 4, 5}));
      },
      {"bmm", "(2, 3, 4)", "(3, 4, 5)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [] {
        bmm(zeros<float>({2, 3, 4}), zeros<float>({2, 5, 4}));
      },
      {"bmm", "(2, 3, 4)", "(2, 5, 4)"}));
  EXPECT_TRUE(throws_invalid_argument(
      [] {
        bmm(zeros<float>({3, 4}), zeros<float>({4, 5}));
      },
      {"bmm", "(3, 4)", "(4, 5)"}));
}

// A size-0 extent anywhere: the product has the documented shape (zeros where the contracted
// extent is 0), and backward gives each input a gradient of its own shape, in every matmul form.
TEST(Matmul, SizeZeroOperandsInEveryForm) {
  struct Case {
    Shape a, b, out;
  };
  const std::vector<Case> cases = {{{0, 3}, {3, 4}, {0, 4}},
                                   {{3, 0}, {0, 4}, {3, 4}},
                                   {{2, 3}, {3, 0}, {2, 0}},
                                   {{0}, {0}, {}},
                                   {{0}, {0, 4}, {4}},
                                   {{3, 0}, {0}, {3}},
                                   {{5, 0, 3}, {5, 3, 4}, {5, 0, 4}},
                                   {{5, 2, 0}, {0, 4}, {5, 2, 4}},
                                   {{0, 2, 3}, {3, 4}, {0, 2, 4}},
                                   {{2, 1, 2, 3}, {4, 3, 0}, {2, 4, 2, 0}}};
  for (const Case& c : cases) {
    Tensor<double> a = ones<double>(c.a, true), b = ones<double>(c.b, true);
    Tensor<double> y = matmul(a, b);
    EXPECT_EQ(y.shape(), c.out) << shape_str(c.a) << " @ " << shape_str(c.b);
    for (double v : y.value()) EXPECT_EQ(v, 0.0);
    y.backward(xt::xarray<double>(xt::ones<double>(c.out)));
    EXPECT_EQ(a.grad().shape().size(), c.a.size());
    EXPECT_EQ(to_shape(a.grad().shape()), c.a) << shape_str(c.a) << " @ " << shape_str(c.b);
    EXPECT_EQ(to_shape(b.grad().shape()), c.b) << shape_str(c.a) << " @ " << shape_str(c.b);
  }
}

}  // namespace
}  // namespace tapegrad::test
