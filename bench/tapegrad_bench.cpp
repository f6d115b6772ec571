// tapegrad's side of the performance comparison with PyTorch (see docs/performance.md).
//
// One process runs ONE configuration and prints one line "RESULT {json}" on stdout. The driver
// (bench/run.py) starts a fresh process per configuration, so that
//   - OMP_NUM_THREADS / OPENBLAS_NUM_THREADS take effect before any parallel region exists,
//   - the peak RSS (getrusage ru_maxrss) belongs to that configuration alone,
//   - no allocator state leaks from one configuration into the next.
// The PyTorch side (bench/torch_bench.py) follows the same protocol, with the same workload
// definitions and the same data (bench_data.h), so that the rows compare like with like.
//
// Usage (normally called by bench/run.py):
//   tapegrad_bench --workload W1|W1f|W2|W2c|W3|W4|W5|fit --dtype float32|float64
//                  [--n N] [--w W] [--lr LR --epochs E] [--case vec|mat] [--logits randn|R]
//                  [--task regression|classification]
//                  [--min-time s]
//                  [--min-reps k] [--max-reps k] [--max-time s] [--warmup k]
//
// Workloads (the same definitions in bench/torch_bench.py; the names the driver's):
//   W1   train epoch, composed ops: NWKernelRegression::forward on leave-one-out (n, n-1) keys and
//        values (built once, untimed), loss 1/2 sum (yhat - y)^2, backward, SGD step.
//        w is set to --w (default 0.8, the chapter's w_init) before every epoch (untimed), so
//        every repetition runs at that width: the cost of the fused op depends on w (how many
//        weights underflow), and a benchmark that let w drift would time a moving target.
//   W1f  the same epoch through the fused op: forward_fused(x, x, y, leave_one_out = true); also
//        exp_floor_ms (n <= 10000), the median of one pass of the n^2 weights' exps and sums alone
//        (the floor of any exact epoch); and with 2 threads, interleaved_1thread_ms and
//        interleaved_2thread_ms, the epoch on 1 and 2 threads alternately (the speedup, measured
//        in one process).
//   W2   nonparametric Gaussian prediction, attention matrix materialised, under NoGradGuard:
//        models' nadaraya_watson(), n_query = n_train = n.
//   W2c  the same prediction written with the composed ops as the chapter writes it
//        (repeat_interleave, reshape, sub, square, * -0.5, softmax, matmul).
//   W3   bmm (2000,1,2000)x(2000,2000,1) ("vec") and (64,128,128)x(64,128,128) ("mat").
//   fit  not a timing: trains w with the fused op (full-batch SGD, --epochs E at --lr, from --w)
//        on the benchmark's data at --n and reports the width reached ("w_reached"). bench/run.py
//        runs it first, to benchmark W1f "at the width training reaches".
//   W4   softmax of (4000,4000) along axis 1: forward alone (fwd_ms_median) and forward+backward
//        with a random upstream gradient G, an lvalue that backward borrows (median_ms). --logits randn: N(0, 1) logits; --logits R
//        (a number): uniform in [-R, 0], where exp(logit - max) spans down to e^-R: R = 300
//        underflows most of every row, the regime of a sharp attention.
//   W5   one training epoch on d = 2 inputs (bench_data.h's make_data_2d) through the fused d-D
//        ops (ops/fused/nw_attention.h), leave-one-out, per-coordinate widths w = (W, W) (--w,
//        default 1) reset before every epoch: --task regression: nw_attention_pool with values y
//        (n, 1), loss 1/2 sum (f - y)^2; --task classification: nw_attention_cross_entropy on
//        the two labels. Forward, backward, SGD step.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_data.h"
#include "models/nadaraya_watson.h"
#include "ops/fused/nw_attention.h"
#include "ops/kernels/exp.h"
#include "ops/kernels/parallel.h"
#include "optim/sgd.h"
#include "tapegrad.h"

