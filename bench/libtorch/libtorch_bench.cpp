// LibTorch's side of the performance comparison (docs/performance.md): PyTorch's kernels without
// the Python interpreter, on the same data (bench/bench_data.h) and with the same timing loop and
// output protocol as tapegrad_bench.cpp and torch_bench.py: one configuration per process, one
// line "RESULT {json}" on stdout.
//
// Usage (normally called by bench/run.py):
//   libtorch_bench --workload W1b|W4 --dtype float32|float64 [--n N] [--w W] [--logits randn|R]
//                  [--min-time s] [--min-reps k] [--max-reps k] [--max-time s] [--warmup k]
//
//   W1b  the plain rewrite of the chapter's training epoch (torch_bench.py's W1b): D2 = (x_i -
//        x_j)^2 precomputed once; timed: logits = D2 * (-w^2 / 2), diagonal masked to -inf,
//        softmax, mv with y, 1/2 sum of squares, backward to w, SGD step (lr 0.5); w reset to
//        --w (untimed) before every epoch.
//   W4   softmax (4000, 4000) along dim 1, forward (fwd_ms_median) and forward+backward with a
//        N(0, 1) upstream gradient (median_ms); logits N(0, 1) or uniform in [-R, 0].
// Threads: at::set_num_threads(OMP_NUM_THREADS), one inter-op thread, as the Python side.
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_data.h"

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct TimingPolicy {
  double min_time = 2.0, max_time = 30.0;
  int min_reps = 5, max_reps = 2000, warmup = 1;
};

// tapegrad_bench.cpp's time_it: warm-up, then repeat until min_reps and min_time, at most
// max_reps, and stop at max_time once 3 repetitions exist. `pre` is untimed.
std::vector<double> time_it(const TimingPolicy& p, const std::function<void()>& fn,
                            const std::function<void()>& pre = nullptr) {
  for (int i = 0; i < p.warmup; ++i) {
    if (pre) pre();
    fn();
  }
  std::vector<double> ms;
  const auto start = Clock::now();
  for (;;) {
    if (pre) pre();
    const auto t0 = Clock::now();
    fn();
    ms.push_back(1e3 * seconds_since(t0));
    const double elapsed = seconds_since(start);
    const int n = static_cast<int>(ms.size());
    if (n >= p.max_reps || (n >= p.min_reps && elapsed >= p.min_time) ||
        (n >= 3 && elapsed >= p.max_time))
      break;
  }
  return ms;
}

void put_stats(json& out, std::vector<double> s) {
  std::sort(s.begin(), s.end());
  const std::size_t n = s.size();
  out["reps"] = n;
  out["median_ms"] = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  out["min_ms"] = s.front();
  out["p10_ms"] = s[static_cast<std::size_t>(0.1 * (n - 1))];
  out["p90_ms"] = s[static_cast<std::size_t>(0.9 * (n - 1) + 0.5)];
}

torch::Tensor from_vector(const std::vector<double>& v, torch::ScalarType dtype) {
  return torch::from_blob(const_cast<double*>(v.data()), {static_cast<long>(v.size())},
                          torch::kFloat64)
      .to(dtype);
}

void run_epoch(std::size_t n, double w_bench, torch::ScalarType dtype, const TimingPolicy& pol,
               json& out) {
  const bench::Data d = bench::make_data(n);
  const torch::Tensor x = from_vector(d.x, dtype), y = from_vector(d.y, dtype);
  const torch::Tensor D2 = (x.unsqueeze(1) - x.unsqueeze(0)).square();
  const torch::Tensor diag = torch::eye(static_cast<long>(n), torch::kBool);
  torch::Tensor w = torch::full({1}, w_bench, dtype).requires_grad_(true);
  torch::optim::SGD opt({w}, torch::optim::SGDOptions(0.5));
  double loss = 0, grad = 0;
  auto reset = [&] {
    torch::NoGradGuard no_grad;
    w.fill_(w_bench);
  };
  auto epoch = [&] {
    opt.zero_grad();
    const torch::Tensor logits = (D2 * (-0.5 * w * w)).masked_fill(diag, -INFINITY);
    const torch::Tensor yhat = torch::mv(torch::softmax(logits, 1), y);
    const torch::Tensor total = 0.5 * (yhat - y).square().sum();
    total.backward();
    loss = total.item<double>();
    grad = w.grad().item<double>();
    opt.step();
  };
  reset();
  epoch();  // untimed, at w_bench: the driver cross-checks it against PyTorch's
  out["loss_at_w_init"] = loss;
  out["grad_at_w_init"] = grad;
  put_stats(out, time_it(pol, epoch, reset));
  out["n"] = n;
  out["w"] = w_bench;
  out["shape"] = "n=" + std::to_string(n);
}

