// optim/lr_scheduler.h: StepLR and CosineAnnealingLR against PyTorch's learning rates (to 1e-12),
// resuming at an epoch, driving any optimiser, argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "optim/sgd.h"
#include "optim_test_util.h"

namespace tapegrad::test {
namespace {

template <class T>
std::unique_ptr<LRScheduler<T>> scheduler_of(const json& c, Optimizer<T>& opt) {
  const json& a = c.at("args");
  if (c.at("scheduler") == "StepLR")
    return std::make_unique<StepLR<T>>(opt, a.at("step_size").get<long>(),
                                       a.value("gamma", T(0.1)));
  return std::make_unique<CosineAnnealingLR<T>>(opt, a.at("T_max").get<long>(),
                                                a.value("eta_min", T(0)));
}

TEST(LRSchedulerTorch, LearningRatesMatch) {
  const auto names = blocks_case_names("schedules");
  ASSERT_EQ(names.size(), 4u);
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const json& c = blocks_case("schedules", name);
    Tensor<double> p(xt::xarray<double>{0.0}, true);
    SGD<double> opt({p}, c.at("base_lr").get<double>());
    auto schedule = scheduler_of<double>(c, opt);
    EXPECT_EQ(schedule->get_last_lr(), opt.lr());
    const auto lrs = c.at("lrs").get<std::vector<double>>();
    for (std::size_t e = 0; e < lrs.size(); ++e) {
      schedule->step();
      EXPECT_NEAR(schedule->get_last_lr(), lrs[e], 1e-12 * lrs[e] + 1e-18) << "epoch " << e + 1;
      EXPECT_EQ(opt.lr(), schedule->get_last_lr());
      EXPECT_EQ(schedule->last_epoch(), static_cast<long>(e + 1));
    }
  }
}

TEST(LRScheduler, ResumingAtAnEpochSetsItsRate) {
  Tensor<float> p(xt::xarray<float>{0.0f}, true);
  Adam<float> opt({p}, 0.2f);
  StepLR<float> schedule(opt, 4, 0.5f);
  schedule.set_last_epoch(9);  // 9 / 4 = 2 decays
  EXPECT_FLOAT_EQ(opt.lr(), 0.05f);
  EXPECT_EQ(schedule.base_lr(), 0.2f);
  schedule.step();
  schedule.step();
  schedule.step();  // epoch 12: a third decay
  EXPECT_FLOAT_EQ(opt.lr(), 0.025f);
  CosineAnnealingLR<float> cosine(opt, 10, 0.0f);  // its base is the lr it found: 0.025
  cosine.set_last_epoch(5);
  EXPECT_NEAR(opt.lr(), 0.0125f, 1e-8);
  EXPECT_THROW(cosine.set_last_epoch(-1), std::invalid_argument);
}

TEST(LRScheduler, InvalidArgumentsNameTheScheduler) {
  Tensor<double> p(xt::xarray<double>{0.0}, true);
  SGD<double> opt({p}, 0.1);
  auto fragment = [](auto make) -> std::string {
    try {
      make();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(fragment([&] { StepLR<double>(opt, 0); }).find("StepLR: step_size"), std::string::npos);
  EXPECT_NE(fragment([&] { StepLR<double>(opt, 2, -0.5); }).find("StepLR: gamma"),
            std::string::npos);
  EXPECT_NE(fragment([&] { CosineAnnealingLR<double>(opt, 0); }).find("CosineAnnealingLR: T_max"),
            std::string::npos);
  EXPECT_NE(fragment([&] { CosineAnnealingLR<double>(opt, 5, -1.0); }).find("eta_min"),
            std::string::npos);
}

}  // namespace
}  // namespace tapegrad::test
