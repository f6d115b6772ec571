// Checkpoints (models/checkpoint.h) of any optimiser: Adam's and AdamW's state saved and restored
// bit for bit, another optimiser's records refused, a bad state refused before the model changes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "io/checkpoint.h"
#include "optim_test_util.h"

namespace tapegrad::test {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("tapegrad_optim_ck_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A model (the MLP problem) with its optimiser; steps() trains it.
struct Training {
  MlpProblem<double> problem;
  std::unique_ptr<Optimizer<double>> opt;
  explicit Training(const json& c) : problem(c), opt(make_optimizer<double>(c, problem.params)) {}
  NamedTensors<double> named() {
    return {{"W1", problem.params[0]},
            {"b1", problem.params[1]},
            {"W2", problem.params[2]},
            {"b2", problem.params[3]}};
  }
  void steps(int n) {
    for (int s = 0; s < n; ++s) {
      const auto loss = problem.loss();
      opt->zero_grad();
      loss.backward();
      opt->step();
    }
  }
};

TEST(OptimizerCheckpoint, AdamAndAdamWResumeExactly) {
  const fs::path dir = temp_dir("resume");
  for (const char* name : {"adam", "adam_amsgrad_betas_eps", "adamw"}) {
    SCOPED_TRACE(name);
    const json& c = blocks_case("optimizers", name);
    Training straight(c), first(c), second(c);
    straight.steps(10);
    first.steps(6);
    auto named = first.named();
    save_checkpoint((dir / name).string(), named, *first.opt, {{"steps", 6}});
    auto named2 = second.named();
    EXPECT_EQ(load_checkpoint((dir / name).string(), named2, *second.opt).value("steps", 0), 6);
    EXPECT_EQ(second.opt->state().size(), first.opt->state().size());
    second.steps(4);
    for (std::size_t k = 0; k < 4; ++k)
      EXPECT_EQ(second.problem.params[k].value(), straight.problem.params[k].value()) << k;
  }
  fs::remove_all(dir);
}

TEST(OptimizerCheckpoint, AnotherOptimizersStateIsRefused) {
  const fs::path dir = temp_dir("other");
  const json& c = blocks_case("optimizers", "adam");
  Training adam(c);
  adam.steps(2);
  auto named = adam.named();
  save_checkpoint((dir / "adam").string(), named, *adam.opt);
  Training target(c);
  SGD<double> sgd(target.problem.params, 0.1, 0.9);
  auto target_named = target.named();
  const auto before = target.problem.params[0].value();
  try {
    load_checkpoint((dir / "adam").string(), target_named, sgd);
    ADD_FAILURE() << "an Adam checkpoint loaded into SGD";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("adam.step.0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("SGD"), std::string::npos) << e.what();
  }
  EXPECT_EQ(target.problem.params[0].value(), before);
  EXPECT_FALSE(sgd.has_momentum_buffer()[0]);
  // A plain SGD checkpoint has no optimiser records: it starts Adam afresh.
  SGD<double> plain(adam.problem.params, 0.1);
  save_checkpoint((dir / "sgd").string(), named, plain);
  EXPECT_NO_THROW(load_checkpoint((dir / "sgd").string(), target_named, *target.opt));
  EXPECT_TRUE(target.opt->state().empty());
  fs::remove_all(dir);
}

// A parameter's Adam state with a buffer missing: refused with one line, nothing changed.
TEST(OptimizerCheckpoint, IncompleteStateIsRefusedBeforeAnythingChanges) {
  const json& c = blocks_case("optimizers", "adamw");
  Training a(c);
  a.steps(1);
  CheckpointContents<double> contents;
  for (const auto& [name, t] : a.named()) contents.tensors.emplace_back(name, t.value());
  for (const auto& [name, v] : a.opt->state())
    if (name != "adamw.exp_avg_sq.2") contents.tensors.emplace_back(name, v);
  Training b(c);
  auto named = b.named();
  const auto before = b.problem.params[3].value();
  try {
    restore_checkpoint(contents, named, *b.opt, "crafted");
    ADD_FAILURE() << "accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("adamw.exp_avg_sq.2 is missing"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("checkpoint crafted"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b.problem.params[3].value(), before);
  EXPECT_TRUE(b.opt->state().empty());
}

// A parameter named like optimizer state would be read back as state: the save refuses it.
TEST(OptimizerCheckpoint, ParameterNamesMustNotLookLikeState) {
  const fs::path dir = temp_dir("names");
  Tensor<double> w(xt::xarray<double>{1.0}, true);
  Adam<double> opt({w}, 0.1);
  try {
    save_checkpoint((dir / "ck").string(), {{"adam.w", w}}, opt);
    ADD_FAILURE() << "saved";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("'adam.w'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "ck"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tapegrad::test
