// bandwidth: how fast should the kernel's width shrink as data grows? (d2l 2nd edition, exercise 4
// of "Attention Pooling by Similarity"; 1st edition exercise 1 and the forum: does more data help?)
//
//   bandwidth [--n-min N] [--n-max N] [--points N] [--repeats N] [--seed N] [--out DIR]
//   [--no-plots]
//
// For d = 1: data x ~ U(0, 5), y = 2 sin(x) + x^0.8 + N(0, 0.5^2) (the chapter's curve), n on a
// log grid. For each n, the width w (attention logits -((x - x_i) w)^2 / 2, kernel width
// sigma = 1 / w) minimising the leave-one-out loss L(w) = 1/(2n) sum_i (f_-i(x_i) - y_i)^2 is found
// by a line search over 40 widths on a log grid, refined by gradient descent on log w (gradients
// through the fused op nw_attention_pool, with backtracking); then the test MSE against the true
// curve on 1000 fresh inputs at that width. Log-log slopes of sigma* and of the test MSE against n
// are fitted and set beside the classical rates n^(-1/(d+4)) = n^(-0.2) and n^(-4/(d+4)) =
// n^(-0.8).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "examples/exercise_util.h"
#include "models/data.h"
#include "tapegrad.h"

using namespace tapegrad;
using namespace tapegrad::exercise;
using Tn = Tensor<double>;

namespace {

struct Options {
  int n_min = 50, n_max = 20000, points = 9, repeats = 3;
  std::uint64_t seed = 0;
  std::string out = "out/bandwidth";
  bool no_plots = false;
};

struct Sample {
  Tn x, y;
};
Sample draw(Rng& rng, std::size_t n, bool noisy) {
  xt::xarray<double> x = xt::zeros<double>({n}), y = x;
  for (std::size_t i = 0; i < n; ++i) {
    x(i) = 5 * rng.uniform();
    y(i) = chapter_truth(x(i)) + (noisy ? 0.5 * rng.normal() : 0.0);
  }
  return {Tn(x), Tn(y)};
}

// Leave-one-out loss at width w; with grad, also dL/d(log w) = w dL/dw.
double loo_loss(const Sample& s, double w, double* dlogw) {
  Tn wt = full<double>({1}, w, dlogw != nullptr);
  const Tn f = nw_attention_pool(s.x, s.x, s.y, wt, true);
  const Tn loss = mean(square(f - s.y)) * 0.5;
  if (dlogw) {
    loss.backward();
    *dlogw = w * wt.grad()(0);
  }
  return loss.item();
}

// Line search over 40 log-spaced widths w in [0.1, 1000], then 30 steps of gradient descent on
// log w with backtracking (a step is halved until the loss decreases).
double best_width(const Sample& s) {
  double logw = 0, best = INFINITY;
  for (int k = 0; k < 40; ++k) {
    const double lw = std::log(0.1) + k * std::log(1e4) / 39;
    const double l = loo_loss(s, std::exp(lw), nullptr);
    if (l < best) best = l, logw = lw;
  }
  double step = 0.1;
  for (int it = 0; it < 30; ++it) {
    double g = 0;
    const double l0 = loo_loss(s, std::exp(logw), &g);
    if (g == 0) break;
    double trial = logw - step * (g > 0 ? 1 : -1);
    while (loo_loss(s, std::exp(trial), nullptr) >= l0 && step > 1e-6)
      step /= 2, trial = logw - step * (g > 0 ? 1 : -1);
    if (step <= 1e-6) break;
    logw = trial;
  }
  return std::exp(logw);
}

double test_mse(const Sample& train, const Sample& test, double w) {
  NoGradGuard no_grad;
  const Tn f = nw_attention_pool(test.x, train.x, train.y, full<double>({1}, w), false);
  return xt::mean(xt::square(f.value() - test.y.value()))();
}

// Least-squares slope and intercept of log y against log x.
std::pair<double, double> loglog_fit(const std::vector<double>& x, const std::vector<double>& y) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = double(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double lx = std::log(x[i]), ly = std::log(y[i]);
    sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly;
  }
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  return {slope, (sy - slope * sx) / n};
}

struct Row {
  std::size_t n;
  double sigma, mse;  // averaged over the repeats
};

