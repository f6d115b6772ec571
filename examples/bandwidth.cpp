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

#include <xtensor/xbuilder.hpp>
#include <xtensor/xstrided_view.hpp>

#include "data/datasets.h"
#include "examples/exercise_util.h"
#include "tapegrad.h"

using namespace tapegrad;
using namespace tapegrad::exercise;
using Tn = Tensor<double>;

namespace {

struct Options {
  std::vector<int> dims = {1, 2, 4};
  int n_min = 50, n_max = 20000, n_max_composed = 2000, points = 9, points_composed = 5;
  int repeats = 3;
  std::uint64_t seed = 0;
  std::string out = "out/bandwidth";
  bool no_plots = false;
};

double truth(const double* x, std::size_t d) {
  double f = 0;
  for (std::size_t k = 0; k < d; ++k) f += chapter_truth(x[k]) / double(d);
  return f;
}

// x (n, d) and y (n,). For d > 1, also the constant matrices the composed ops need.
struct Sample {
  std::size_t d = 1;
  xt::xarray<double> x;
  Tn x1, y;     // d = 1: x as (n,), for the fused op
  Tn dist2;     // d > 1: ||x_i - x_j||^2, (n, n)
  Tn self_out;  // d > 1: -1e12 on the diagonal (leave-one-out), 0 elsewhere
};

Sample draw(Rng& rng, std::size_t n, std::size_t d, bool noisy) {
  Sample s;
  s.d = d;
  s.x = xt::zeros<double>({n, d});
  xt::xarray<double> y = xt::zeros<double>({n});
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < d; ++k) s.x(i, k) = 5 * rng.uniform();
    y(i) = truth(&s.x(i, 0), d) + (noisy ? 0.5 * rng.normal() : 0.0);
  }
  s.y = Tn(y);
  s.x1 = Tn(xt::xarray<double>(xt::reshape_view(s.x, {n * d})));
  return s;
}

// ||a_i - b_j||^2 for rows of a (n, d) and b (m, d): (n, m).
xt::xarray<double> squared_distances(const xt::xarray<double>& a, const xt::xarray<double>& b) {
  xt::xarray<double> d2 = xt::zeros<double>({a.shape()[0], b.shape()[0]});
  for (std::size_t i = 0; i < a.shape()[0]; ++i)
    for (std::size_t j = 0; j < b.shape()[0]; ++j)
      for (std::size_t k = 0; k < a.shape()[1]; ++k) d2(i, j) += std::pow(a(i, k) - b(j, k), 2);
  return d2;
}

void prepare_composed(Sample& s) {
  if (s.d == 1) return;
  const std::size_t n = s.x.shape()[0];
  s.dist2 = Tn(squared_distances(s.x, s.x));
  s.self_out = Tn(xt::xarray<double>(xt::eye<double>(n) * -1e12));
}

// Predictions at the training inputs, leave-one-out: fused for d = 1, composed otherwise:
//   f = softmax(-(w^2 / 2) D - 1e12 I, 1) @ y   (the -1e12 gives the own pair weight 0)
Tn loo_predictions(const Sample& s, const Tn& w) {
  if (s.d == 1) return nw_attention_pool(s.x1, s.x1, s.y, w, true);
  return matmul(softmax(s.dist2 * (w * w) * -0.5 + s.self_out, 1), s.y);
}

// Leave-one-out loss at width w; with dlogw, also dL/d(log w) = w dL/dw.
double loo_loss(const Sample& s, double w, double* dlogw) {
  Tn wt = full<double>({1}, w, dlogw != nullptr);
  const Tn loss = mean(square(loo_predictions(s, wt) - s.y)) * 0.5;
  if (dlogw) {
    loss.backward();
    *dlogw = w * wt.grad()(0);
  }
  return loss.item();
}

