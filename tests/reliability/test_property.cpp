// Property test: every op, fed random shapes (0-d scalars, size-0 axes, rank up to 4, mismatched
// and non-broadcastable pairs, one tensor used twice) and random values (some of large magnitude),
// either returns a result whose shape follows the documented rule and whose gradcheck passes, or
// throws std::invalid_argument naming the op. Never a crash, an abort or a sanitizer report: CI
// runs this under ASan + UBSan.
//
// Seeded and reproducible: TAPEGRAD_PROPERTY_SEED=<n> reruns a failing seed; every failure message
// starts with "seed S case C: <op> on <shapes>".
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <sstream>

#include "autograd/gradcheck.h"
#include "ops/kernels/shape.h"
#include "tapegrad.h"
#include "tests/sanitizer.h"

using namespace tapegrad;

namespace {

using Vec = std::vector<Tensor<double>>;

#if defined(TAPEGRAD_UNDER_ASAN)
constexpr int kCases = 4000;
#else
constexpr int kCases = 20000;
#endif

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(std::uint64_t seed) : rng(seed) {}
  std::size_t below(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  }
  bool coin(double p = 0.5) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
  Shape shape(std::size_t max_rank = 4) {
    Shape s(below(max_rank + 1));
    for (auto& e : s) e = coin(0.08) ? 0 : 1 + below(3);  // extents 0..3, mostly 1..3
    return s;
  }
  // A shape broadcast-compatible with s most of the time, sometimes not.
  Shape partner(const Shape& s) {
    if (coin(0.2)) return shape();
    Shape t;
    const std::size_t drop = s.empty() ? 0 : below(s.size() + 1);
    for (std::size_t i = drop; i < s.size(); ++i) t.push_back(coin(0.3) ? 1 : s[i]);
    if (coin(0.2)) t.insert(t.begin(), 1 + below(2));
    return t;
  }
  // Values away from 0 (abs, relu, sqrt, log and division are smooth there), sometimes large.
  Tensor<double> tensor(const Shape& s, bool positive = false, double scale = 1.0) {
    xt::xarray<double> a = xt::zeros<double>(s);
    for (auto& v : a) {
      double m = 0.2 + std::uniform_real_distribution<double>(0, 1.5)(rng);
      v = (positive || coin()) ? m * scale : -m * scale;
    }
    return Tensor<double>(std::move(a), true);
  }
  long axis(std::size_t rank) {  // sometimes out of range on purpose
    const long r = static_cast<long>(rank);
    return static_cast<long>(below(2 * rank + 3)) - r - 1;
  }
};

std::optional<Shape> broadcast(const Shape& a, const Shape& b) {
  try {
    return broadcast_shapes("x", a, b);
  } catch (const std::invalid_argument&) {
    return std::nullopt;
  }
}

bool axis_ok(long axis, std::size_t rank) {
  const long r = static_cast<long>(rank);
  return axis >= -r && axis < r;
}
std::size_t norm(long axis, std::size_t rank) {
  return static_cast<std::size_t>(axis < 0 ? axis + static_cast<long>(rank) : axis);
}

// One randomly drawn case: the op's name, its inputs, the call, and the shape the documented rule
// predicts (nullopt: the op must throw std::invalid_argument).
struct Case {
  std::string op;
  Vec inputs;
  std::function<Tensor<double>(const Vec&)> f;
  std::optional<Shape> expect;
  bool smooth = true;  // gradcheck applies (false: e.g. inputs of huge magnitude)
};

