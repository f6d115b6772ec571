// optim/adam.h and the optimiser interface (optim/optimizer.h): Adam and AdamW against PyTorch's
// parameters after 100 steps (torch.optim, float64, to 1e-12), the update rule by hand, state
// saved and loaded, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "optim/sgd.h"
#include "optim_test_util.h"

namespace tapegrad::test {
namespace {

// Trains the case's problem for its steps; returns the loss of each step.
template <class T>
std::vector<double> train(const json& c, MlpProblem<T>& problem) {
  auto opt = make_optimizer<T>(c, problem.params);
  auto schedule = make_schedule<T>(c, *opt);
  std::vector<double> losses;
  for (int s = 0; s < c.at("steps").get<int>(); ++s) {
    const Tensor<T> loss = problem.loss();
    opt->zero_grad();
    loss.backward();
    opt->step();
    if (schedule) schedule->step();
    losses.push_back(static_cast<double>(loss.item()));
  }
  return losses;
}

class AdamTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(AdamTorch, ParametersAfter100StepsMatch) {
  const json& c = blocks_case("optimizers", GetParam());
  MlpProblem<double> problem(c);
  const std::vector<double> losses = train(c, problem);
  const auto expected_losses = c.at("losses").get<std::vector<double>>();
  ASSERT_EQ(losses.size(), expected_losses.size());
  for (std::size_t s = 0; s < losses.size(); ++s)
    EXPECT_NEAR(losses[s], expected_losses[s], 1e-12) << "loss of step " << s + 1;
  const char* names[] = {"W1", "b1", "W2", "b2"};
  for (std::size_t k = 0; k < 4; ++k)
    EXPECT_TRUE(all_close(std::string("final ") + names[k], problem.params[k].value(),
                          array_from_json<double>(c.at("final").at(names[k])), 0.0, 1e-12));
  // float32 follows the same trajectory to float precision.
  MlpProblem<float> single(c);
  train(c, single);
  for (std::size_t k = 0; k < 4; ++k)
    EXPECT_TRUE(all_close(std::string("float32 ") + names[k], single.params[k].value(),
                          array_from_json<double>(c.at("final").at(names[k])), 1e-3, 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Reference, AdamTorch, ::testing::ValuesIn(blocks_case_names("optimizers")),
                         CaseName());

TEST(AdamTorchFile, HasEveryVariant) {
  EXPECT_EQ(blocks_case_names("optimizers").size(), 7u);
}

Tensor<double> param(std::vector<double> v) {
  xt::xarray<double> a = xt::zeros<double>({v.size()});
  std::copy(v.begin(), v.end(), a.begin());
  return Tensor<double>(a, true);
}

// Gives p the gradient g.
void set_grad(Tensor<double>& p, std::vector<double> g) {
  p.clear_grad();
  sum(p * param(g).detach()).backward();
}

// The first step moves each element by lr g / (|g| + eps): the bias corrections undo the moments'
// (1 - beta) factors.
TEST(Adam, FirstStepByHand) {
  auto p = param({1.0, -2.0, 0.5});
  Adam<double> opt({p}, 0.1);
  set_grad(p, {0.3, -4.0, 0.0});
  opt.step();
  const std::vector<double> g = {0.3, -4.0, 0.0}, p0 = {1.0, -2.0, 0.5};
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_NEAR(p.value()(i), p0[i] - 0.1 * g[i] / (std::abs(g[i]) + 1e-8), 1e-15) << i;
  EXPECT_TRUE(p.is_leaf());
}

// AdamW's decay shrinks the parameter itself (with no gradient it is the only change); Adam's
// enters the gradient, and so moves the parameter by about lr.
TEST(Adam, DecoupledAndCoupledWeightDecay) {
  auto p = param({2.0}), q = param({2.0});
  AdamW<double> w({p}, 0.1, {0.9, 0.999}, 1e-8, 0.5);
  Adam<double> a({q}, 0.1, {0.9, 0.999}, 1e-8, 0.5);
  set_grad(p, {0.0});
  set_grad(q, {0.0});
  w.step();
  a.step();
  EXPECT_DOUBLE_EQ(p.value()(0), 2.0 * (1.0 - 0.1 * 0.5));
  EXPECT_NEAR(q.value()(0), 2.0 - 0.1, 1e-7);
}

TEST(Adam, ParametersWithoutGradKeepNoState) {
  auto p = param({1.0}), q = param({3.0});
  Adam<double> opt({p, q}, 0.1);
  set_grad(p, {1.0});
  opt.step();
  opt.step();
  EXPECT_EQ(q.value()(0), 3.0);
  const auto state = opt.state();
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[0].first, "adam.step.0");
  EXPECT_EQ(state[0].second(), 2.0);
  EXPECT_EQ(state[1].first, "adam.exp_avg.0");
  EXPECT_EQ(state[2].first, "adam.exp_avg_sq.0");
}

// Every optimiser through the one interface: step, zero_grad, set_lr, state.
TEST(OptimizerInterface, SgdAdamAdamWBehindOneType) {
  auto a = param({1.0}), b = param({1.0}), c = param({1.0});
  std::vector<std::unique_ptr<Optimizer<double>>> opts;
  opts.push_back(std::make_unique<SGD<double>>(std::vector<Tensor<double>>{a}, 0.1, 0.9));
  opts.push_back(std::make_unique<Adam<double>>(std::vector<Tensor<double>>{b}, 0.1));
  opts.push_back(std::make_unique<AdamW<double>>(
      std::vector<Tensor<double>>{c}, 0.1, std::pair<double, double>{0.9, 0.999}, 1e-8, 0.0, true));
  const std::vector<std::string> names = {"SGD", "Adam", "AdamW"},
                                 prefixes = {"sgd.", "adam.", "adamw."};
  const std::vector<std::size_t> records = {1, 3, 4};
  for (std::size_t k = 0; k < opts.size(); ++k) {
    Optimizer<double>& opt = *opts[k];
    EXPECT_EQ(opt.name(), names[k]);
    EXPECT_EQ(opt.state_prefix(), prefixes[k]);
    EXPECT_TRUE(opt.state().empty());
    Tensor<double> p = opt.params()[0];
    set_grad(p, {2.0});
    opt.set_lr(0.0);  // lr 0: the state moves, the parameter does not
    opt.step();
    EXPECT_EQ(p.value()(0), 1.0) << names[k];
    opt.set_lr(0.1);
    opt.step();
    EXPECT_LT(p.value()(0), 1.0) << names[k];
    EXPECT_EQ(opt.state().size(), records[k]) << names[k];
    opt.zero_grad();
    EXPECT_EQ(p.grad()(0), 0.0);
    EXPECT_THROW(opt.set_lr(-1.0), std::invalid_argument);
    EXPECT_THROW(opt.set_lr(std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
  }
}

// load_state of another optimiser's state() continues exactly where it left off.
TEST(OptimizerState, LoadStateContinuesBitForBit) {
  auto p = param({0.5, -1.5}), q = param({0.5, -1.5});
  AdamW<double> a({p}, 0.05, {0.8, 0.9}, 1e-8, 0.1, true),
      b({q}, 0.05, {0.8, 0.9}, 1e-8, 0.1, true);
  for (int s = 0; s < 3; ++s) {
    set_grad(p, {0.3 * s - 0.2, 1.0});
    a.step();
  }
  q.mutable_value() = p.value();
  b.load_state(a.state());
  for (int s = 0; s < 3; ++s) {
    set_grad(p, {0.7, -0.1 * s});
    set_grad(q, {0.7, -0.1 * s});
    a.step();
    b.step();
  }
  EXPECT_EQ(p.value(), q.value());
  b.load_state({});  // no records: no state, as a new optimiser
  EXPECT_TRUE(b.state().empty());
}

TEST(OptimizerState, BadStateIsRefusedAndChangesNothing) {
  auto p = param({1.0, 2.0});
  Adam<double> opt({p}, 0.1);
  set_grad(p, {1.0, 1.0});
  opt.step();
  const NamedArrays<double> good = opt.state();
  const xt::xarray<double> two = xt::zeros<double>({2});
  const std::vector<std::pair<NamedArrays<double>, std::string>> bad = {
      {{{"sgd.momentum_buffer.0", two}}, "not a record of Adam's state"},
      {{{"adam.exp_avg.1", two}}, "1 parameters"},
      {{{"adam.velocity.0", two}}, "no buffer 'velocity'"},
      {{{"adam.exp_avg.0", xt::zeros<double>({3})}}, "shape (3,)"},
      {{{"adam.step.0", xt::xarray<double>(1.5)},
        {"adam.exp_avg.0", two},
        {"adam.exp_avg_sq.0", two}},
       "positive integer"},
      {{{"adam.step.0", xt::xarray<double>(1.0)}, {"adam.exp_avg.0", two}},
       "adam.exp_avg_sq.0 is missing"},
      {{{"adam.exp_avg.0", two}, {"adam.exp_avg.0", two}}, "twice"},
  };
  for (const auto& [state, fragment] : bad) {
    SCOPED_TRACE(fragment);
    try {
      opt.load_state(state);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("does not match the model"), std::string::npos)
          << e.what();
    }
    const NamedArrays<double> now = opt.state();
    ASSERT_EQ(now.size(), good.size());
    for (std::size_t i = 0; i < now.size(); ++i) EXPECT_EQ(now[i].second, good[i].second);
  }
}

TEST(Adam, InvalidArgumentsNameTheOptimizer) {
  auto p = param({1.0});
  using P = std::pair<double, double>;
  auto throws = [](auto make, const std::string& fragment) {
    try {
      make();
      ADD_FAILURE() << "no throw for " << fragment;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  throws([&] { Adam<double>({p}, -0.1); }, "Adam: invalid learning rate");
  throws([&] { Adam<double>({p}, 0.1, P{1.0, 0.999}); }, "Adam: invalid beta parameter at index 0");
  throws([&] { Adam<double>({p}, 0.1, P{0.9, -0.1}); }, "index 1");
  throws([&] { AdamW<double>({p}, 0.1, P{0.9, 0.999}, -1e-8); }, "AdamW: invalid epsilon");
  throws(
      [&] {
        AdamW<double>({p}, 0.1, P{0.9, 0.999}, 1e-8, -0.01);
      },
      "AdamW: invalid weight_decay");
  throws([&] { Adam<double>({p * 2.0}, 0.1); }, "Adam: parameter 0 must be a leaf");
  EXPECT_NO_THROW(Adam<double>({}, 0.1));
}

}  // namespace
}  // namespace tapegrad::test