// Line search over log-spaced widths (40 in [0.1, 1000] without a guess, else 16 within a factor
// 4 of it), then up to 30 steps of gradient descent on log w with backtracking (a step is halved
// until the loss decreases).
double best_width(const Sample& s, double guess) {
  const int count = guess > 0 ? 16 : 40;
  const double lo = guess > 0 ? std::log(guess / 4) : std::log(0.1);
  const double hi = guess > 0 ? std::log(guess * 4) : std::log(1000.0);
  double logw = lo, best = INFINITY;
  for (int k = 0; k < count; ++k) {
    const double lw = lo + k * (hi - lo) / (count - 1);
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
  const Tn wt = full<double>({1}, w);
  Tn f;
  if (train.d == 1) {
    f = nw_attention_pool(test.x1, train.x1, train.y, wt, false);
  } else {
    const Tn d2(squared_distances(test.x, train.x));
    f = matmul(softmax(d2 * (wt * wt) * -0.5, 1), train.y);
  }
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
  std::size_t d, n;
  double sigma, mse;  // averaged over the repeats
};

struct Fit {
  std::size_t d;
  std::pair<double, double> sigma, mse;  // (slope, intercept) of the log-log fits
};

// One panel: measured points, fitted line and theoretical slope for every d (column 3 or 4).
std::string panel(const std::vector<Row>& rows, const std::vector<Fit>& fits, bool sigma) {
  std::ostringstream gp;
  gp << "plot ";
  for (std::size_t k = 0; k < fits.size(); ++k) {
    const std::size_t d = fits[k].d;
    const auto& f = sigma ? fits[k].sigma : fits[k].mse;
    const Row *first = nullptr, *last = nullptr;
    for (const Row& r : rows)
      if (r.d == d) {
        if (!first) first = &r;
        last = &r;
      }
    const double theory = sigma ? -1.0 / (d + 4) : -4.0 / (d + 4);
    // Lines only over this d's range of n: (x <= n_last ? line : 1/0).
    const std::string in_range = "(x <= " + std::to_string(last->n) + " ? ";
    gp << (k ? ", " : "") << "$d" << d << " using 1:" << (sigma ? 2 : 3) << " with points pt 7 lc "
       << k + 1 << " title 'd = " << d << "', " << in_range << "exp(" << f.second << ") * x**("
       << f.first << ") : 1/0) lc " << k + 1 << " title sprintf('fit, slope %.3f', " << f.first
       << "), " << in_range << (sigma ? first->sigma : first->mse) << " * (x/" << first->n << ")**("
       << theory << ") : 1/0) dt 2 lc " << k + 1 << " title sprintf('theory, slope %.3f', "
       << theory << ")";
  }
  return gp.str() + "\n";
}

std::string gnuplot_script(const std::vector<Row>& rows, const std::vector<Fit>& fits) {
  std::ostringstream gp;
  gp.precision(8);
  for (const Fit& f : fits) {
    gp << "$d" << f.d << " << EOD\n";
    for (const Row& r : rows)
      if (r.d == f.d) gp << r.n << " " << r.sigma << " " << r.mse << "\n";
    gp << "EOD\n";
  }
  gp << "set terminal pngcairo size 1400,560 font ',10'\nset output 'bandwidth.png'\n"
     << "set multiplot layout 1,2\nset logscale xy\nset xlabel 'n (training points)'\n"
     << "set samples 400\n"
     << "set key outside bottom center horizontal maxrows 3 font ',9'\n"
     << "set title 'best width sigma* = 1/w* (leave-one-out)'\nset ylabel 'sigma*'\n"
     << panel(rows, fits, true) << "set title 'test MSE at sigma* (against the true function)'\n"
     << "set ylabel 'test MSE'\n"
     << panel(rows, fits, false) << "unset multiplot\n";
  return gp.str();
}

Row measure(std::size_t d, std::size_t n, const Options& o, Rng& rng, double* guess) {
  Row r{d, n, 0, 0};
  double log_w = 0;
  for (int rep = 0; rep < o.repeats; ++rep) {
    Sample train = draw(rng, n, d, true);
    const Sample test = draw(rng, 1000, d, false);
    prepare_composed(train);
    const double w = best_width(train, *guess);
    log_w += std::log(w) / o.repeats;
    r.sigma += 1 / w / o.repeats;
    r.mse += test_mse(train, test, w) / o.repeats;
  }
  *guess = std::exp(log_w);  // the next n's line search is centred here
  return r;
}

// The n grid of dimension d: log-spaced from --n-min to its n_max.
std::vector<std::size_t> n_grid(const Options& o, std::size_t d) {
  const int points = d == 1 ? o.points : o.points_composed;
  const double n_max = d == 1 ? o.n_max : o.n_max_composed;
  std::vector<std::size_t> ns;
  for (int k = 0; k < points; ++k)
    ns.push_back(static_cast<std::size_t>(
        std::lround(o.n_min * std::pow(n_max / o.n_min, double(k) / (points - 1)))));
  return ns;
}

int run(const Options& o) {
  Rng rng(o.seed);
  OutputTransaction out(o.out, {"bandwidth.csv", "bandwidth.gp", "bandwidth.png"});
  std::vector<Row> rows;
  std::vector<Fit> fits;
  std::ostringstream csv;
  csv << "d,n,sigma_best,test_mse\n";
  std::printf(
      "x ~ U(0, 5)^d, y = (1/d) sum_k (2 sin(x_k) + x_k^0.8) + N(0, 0.5^2); %d repeats "
      "per n; d = 1 through the fused op, d > 1 through composed ops\n",
      o.repeats);
  for (int di : o.dims) {
    const std::size_t d = static_cast<std::size_t>(di);
    const std::vector<std::size_t> ns = n_grid(o, d);
    std::vector<double> xs, sig, err;
    double guess = 0;
    for (std::size_t k = 0; k < ns.size(); ++k) {
      rows.push_back(measure(d, ns[k], o, rng, &guess));
      const Row& r = rows.back();
      std::printf("[d %zu, %zu/%zu] n %6zu: sigma* %.4f (w* %.3f), test MSE %.6f\n", d, k + 1,
                  ns.size(), r.n, r.sigma, 1 / r.sigma, r.mse);
      std::fflush(stdout);
      csv << d << "," << r.n << "," << r.sigma << "," << r.mse << "\n";
      xs.push_back(double(r.n)), sig.push_back(r.sigma), err.push_back(r.mse);
    }
    fits.push_back({d, loglog_fit(xs, sig), loglog_fit(xs, err)});
  }
  std::printf("\n%3s  %-26s %-26s\n", "d", "slope of sigma* (theory)",
              "slope of test MSE (theory)");
  for (const Fit& f : fits)
    std::printf("%3zu  %7.3f (%6.3f)           %7.3f (%6.3f)\n", f.d, f.sigma.first,
                -1.0 / (f.d + 4), f.mse.first, -4.0 / (f.d + 4));
  out.write("bandwidth.csv", csv.str());
  out.write("bandwidth.gp", gnuplot_script(rows, fits));
  if (!o.no_plots) run_gnuplot_script(out, "bandwidth", "bandwidth.gp", {"bandwidth.png"});
  out.commit();
  std::cout << "wrote bandwidth.csv, bandwidth.gp" << (o.no_plots ? "" : ", bandwidth.png")
            << " in " << o.out << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Best kernel width against the amount of data (d2l exercise)"};
  app.add_option("--dims", o.dims, "input dimensions")->delimiter(',')->capture_default_str();
  app.add_option("--n-min", o.n_min, "smallest n")->capture_default_str();
  app.add_option("--n-max", o.n_max, "largest n for d = 1 (fused op)")->capture_default_str();
  app.add_option("--n-max-composed", o.n_max_composed, "largest n for d > 1 (composed ops)")
      ->capture_default_str();
  app.add_option("--points", o.points, "n values on the log grid, d = 1")->capture_default_str();
  app.add_option("--points-composed", o.points_composed, "n values on the log grid, d > 1")
      ->capture_default_str();
  app.add_option("--repeats", o.repeats, "data sets per n (results averaged)")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed")->capture_default_str();
  app.add_option("--out", o.out, "output directory")->capture_default_str();
  app.add_flag("--no-plots", o.no_plots, "skip the figure");
  return run_main(app, "bandwidth", argc, argv, [&] {
    require(!o.dims.empty(), "--dims must list at least one dimension");
    for (int d : o.dims) require(d >= 1 && d <= 16, "--dims: each dimension must be in 1..16");
    require(o.n_min >= 3, "--n-min must be >= 3");
    require(o.n_max >= o.n_min, "--n-max must be >= --n-min");
    require(o.n_max_composed >= o.n_min, "--n-max-composed must be >= --n-min");
    require(o.points >= 2 && o.points_composed >= 2, "--points and --points-composed must be >= 2");
    require(o.repeats >= 1, "--repeats must be >= 1");
    return run(o);
  });
}