Case draw(Gen& g) {
  Case c;
  const std::size_t pick = g.below(20);
  const Shape s = g.shape();
  switch (pick) {
    case 0:
    case 1:
    case 2:
    case 3: {  // binary elementwise with broadcasting
      const char* names[] = {"add", "sub", "mul", "div"};
      c.op = names[pick];
      Tensor<double> a = g.tensor(s);
      const bool twice = g.coin(0.15);  // the same tensor on both sides
      Tensor<double> b = twice ? a : g.tensor(g.partner(s));
      c.inputs = twice ? Vec{a} : Vec{a, b};
      c.expect = broadcast(a.shape(), b.shape());
      c.f = [pick, twice](const Vec& in) {
        const Tensor<double>& x = in[0];
        const Tensor<double>& y = twice ? in[0] : in[1];
        switch (pick) {
          case 0:
            return add(x, y);
          case 1:
            return sub(x, y);
          case 2:
            return mul(x, y);
          default:
            return div(x, y);
        }
      };
      break;
    }
    case 4: {  // unary elementwise
      const std::size_t u = g.below(10);
      const char* names[] = {"neg", "pow", "square", "sqrt", "exp",
                             "log", "abs", "relu",   "tanh", "sigmoid"};
      c.op = names[u];
      const bool positive = u == 1 || u == 3 || u == 5;
      c.inputs = {g.tensor(s, positive)};
      c.expect = s;
      c.f = [u](const Vec& in) {
        const auto& x = in[0];
        switch (u) {
          case 0:
            return neg(x);
          case 1:
            return pow(x, 1.7);
          case 2:
            return square(x);
          case 3:
            return sqrt(x);
          case 4:
            return exp(x);
          case 5:
            return log(x);
          case 6:
            return abs(x);
          case 7:
            return relu(x);
          case 8:
            return tanh(x);
          default:
            return sigmoid(x);
        }
      };
      break;
    }
    case 5:
    case 6: {  // sum / mean over random axes
      const bool is_mean = pick == 6;
      c.op = is_mean ? "mean" : "sum";
      std::vector<long> axes;
      const std::size_t k = g.below(3);
      for (std::size_t i = 0; i < k; ++i) axes.push_back(g.axis(s.size()));
      const bool keep = g.coin();
      const bool huge = g.coin(0.2);
      c.inputs = {g.tensor(s, false, huge ? 1e6 : 1.0)};
      c.smooth = !huge;  // finite differences of 1e6-sized sums drown in rounding
      bool ok = true;
      std::vector<std::size_t> norm_axes;
      for (long a : axes) {
        if (!axis_ok(a, s.size()))
          ok = false;
        else
          norm_axes.push_back(norm(a, s.size()));
      }
      std::sort(norm_axes.begin(), norm_axes.end());
      if (std::adjacent_find(norm_axes.begin(), norm_axes.end()) != norm_axes.end()) ok = false;
      if (axes.empty())
        for (std::size_t i = 0; i < s.size(); ++i) norm_axes.push_back(i);
      std::size_t count = 1;
      Shape r;
      for (std::size_t i = 0; i < s.size(); ++i) {
        const bool reduced = std::binary_search(norm_axes.begin(), norm_axes.end(), i);
        if (reduced) count *= s[i];
        if (!reduced)
          r.push_back(s[i]);
        else if (keep)
          r.push_back(1);
      }
      if (is_mean && count == 0) ok = false;
      if (ok) c.expect = r;
      c.f = [axes, keep, is_mean](const Vec& in) {
        return is_mean ? mean(in[0], axes, keep) : sum(in[0], axes, keep);
      };
      break;
    }
    case 7: {  // max along an axis
      c.op = "max";
      const long ax = g.axis(s.size());
      const bool keep = g.coin();
      const bool huge = g.coin(0.2);
      c.inputs = {g.tensor(s, false, huge ? 1e6 : 1.0)};
      c.smooth = !huge;
      if (axis_ok(ax, s.size()) && s[norm(ax, s.size())] > 0) {
        Shape r = s;
        if (keep)
          r[norm(ax, s.size())] = 1;
        else
          r.erase(r.begin() + static_cast<long>(norm(ax, s.size())));
        c.expect = r;
      }
      c.f = [ax, keep](const Vec& in) { return max(in[0], ax, keep); };
      break;
    }
    case 8: {  // reshape, sometimes with -1, sometimes impossible
      c.op = "reshape";
      std::vector<long> to;
      Shape t = g.coin(0.6) ? g.shape() : s;
      if (g.coin(0.5)) std::shuffle(t.begin(), t.end(), g.rng);
      for (auto e : t) to.push_back(static_cast<long>(e));
      std::size_t known = 1;
      for (auto e : t) known *= e;
      Shape r = t;
      bool ok = known == numel(s);
      if (!to.empty() && g.coin(0.3)) {
        const std::size_t at = g.below(to.size());
        to[at] = -1;
        known = 1;
        for (std::size_t i = 0; i < t.size(); ++i)
          if (i != at) known *= t[i];
        ok = known != 0 && numel(s) % known == 0;
        if (ok) r[at] = numel(s) / known;
      }
      c.inputs = {g.tensor(s)};
      if (ok) c.expect = r;
      c.f = [to](const Vec& in) { return reshape(in[0], to); };
      break;
    }
    case 9: {  // unsqueeze / squeeze(axis)
      const bool un = g.coin();
      c.op = un ? "unsqueeze" : "squeeze";
      const long ax = g.axis(s.size() + (un ? 1 : 0));
      c.inputs = {g.tensor(s)};
      if (un && axis_ok(ax, s.size() + 1)) {
        Shape r = s;
        r.insert(r.begin() + static_cast<long>(norm(ax, s.size() + 1)), 1);
        c.expect = r;
      } else if (!un && axis_ok(ax, s.size()) && s[norm(ax, s.size())] == 1) {
        Shape r = s;
        r.erase(r.begin() + static_cast<long>(norm(ax, s.size())));
        c.expect = r;
      }
      c.f = [un, ax](const Vec& in) { return un ? unsqueeze(in[0], ax) : squeeze(in[0], ax); };
      break;
    }
    case 10: {  // transpose
      c.op = "transpose";
      const long a0 = g.axis(s.size()), a1 = g.axis(s.size());
      c.inputs = {g.tensor(s)};
      if (axis_ok(a0, s.size()) && axis_ok(a1, s.size())) {
        Shape r = s;
        std::swap(r[norm(a0, s.size())], r[norm(a1, s.size())]);
        c.expect = r;
      }
      c.f = [a0, a1](const Vec& in) { return transpose(in[0], a0, a1); };
      break;
    }
    case 11: {  // repeat
      c.op = "repeat";
      std::vector<std::size_t> reps(g.below(5));
      for (auto& r : reps) r = g.below(3);
      c.inputs = {g.tensor(s)};
      if (reps.size() >= s.size()) {
        Shape r(reps.size());
        const std::size_t pad = reps.size() - s.size();
        for (std::size_t i = 0; i < reps.size(); ++i) r[i] = reps[i] * (i < pad ? 1 : s[i - pad]);
        c.expect = r;
      }
      c.f = [reps](const Vec& in) { return repeat(in[0], reps); };
      break;
    }
    case 12: {  // repeat_interleave with or without an axis
      c.op = "repeat_interleave";
      const std::size_t rep = g.below(4);
      const bool with_axis = g.coin();
      const long ax = g.axis(s.size());
      c.inputs = {g.tensor(s)};
      if (!with_axis) {
        c.expect = Shape{numel(s) * rep};
      } else if (s.empty() && (ax == 0 || ax == -1)) {
        c.expect = Shape{rep};
      } else if (axis_ok(ax, s.size())) {
        Shape r = s;
        r[norm(ax, s.size())] *= rep;
        c.expect = r;
      }
      c.f = [rep, with_axis, ax](const Vec& in) {
        return with_axis ? repeat_interleave(in[0], rep, ax) : repeat_interleave(in[0], rep);
      };
      break;
    }
    case 13:
    case 14: {  // softmax / log_softmax, some with huge logits
      const bool lsm = pick == 14;
      c.op = lsm ? "log_softmax" : "softmax";
      const long ax = g.axis(s.size());
      const bool huge = g.coin(0.25);
      c.inputs = {g.tensor(s, false, huge ? 1e3 : 1.0)};
      c.smooth = !huge;
      if (axis_ok(ax, s.size())) c.expect = s;
      c.f = [ax, lsm](const Vec& in) { return lsm ? log_softmax(in[0], ax) : softmax(in[0], ax); };
      break;
    }
    case 15: {  // matmul, 1-D and 2-D
      c.op = "matmul";
      const Shape a = g.shape(2),
                  b = g.coin(0.7) && !a.empty() ? Shape{a.back(), 1 + g.below(3)} : g.shape(2);
      Shape bb = b;
      if (g.coin(0.3) && !bb.empty()) bb.pop_back();
      c.inputs = {g.tensor(a), g.tensor(bb)};
      if (!a.empty() && !bb.empty() && a.back() == bb[0]) {
        Shape r;
        if (a.size() == 2) r.push_back(a[0]);
        if (bb.size() == 2) r.push_back(bb[1]);
        c.expect = r;
      }
      c.f = [](const Vec& in) { return matmul(in[0], in[1]); };
      break;
    }
    case 16: {  // bmm
      c.op = "bmm";
      const std::size_t B = g.below(3), n = 1 + g.below(3), m = g.below(4), p = 1 + g.below(3);
      Shape a{B, n, m}, b{B, m, p};
      if (g.coin(0.3)) b = g.shape();
      c.inputs = {g.tensor(a), g.tensor(b)};
      if (b.size() == 3 && b[0] == B && b[1] == m) c.expect = Shape{B, n, b[2]};
      c.f = [](const Vec& in) { return bmm(in[0], in[1]); };
      break;
    }
    case 17: {  // mse_loss
      c.op = "mse_loss";
      const Shape t = g.coin(0.8) ? s : g.shape();
      const std::size_t red = g.below(3);
      const char* reds[] = {"none", "mean", "sum"};
      c.inputs = {g.tensor(s), g.tensor(t)};
      if (t == s && !(red == 1 && numel(s) == 0)) c.expect = red == 0 ? s : Shape{};
      c.f = [red, reds](const Vec& in) { return mse_loss(in[0], in[1], reds[red]); };
      break;
    }
    case 18: {  // masked_select
      c.op = "masked_select";
      const Shape ms = g.partner(s);
      xt::xarray<bool> mask = xt::zeros<bool>(ms);
      for (auto& m : mask) m = g.coin();
      c.inputs = {g.tensor(s)};
      if (auto b = broadcast(s, ms)) {
        xt::xarray<bool> mb = xt::broadcast(mask, *b);
        std::size_t k = 0;
        for (bool m : mb) k += m;
        c.expect = Shape{k};
      }
      c.f = [mask](const Vec& in) { return masked_select(in[0], mask); };
      break;
    }
    default: {  // the fused attention pooling op: vectors, or (n, d) queries over (m, d) keys
      c.op = "nw_attention_pool";
      const std::size_t n = g.below(4), m = g.below(4), d = 1 + g.below(3), C = 1 + g.below(3);
      const bool loo = g.coin(), matrices = g.coin();
      const std::size_t mv = g.coin(0.85) ? m : g.below(4), dk = g.coin(0.85) ? d : 1 + g.below(3);
      const std::size_t nw = g.coin() ? 1 : g.coin(0.85) ? d : g.below(4);
      if (matrices)
        c.inputs = {g.tensor({n, d}), g.tensor({m, dk}), g.tensor({mv, C}), g.tensor({nw})};
      else
        c.inputs = {g.tensor({n}), g.tensor({m}), g.tensor({mv}), g.tensor({1})};
      const bool widths = !matrices || (dk == d && (nw == 1 || nw == d));
      if (mv == m && (!loo || n == m) && m >= (loo ? 2u : 1u) && widths)
        c.expect = matrices ? Shape{n, C} : Shape{n};
      c.f = [loo](const Vec& in) { return nw_attention_pool(in[0], in[1], in[2], in[3], loo); };
      break;
    }
  }
  return c;
}