// OpenBLAS's own query; declared here because <cblas.h> clashes with xtensor-blas's declarations.
extern "C" int openblas_get_num_threads(void);

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using namespace tapegrad;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Current resident set (MiB) from /proc: what the untimed set-up (data, keys/values) costs.
double rss_now_mib() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  f >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * 4096.0 / (1024.0 * 1024.0);
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

long minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

struct TimingPolicy {
  double min_time = 2.0;   // keep repeating until this many seconds were timed ...
  int min_reps = 5;        // ... and at least this many repetitions ran,
  int max_reps = 2000;     // but never more than this many,
  double max_time = 30.0;  // and stop after this many seconds once 3 repetitions exist.
  int warmup = 1;          // untimed runs first (page faults of first-touch, lazy BLAS init)
};

struct Timing {
  std::vector<double> ms;  // one entry per timed repetition
  double minor_faults_per_rep = 0;
};

// The same loop as bench/torch_bench.py's: `pre` (untimed) runs before every repetition, `fn` is
// the timed region. Identical stopping rules on both sides keep the rep counts comparable.
Timing time_it(const TimingPolicy& p, const std::function<void()>& fn,
               const std::function<void()>& pre = nullptr) {
  for (int i = 0; i < p.warmup; ++i) {
    if (pre) pre();
    fn();
  }
  Timing t;
  const long f0 = minor_faults();
  const auto start = Clock::now();
  for (;;) {
    if (pre) pre();
    const auto t0 = Clock::now();
    fn();
    t.ms.push_back(1e3 * seconds_since(t0));
    const double elapsed = seconds_since(start);
    const int n = static_cast<int>(t.ms.size());
    if (n >= p.max_reps) break;
    if (n >= p.min_reps && elapsed >= p.min_time) break;
    if (n >= 3 && elapsed >= p.max_time) break;
  }
  t.minor_faults_per_rep = static_cast<double>(minor_faults() - f0) / t.ms.size();
  return t;
}