std::string gnuplot_script(const std::vector<Row>& rows, std::pair<double, double> fs,
                           std::pair<double, double> fe) {
  std::ostringstream gp;
  gp.precision(8);
  gp << "$d << EOD\n";
  for (const Row& r : rows) gp << r.n << " " << r.sigma << " " << r.mse << "\n";
  const double n0 = double(rows.front().n);
  gp << "EOD\nset terminal pngcairo size 1200,460 font ',10'\nset output 'bandwidth.png'\n"
     << "set multiplot layout 1,2\nset logscale xy\nset xlabel 'n (training points)'\n"
     << "set key bottom left\nset title 'best width sigma* = 1/w* (leave-one-out), d = 1'\n"
     << "set ylabel 'sigma*'\nplot $d using 1:2 with points pt 7 title 'measured', "
     << "exp(" << fs.second << ") * x**(" << fs.first << ") title sprintf('fit: slope %.3f', "
     << fs.first << "), " << rows.front().sigma << " * (x/" << n0
     << ")**(-0.2) dt 2 lc 'black' title 'theory: n^{-1/5}'\n"
     << "set title 'test MSE at sigma* (against the true curve)'\nset ylabel 'test MSE'\n"
     << "plot $d using 1:3 with points pt 7 title 'measured', exp(" << fe.second << ") * x**("
     << fe.first << ") title sprintf('fit: slope %.3f', " << fe.first << "), " << rows.front().mse
     << " * (x/" << n0 << ")**(-0.8) dt 2 lc 'black' title 'theory: n^{-4/5}'\n"
     << "unset multiplot\n";
  return gp.str();
}

Row measure(std::size_t n, const Options& o, Rng& rng) {
  Row r{n, 0, 0};
  for (int rep = 0; rep < o.repeats; ++rep) {
    const Sample train = draw(rng, n, true), test = draw(rng, 1000, false);
    const double w = best_width(train);
    r.sigma += 1 / w / o.repeats;
    r.mse += test_mse(train, test, w) / o.repeats;
  }
  return r;
}

int run(const Options& o) {
  Rng rng(o.seed);
  StagedOutput out(o.out);
  std::vector<Row> rows;
  std::ostringstream csv;
  csv << "n,sigma_best,test_mse\n";
  std::printf("d = 1, y = 2 sin(x) + x^0.8 + N(0, 0.5^2), x ~ U(0, 5); %d repeats per n\n",
              o.repeats);
  for (int k = 0; k < o.points; ++k) {
    const double t = o.points == 1 ? 0 : double(k) / (o.points - 1);
    const auto n =
        static_cast<std::size_t>(std::lround(o.n_min * std::pow(double(o.n_max) / o.n_min, t)));
    rows.push_back(measure(n, o, rng));
    std::printf("[%d/%d] n %6zu: sigma* %.4f (w* %.3f), test MSE %.6f\n", k + 1, o.points, n,
                rows.back().sigma, 1 / rows.back().sigma, rows.back().mse);
    std::fflush(stdout);
    csv << n << "," << rows.back().sigma << "," << rows.back().mse << "\n";
  }
  std::vector<double> ns, sig, err;
  for (const Row& r : rows) ns.push_back(double(r.n)), sig.push_back(r.sigma), err.push_back(r.mse);
  const auto fs = loglog_fit(ns, sig), fe = loglog_fit(ns, err);
  std::printf("log-log slope of sigma* against n: %.3f (theory -1/(d+4) = -0.200)\n", fs.first);
  std::printf("log-log slope of test MSE against n: %.3f (theory -4/(d+4) = -0.800)\n", fe.first);
  out.write("bandwidth.csv", csv.str());
  out.write("bandwidth.gp", gnuplot_script(rows, fs, fe));
  if (!o.no_plots) out.plot("bandwidth", "bandwidth.gp", {"bandwidth.png"});
  out.commit();
  std::cout << "wrote bandwidth.csv, bandwidth.gp" << (o.no_plots ? "" : ", bandwidth.png")
            << " in " << o.out << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Best kernel width against the amount of data (d2l exercise)"};
  app.add_option("--n-min", o.n_min, "smallest n")->capture_default_str();
  app.add_option("--n-max", o.n_max, "largest n")->capture_default_str();
  app.add_option("--points", o.points, "n values on the log grid")->capture_default_str();
  app.add_option("--repeats", o.repeats, "data sets per n (results averaged)")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed")->capture_default_str();
  app.add_option("--out", o.out, "output directory")->capture_default_str();
  app.add_flag("--no-plots", o.no_plots, "skip the figure");
  return run_main(app, "bandwidth", argc, argv, [&] {
    require(o.n_min >= 3, "--n-min must be >= 3");
    require(o.n_max >= o.n_min, "--n-max must be >= --n-min");
    require(o.points >= 2, "--points must be >= 2");
    require(o.repeats >= 1, "--repeats must be >= 1");
    return run(o);
  });
}
