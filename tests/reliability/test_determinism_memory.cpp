// Threads and memory.
//  - Results do not depend on the number of OpenMP threads (float64 to 1e-12 relative) for every op
//    that runs in parallel and for whole training runs. Most loops give each thread whole rows or
//    batch entries, so their sums keep their order; the few whole-array sums (a one-element
//    factor's gradient) are split across threads in double precision, which moves only the last
//    bits.
//  - 10^5 training iterations of the chapter's model keep resident memory flat: the tape frees each
//    graph after backward.
#include <gtest/gtest.h>
#include <omp.h>

#include <fstream>
#include <random>

#include <xtensor/xadapt.hpp>

#include "data/datasets.h"
#include "models/nadaraya_watson.h"
#include "optim/sgd.h"
#include "tapegrad.h"

using namespace tapegrad;

#include "tests/sanitizer.h"

namespace {

xt::xarray<double> random_array(const Shape& s, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  xt::xarray<double> a = xt::zeros<double>(s);
  for (auto& v : a) v = nd(rng);
  return a;
}

void expect_close(const xt::xarray<double>& a, const xt::xarray<double>& b,
                  const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_LE(std::abs(a.data()[i] - b.data()[i]), 1e-12 * std::max(1.0, std::abs(b.data()[i])))
        << what << " element " << i;
}

// Runs f with 1 and with 2 OpenMP threads and compares every array it returns.
void same_with_1_and_2_threads(const std::function<std::vector<xt::xarray<double>>()>& f,
                               const std::string& what) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = f();
  omp_set_num_threads(2);
  const auto two = f();
  omp_set_num_threads(before);
  ASSERT_EQ(one.size(), two.size());
  for (std::size_t i = 0; i < one.size(); ++i)
    expect_close(one[i], two[i], what + " output " + std::to_string(i));
}

// Forward value and input gradients of f(x) * r summed, r a fixed random array.
std::vector<xt::xarray<double>> value_and_grads(
    const std::function<Tensor<double>(const std::vector<Tensor<double>>&)>& f,
    const std::vector<xt::xarray<double>>& inputs) {
  std::vector<Tensor<double>> ts;
  for (const auto& a : inputs) ts.emplace_back(a, true);
  Tensor<double> y = f(ts);
  Tensor<double> r(random_array(y.shape(), 99));
  sum(y * r).backward();
  std::vector<xt::xarray<double>> out{y.value()};
  for (auto& t : ts) out.push_back(t.grad());
  return out;
}

std::size_t rss_kib() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * 4;  // 4 KiB pages
}

}  // namespace

TEST(ReliabilityThreads, ParallelOpsGiveTheSameResultsWith1And2Threads) {
  // Sizes above every op's parallel threshold.
  const auto x = random_array({300, 200}, 1);
  same_with_1_and_2_threads(
      [&] { return value_and_grads([](auto& in) { return softmax(in[0], 1); }, {x}); },
      "softmax rows");
  same_with_1_and_2_threads(
      [&] { return value_and_grads([](auto& in) { return softmax(in[0], 0); }, {x}); },
      "softmax columns");
  same_with_1_and_2_threads(
      [&] { return value_and_grads([](auto& in) { return log_softmax(in[0], 1); }, {x}); },
      "log_softmax");
  // Elementwise ops, their broadcast gradients (summed over 80,000 elements) and reductions.
  const auto big = random_array({400, 200}, 7), row = random_array({200}, 8);
  const xt::xarray<double> one{0.7};
  same_with_1_and_2_threads(
      [&] {
        return value_and_grads([](auto& in) { return exp(in[0] * in[1]); }, {big, one});
      },
      "mul by one element, exp");
  same_with_1_and_2_threads(
      [&] {
        return value_and_grads([](auto& in) { return square(in[0] - in[1]); }, {big, row});
      },
      "broadcast sub, square");
  same_with_1_and_2_threads(
      [&] { return value_and_grads([](auto& in) { return sum(in[0], {1}); }, {big}); }, "sum");
  same_with_1_and_2_threads(
      [&] {
        return value_and_grads([](auto& in) { return repeat_interleave(in[0], 3, 1); }, {big});
      },
      "repeat_interleave");
  const auto a = random_array({400, 1, 100}, 2), b = random_array({400, 100, 1}, 3);
  same_with_1_and_2_threads(
      [&] {
        return value_and_grads([](auto& in) { return bmm(in[0], in[1]); }, {a, b});
      },
      "bmm");
  const auto c = random_array({8, 80, 80}, 9), e = random_array({8, 80, 80}, 10);  // the BLAS path
  same_with_1_and_2_threads(
      [&] {
        return value_and_grads([](auto& in) { return bmm(in[0], in[1]); }, {c, e});
      },
      "bmm (BLAS)");
  const auto q = random_array({700}, 4), k = random_array({700}, 5), v = random_array({700}, 6);
  const xt::xarray<double> w{1.7};
  for (bool loo : {false, true})
    same_with_1_and_2_threads(
        [&] {
          auto out = value_and_grads(
              [loo](auto& in) { return nw_attention_pool(in[0], in[1], in[2], in[3], loo); },
              {q, k, v, w});
          out.push_back(nw_attention_weights<double>(q, k, 1.7, loo));
          return out;
        },
        loo ? "nw_attention_pool leave-one-out" : "nw_attention_pool");
}