std::string describe_inputs(const Vec& in) {
  std::string s;
  for (std::size_t i = 0; i < in.size(); ++i) s += (i ? " and " : "") + shape_str(in[i].shape());
  return s;
}

std::uint64_t seed_from_env() {
  const char* e = std::getenv("TAPEGRAD_PROPERTY_SEED");
  return e ? std::strtoull(e, nullptr, 10) : 20261122ull;
}

}  // namespace

TEST(ReliabilityProperty, EveryOpReturnsTheRightShapeOrThrowsNamingItself) {
  const std::uint64_t seed = seed_from_env();
  Gen g(seed);
  int thrown = 0, checked = 0;
  for (int i = 0; i < kCases; ++i) {
    Case c = draw(g);
    const std::string where = "seed " + std::to_string(seed) + " case " + std::to_string(i) + ": " +
                              c.op + " on " + describe_inputs(c.inputs);
    std::optional<Tensor<double>> out;
    try {
      out = c.f(c.inputs);
    } catch (const std::invalid_argument& e) {
      ++thrown;
      ASSERT_FALSE(c.expect.has_value()) << where << " threw unexpectedly: " << e.what();
      ASSERT_NE(std::string(e.what()).find(c.op), std::string::npos)
          << where << ": message does not name the op: " << e.what();
      continue;
    }
    ASSERT_TRUE(c.expect.has_value())
        << where << " returned shape " << shape_str(out->shape()) << " but should have thrown";
    ASSERT_EQ(out->shape(), *c.expect) << where;
    for (double v : out->value())
      ASSERT_TRUE(std::isfinite(v) || c.op == "exp") << where << ": non-finite output";
    if (c.smooth && out->size() > 0 && out->size() <= 48) {
      ++checked;
      const GradcheckResult r = gradcheck(c.f, c.inputs);
      ASSERT_TRUE(r.ok) << where << ": " << r.message;
    }
  }
  // The generator must exercise both outcomes, or the test proves little.
  EXPECT_GT(thrown, kCases / 20);
  EXPECT_GT(checked, kCases / 4);
  std::cout << "[property] seed " << seed << ": " << kCases << " cases, " << thrown
            << " rejected with std::invalid_argument, " << checked << " gradchecked\n";
}