void run_softmax(const std::string& kind, torch::ScalarType dtype, const TimingPolicy& pol,
                 json& out) {
  const long r = 4000, c = 4000;
  const torch::Tensor X =
      from_vector(bench::logits(r * c, kind), dtype).reshape({r, c}).requires_grad_(true);
  const torch::Tensor G = from_vector(bench::normals(r * c, 22), dtype).reshape({r, c});
  auto fwd = [&] {
    torch::NoGradGuard no_grad;
    (void)torch::softmax(X, 1);
  };
  auto fwdbwd = [&] {
    X.mutable_grad() = torch::Tensor();  // torch: X.grad = None
    torch::softmax(X, 1).backward(G);
  };
  std::vector<double> tf = time_it(pol, fwd);
  std::sort(tf.begin(), tf.end());
  out["fwd_ms_median"] =
      tf.size() % 2 ? tf[tf.size() / 2] : 0.5 * (tf[tf.size() / 2 - 1] + tf[tf.size() / 2]);
  put_stats(out, time_it(pol, fwdbwd));
  out["logits"] = kind;
  out["shape"] = "(4000,4000) dim=1";
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2) a[std::string(argv[i]).substr(2)] = argv[i + 1];
  if (!a.count("workload") || !a.count("dtype")) {
    std::cerr << "usage: libtorch_bench --workload W1b|W4 --dtype float32|float64 [--n N] [--w W] "
                 "[--logits randn|R] [--min-time s] [--min-reps k] [--max-reps k] "
                 "[--max-time s] [--warmup k]\n";
    return 2;
  }
  TimingPolicy pol;
  if (a.count("min-time")) pol.min_time = std::stod(a["min-time"]);
  if (a.count("min-reps")) pol.min_reps = std::stoi(a["min-reps"]);
  if (a.count("max-reps")) pol.max_reps = std::stoi(a["max-reps"]);
  if (a.count("max-time")) pol.max_time = std::stod(a["max-time"]);
  if (a.count("warmup")) pol.warmup = std::stoi(a["warmup"]);
  const char* env_threads = std::getenv("OMP_NUM_THREADS");
  if (env_threads) at::set_num_threads(std::atoi(env_threads));
  at::set_num_interop_threads(1);

  json out;
  out["impl"] = "libtorch";
  out["workload"] = a["workload"];
  out["dtype"] = a["dtype"];
  out["torch_threads"] = at::get_num_threads();
  try {
    const torch::ScalarType dtype = a["dtype"] == "float64" ? torch::kFloat64 : torch::kFloat32;
    if (a["dtype"] != "float32" && a["dtype"] != "float64")
      throw std::invalid_argument("dtype must be float32 or float64");
    if (a["workload"] == "W1b")
      run_epoch(std::stoul(a.at("n")), a.count("w") ? std::stod(a["w"]) : 0.8, dtype, pol, out);
    else if (a["workload"] == "W4")
      run_softmax(a.count("logits") ? a["logits"] : "randn", dtype, pol, out);
    else
      throw std::invalid_argument("unknown workload " + a["workload"]);
  } catch (const std::exception& e) {
    std::cerr << "libtorch_bench: " << e.what() << "\n";
    return 1;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  out["peak_rss_MiB"] = static_cast<double>(ru.ru_maxrss) / 1024.0;
  std::cout << "RESULT " << out.dump() << std::endl;
  return 0;
}