// Median and nearest-rank p10 / p90 with the same index rule as the Python side.
void put_stats(json& out, const Timing& t) {
  std::vector<double> s = t.ms;
  std::sort(s.begin(), s.end());
  const std::size_t n = s.size();
  const double median = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  out["reps"] = n;
  out["median_ms"] = median;
  out["min_ms"] = s.front();
  out["p10_ms"] = s[static_cast<std::size_t>(0.1 * (n - 1))];
  out["p90_ms"] = s[static_cast<std::size_t>(0.9 * (n - 1) + 0.5)];
  out["minor_faults_per_rep"] = t.minor_faults_per_rep;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

template <class T>
Tensor<T> to_tensor(const std::vector<double>& v, bool requires_grad = false) {
  xt::xarray<T> a = xt::zeros<T>({v.size()});
  for (std::size_t i = 0; i < v.size(); ++i) a(i) = static_cast<T>(v[i]);
  return Tensor<T>(std::move(a), requires_grad);
}

// The chapter's learning rate as torch_nw.py fixes it. w is reset (untimed) to the benchmark's
// width before every epoch so that every repetition does the same work.
constexpr double kLr = 0.5;

// One row of the floor below: f_i = sum_j e_ij y_j / sum_j e_ij. flatten: fast_exp inlined, so
// that the loop is vectorised (as in the op's pass).
template <class T>
[[gnu::flatten]] T exp_floor_row(const T* x, const T* y, std::size_t n, T xi, T w) {
  T z = 0, zv = 0;
#pragma omp simd reduction(+ : z, zv)
  for (std::size_t j = 0; j < n; ++j) {
    const T dw = (xi - x[j]) * w;
    const T e = kernels::fast_exp_nonpositive(T(-0.5) * (dw * dw));
    z += e;
    zv += e * y[j];
  }
  return zv / z;
}

// The floor of an exact fused epoch (W1f's exp_floor_ms): the n^2 weights' exps alone,
// e_ij = exp(-((x_i - x_j) w)^2 / 2), each summed into z_i and sum_j e_ij y_j in one pass, the rows
// split over the threads as the op splits them. Any exact epoch computes these exps; the op's
// pass adds the shift by the nearest key, the leave-one-out skip and the slopes e_ij A_ij, and
// its epoch adds the sort, the tape and the step.
template <class T>
double exp_floor_ms(const std::vector<double>& xd, const std::vector<double>& yd, double w_bench,
                    const TimingPolicy& pol) {
  const std::vector<T> x(xd.begin(), xd.end()), y(yd.begin(), yd.end());
  const T w = static_cast<T>(w_bench);
  const long n = static_cast<long>(x.size());
  double total = 0;
  auto pass = [&] {
    total = 0;
#pragma omp parallel reduction(+ : total)
    {
      const kernels::FlushDenormals flush;
#pragma omp for schedule(static)
      for (long i = 0; i < n; ++i)
        total += double(exp_floor_row(x.data(), y.data(), x.size(), x[std::size_t(i)], w));
    }
  };
  const double ms = median_of(time_it(pol, pass).ms);
  if (!std::isfinite(total)) throw std::runtime_error("exp floor: a non-finite estimate");
  return ms;
}

// The 2-thread speedup of an epoch, measured in one process: rounds of a few epochs on 1 thread,
// then on 2, alternating, so that a drift of the machine's speed (a shared host) weighs on both
// alike. Returns {median 1-thread ms, median 2-thread ms}; the first epoch after each switch is
// not timed (the team changes size).
std::pair<double, double> interleaved_thread_ms(const std::function<void()>& epoch,
                                                const std::function<void()>& reset) {
  const int threads = omp_get_max_threads();
  std::vector<double> ms[2];
  for (int round = 0; round < 40; ++round)
    for (int k : {0, 1}) {
      omp_set_num_threads(k + 1);
      for (int rep = 0; rep < 3; ++rep) {
        reset();
        const auto t0 = Clock::now();
        epoch();
        if (rep > 0) ms[k].push_back(1e3 * seconds_since(t0));
      }
    }
  omp_set_num_threads(threads);
  return {median_of(ms[0]), median_of(ms[1])};
}

// W1 / W1f: one training epoch at width w_bench.
template <class T>
void run_train(const std::string& wl, std::size_t n, double w_bench, const TimingPolicy& pol,
               json& out) {
  const bench::Data d = bench::make_data(n);
  const Tensor<T> x = to_tensor<T>(d.x), y = to_tensor<T>(d.y);
  const bool fused = wl == "W1f";
  Tensor<T> keys, values;
  if (!fused) {
    // Built once, outside the timed region, as the chapter (and torch_bench.py) do. x and y do
    // not require grad, so this records nothing.
    std::tie(keys, values) = training_keys_values(x, y, /*leave_one_out=*/true);
  }
  NWKernelRegression<T> net(static_cast<T>(w_bench));
  SGD<T> opt(net.parameters(), static_cast<T>(kLr));
  auto reset = [&] { net.w().mutable_value()(0) = static_cast<T>(w_bench); };

  std::vector<double> fwd_ms;
  T last_loss = 0, last_grad = 0;
  auto epoch = [&] {
    opt.zero_grad();
    const auto t0 = Clock::now();
    const Tensor<T> yhat =
        fused ? net.forward_fused(x, x, y, /*leave_one_out=*/true) : net.forward(x, keys, values);
    // torch: loss = nn.MSELoss(reduction='none'); l = loss(net(...), y) / 2; l.sum().backward()
    const Tensor<T> l = mse_loss(yhat, y, "none") / static_cast<T>(2);
    fwd_ms.push_back(1e3 * seconds_since(t0));
    const Tensor<T> total = sum(l);
    total.backward();
    last_loss = total.item();
    last_grad = net.w().grad()(0);
    opt.step();
  };

  // One untimed epoch at w_bench: its loss and dL/dw are what the driver cross-checks against
  // PyTorch's (same data, same formulation).
  reset();
  epoch();
  out["loss_at_w_init"] = static_cast<double>(last_loss);
  out["grad_at_w_init"] = static_cast<double>(last_grad);
  out["rss_after_setup_MiB"] = rss_now_mib();
  fwd_ms.clear();
  const Timing t = time_it(pol, epoch, reset);
  put_stats(out, t);
  // fwd_ms also holds the warm-up epochs; they are few and the median ignores them.
  out["fwd_ms_median"] = median_of(fwd_ms);
  if (fused && n <= 10000) out["exp_floor_ms"] = exp_floor_ms<T>(d.x, d.y, w_bench, pol);
  if (fused && n <= 10000 && omp_get_max_threads() == 2) {
    const auto [one, two] = interleaved_thread_ms(epoch, reset);
    out["interleaved_1thread_ms"] = one, out["interleaved_2thread_ms"] = two;
  }
  out["shape"] = "n=" + std::to_string(n);
}

// W5: one epoch of the d = 2 model through the fused d-D op, regression or classification.
template <class T>
void run_train_nd(const std::string& task, std::size_t n, double w_bench, const TimingPolicy& pol,
                  json& out) {
  const bench::Data2d d = bench::make_data_2d(n);
  xt::xarray<T> x = xt::zeros<T>({n, std::size_t(2)}), y = xt::zeros<T>({n, std::size_t(1)});
  for (std::size_t i = 0; i < 2 * n; ++i) x.data()[i] = static_cast<T>(d.x[i]);
  for (std::size_t i = 0; i < n; ++i) y.data()[i] = static_cast<T>(d.y[i]);
  const Tensor<T> xs(x), ys(y);
  Tensor<T> w(xt::xarray<T>(xt::full_like(xt::xarray<T>::from_shape({2}), T(w_bench))), true);
  SGD<T> opt({w}, static_cast<T>(kLr));
  auto reset = [&] { w.mutable_value().fill(static_cast<T>(w_bench)); };
  const bool regression = task == "regression";
  if (!regression && task != "classification")
    throw std::invalid_argument("--task must be regression or classification");

  std::vector<double> fwd_ms;
  T last_loss = 0, last_grad = 0;
  auto epoch = [&] {
    opt.zero_grad();
    const auto t0 = Clock::now();
    const Tensor<T> total =
        regression
            ? sum(square(nw_attention_pool(xs, xs, ys, w, /*leave_one_out=*/true) - ys)) /
                  static_cast<T>(2)
            : nw_attention_cross_entropy(xs, xs, d.label, d.label, w, /*leave_one_out=*/true);
    fwd_ms.push_back(1e3 * seconds_since(t0));
    total.backward();
    last_loss = total.item();
    last_grad = w.grad()(0);
    opt.step();
  };
  reset();
  epoch();
  out["loss_at_w_init"] = static_cast<double>(last_loss);
  out["grad_at_w_init"] = static_cast<double>(last_grad);
  out["rss_after_setup_MiB"] = rss_now_mib();
  fwd_ms.clear();
  put_stats(out, time_it(pol, epoch, reset));
  out["fwd_ms_median"] = median_of(fwd_ms);
  out["shape"] = "n=" + std::to_string(n) + " d=2";
}

// fit: train w on the benchmark's data (the chapter's function and noise) with the fused op, as
// examples/nadaraya_watson does, and report where w ends up. Not timed beyond the total.
template <class T>
void run_fit(std::size_t n, double w_init, double lr, int epochs, json& out) {
  const bench::Data d = bench::make_data(n);
  const Tensor<T> x = to_tensor<T>(d.x), y = to_tensor<T>(d.y);
  NWKernelRegression<T> net(static_cast<T>(w_init));
  SGD<T> opt(net.parameters(), static_cast<T>(lr));
  std::vector<double> losses;
  const auto t0 = Clock::now();
  for (int e = 0; e < epochs; ++e) {
    opt.zero_grad();
    const Tensor<T> total =
        sum(mse_loss(net.forward_fused(x, x, y, /*leave_one_out=*/true), y, "none") /
            static_cast<T>(2));
    total.backward();
    opt.step();
    losses.push_back(static_cast<double>(total.item()));
  }
  out["train_seconds"] = seconds_since(t0);
  out["w_init"] = w_init;
  out["lr"] = lr;
  out["epochs"] = epochs;
  out["w_reached"] = static_cast<double>(net.w().value()(0));
  out["loss_first"] = losses.empty() ? 0.0 : losses.front();
  out["loss_last"] = losses.empty() ? 0.0 : losses.back();
  out["median_ms"] = 1e3 * out["train_seconds"].get<double>() / std::max(epochs, 1);
  out["shape"] = "n=" + std::to_string(n);
}

// W2 / W2c: prediction with the attention matrix materialised, no graph.
template <class T>
void run_predict(const std::string& wl, std::size_t n, const TimingPolicy& pol, json& out) {
  const bench::Data d = bench::make_data(n);
  const Tensor<T> x_train = to_tensor<T>(d.x), y_train = to_tensor<T>(d.y);
  const Tensor<T> x_test = to_tensor<T>(bench::linspace(0.0, 5.0, n));
  T checksum = 0;
  auto predict = [&] {
    NoGradGuard no_grad;
    Tensor<T> y_hat;
    if (wl == "W2") {
      y_hat = nadaraya_watson(x_train, y_train, x_test, Kernel::Gaussian).y_hat;
    } else {
      // The chapter: X_repeat = x_test.repeat_interleave(n_train).reshape((-1, n_train))
      //   attention_weights = softmax(-(X_repeat - x_train)**2 / 2, dim=1); y_hat = attn @ y
      const Tensor<T> x_repeat = reshape(repeat_interleave(x_test, n), {-1, static_cast<long>(n)});
      const Tensor<T> attn = softmax(-square(x_repeat - x_train) / static_cast<T>(2), 1);
      y_hat = matmul(attn, y_train);
    }
    checksum = y_hat.value()(n / 2);
  };
  out["rss_after_setup_MiB"] = rss_now_mib();
  put_stats(out, time_it(pol, predict));
  out["checksum"] = static_cast<double>(checksum);
  out["shape"] = "n_test=n_train=" + std::to_string(n);
}

// W3: bmm, no graph (the operands do not require grad).
template <class T>
void run_bmm(const std::string& which, const TimingPolicy& pol, json& out) {
  std::size_t B, N, M, P;
  if (which == "vec") {
    B = 2000, N = 1, M = 2000, P = 1;
  } else {
    B = 64, N = 128, M = 128, P = 128;
  }
  auto fill = [](std::size_t count, std::uint64_t stream, std::vector<std::size_t> shape) {
    xt::xarray<T> a = xt::zeros<T>(shape);
    const std::vector<double> r = bench::normals(count, stream);
    for (std::size_t i = 0; i < count; ++i) a.data()[i] = static_cast<T>(r[i]);
    return Tensor<T>(std::move(a));
  };
  const Tensor<T> a = fill(B * N * M, 11, {B, N, M});
  const Tensor<T> b = fill(B * M * P, 12, {B, M, P});
  auto run = [&] { (void)bmm(a, b); };
  out["rss_after_setup_MiB"] = rss_now_mib();
  put_stats(out, time_it(pol, run));
  out["shape"] = which == "vec" ? "(2000,1,2000)x(2000,2000,1)" : "(64,128,128)x(64,128,128)";
}

// W4: softmax along axis 1 of a (4000, 4000) matrix, forward and forward + backward. The logits
// are N(0, 1) ("randn") or uniform in [-R, 0] (bench::logits, the same numbers as PyTorch's).
template <class T>
void run_softmax(const std::string& logits, const TimingPolicy& pol, json& out) {
  const std::size_t r = 4000, c = 4000;
  auto fill = [&](const std::vector<double>& v) {
    xt::xarray<T> a = xt::zeros<T>({r, c});
    for (std::size_t i = 0; i < r * c; ++i) a.data()[i] = static_cast<T>(v[i]);
    return a;
  };
  Tensor<T> X(fill(bench::logits(r * c, logits)), /*requires_grad=*/true);
  const xt::xarray<T> G = fill(bench::normals(r * c, 22));
  out["rss_after_setup_MiB"] = rss_now_mib();
  auto fwd = [&] {
    NoGradGuard no_grad;
    (void)softmax(X, 1);
  };
  auto fwdbwd = [&] {
    X.clear_grad();  // torch: X.grad = None
    const Tensor<T> Y = softmax(X, 1);
    Y.backward(G);
  };
  const Timing tf = time_it(pol, fwd);
  out["fwd_ms_median"] = median_of(tf.ms);
  put_stats(out, time_it(pol, fwdbwd));
  out["shape"] = "(4000,4000) dim=1";
  out["logits"] = logits;
}

template <class T>
void run(const std::string& wl, const std::map<std::string, std::string>& a,
         const TimingPolicy& pol, json& out) {
  auto n = [&] { return static_cast<std::size_t>(std::stoul(a.at("n"))); };
  if (wl == "W1" || wl == "W1f") {
    const double w = a.count("w") ? std::stod(a.at("w")) : 0.8;  // the chapter's w_init
    out["n"] = n();
    out["w"] = w;
    run_train<T>(wl, n(), w, pol, out);
  } else if (wl == "W5") {
    const double w = a.count("w") ? std::stod(a.at("w")) : 1.0;
    out["n"] = n();
    out["w"] = w;
    out["task"] = a.count("task") ? a.at("task") : "regression";
    run_train_nd<T>(out["task"].get<std::string>(), n(), w, pol, out);
  } else if (wl == "fit") {
    out["n"] = n();
    run_fit<T>(n(), std::stod(a.at("w")), std::stod(a.at("lr")), std::stoi(a.at("epochs")), out);
  } else if (wl == "W2" || wl == "W2c") {
    out["n"] = n();
    run_predict<T>(wl, n(), pol, out);
  } else if (wl == "W3") {
    out["case"] = a.at("case");
    run_bmm<T>(a.at("case"), pol, out);
  } else if (wl == "W4") {
    run_softmax<T>(a.count("logits") ? a.at("logits") : "randn", pol, out);
  } else {
    throw std::invalid_argument("unknown workload " + wl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a{{"case", "vec"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) {
      std::cerr << "unexpected argument " << k << "\n";
      return 2;
    }
    a[k.substr(2)] = argv[i + 1];
  }
  if (!a.count("workload") || !a.count("dtype")) {
    std::cerr << "usage: tapegrad_bench --workload W1|W1f|W2|W2c|W3|W4|W5 --dtype float32|float64 "
                 "[--n N] [--w W] [--case vec|mat] [--logits randn|R] "
                 "[--task regression|classification] [--min-time s] "
                 "[--min-reps k] [--max-reps k] [--max-time s] [--warmup k]\n";
    return 2;
  }
  TimingPolicy pol;
  if (a.count("min-time")) pol.min_time = std::stod(a["min-time"]);
  if (a.count("min-reps")) pol.min_reps = std::stoi(a["min-reps"]);
  if (a.count("max-reps")) pol.max_reps = std::stoi(a["max-reps"]);
  if (a.count("max-time")) pol.max_time = std::stod(a["max-time"]);
  if (a.count("warmup")) pol.warmup = std::stoi(a["warmup"]);

  json out;
  out["impl"] = "tapegrad";
  out["workload"] = a["workload"];
  out["dtype"] = a["dtype"];
  // What the process actually got from the environment, so a wrong setting shows in the JSON.
  out["omp_threads"] = omp_get_max_threads();
  out["blas_threads"] = openblas_get_num_threads();
  try {
    if (a["dtype"] == "float32")
      run<float>(a["workload"], a, pol, out);
    else if (a["dtype"] == "float64")
      run<double>(a["workload"], a, pol, out);
    else
      throw std::invalid_argument("dtype must be float32 or float64");
  } catch (const std::exception& e) {
    std::cerr << "tapegrad_bench: " << e.what() << "\n";
    return 1;
  }
  out["peak_rss_MiB"] = peak_rss_mib();
  std::cout << "RESULT " << out.dump() << std::endl;
  return 0;
}