// The fused ops at d = 2: the pooling of 3 columns and the cross-entropy, per-coordinate widths.
TEST(ReliabilityThreads, FusedAttentionInTwoDimensionsIsTheSameWith1And2Threads) {
  const auto x2 = random_array({400, 2}, 7), y2 = random_array({400, 3}, 8);
  const xt::xarray<double> w2{1.7, 0.9};
  std::vector<std::int64_t> labels(400);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int64_t>(i % 3);
  same_with_1_and_2_threads(
      [&] {
        auto out = value_and_grads(
            [](auto& in) { return nw_attention_pool(in[0], in[0], in[1], in[2], true); },
            {x2, y2, w2});
        for (auto& t : value_and_grads(
                 [&](auto& in) {
                   return nw_attention_cross_entropy(in[0], in[0], labels, labels, in[1], true);
                 },
                 {x2, w2}))
          out.push_back(t);
        return out;
      },
      "nw_attention_pool and nw_attention_cross_entropy, d = 2");
}

TEST(ReliabilityThreads, TrainingRunsAgreeWith1And2Threads) {
  Rng rng(5);
  const ChapterData d = make_chapter_data(rng, 600);
  const Tensor<double> x(xt::adapt(d.x_train, {d.x_train.size()})),
      y(xt::adapt(d.y_train, {d.y_train.size()}));
  for (bool fused : {true, false}) {
    same_with_1_and_2_threads(
        [&] {
          NWKernelRegression<double> net(0.7);
          SGD<double> opt(net.parameters(), 0.05);
          auto [keys, values] = training_keys_values(x, y, true);
          xt::xarray<double> losses = xt::zeros<double>({5});
          for (int e = 0; e < 5; ++e) {
            opt.zero_grad();
            Tensor<double> f = fused ? net.forward_fused(x, x, y, true) : net(x, keys, values);
            Tensor<double> l = sum(mse_loss(f, y, "none") * 0.5);
            l.backward();
            opt.step();
            losses(e) = l.item();
          }
          return std::vector<xt::xarray<double>>{losses, net.w().value()};
        },
        fused ? "fused training" : "composed training");
  }
}

TEST(ReliabilityMemory, TrainingLoopKeepsResidentMemoryFlat) {
#if defined(TAPEGRAD_UNDER_ASAN)
  // ASan's quarantine makes RSS meaningless anyway; still run the loop.
  constexpr int kIters = 10000;
#else
  constexpr int kIters = 100000;
#endif
  Rng rng(0);
  const ChapterData d = make_chapter_data(rng);
  const Tensor<double> x(xt::adapt(d.x_train, {d.x_train.size()})),
      y(xt::adapt(d.y_train, {d.y_train.size()}));
  NWKernelRegression<double> net(0.5);
  SGD<double> opt(net.parameters(), 1e-4);
  auto [keys, values] = training_keys_values(x, y, true);
  std::size_t rss_warm = 0;
  const std::size_t tape0 = tape_size();
  for (int it = 0; it < kIters; ++it) {
    opt.zero_grad();
    Tensor<double> l = sum(mse_loss(net(x, keys, values), y, "none") * 0.5);
    l.backward();
    opt.step();
    if (it == 1000) rss_warm = rss_kib();
  }
  EXPECT_EQ(tape_size(), tape0);
  const std::size_t rss_end = rss_kib();
  std::cout << "[memory] " << kIters << " iterations: RSS " << rss_warm << " KiB after 1000, "
            << rss_end << " KiB at the end\n";
#if !defined(TAPEGRAD_UNDER_ASAN)
  EXPECT_LT(rss_end, rss_warm + 4096) << "resident memory grew by more than 4 MiB";
#endif
}
