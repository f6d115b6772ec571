// kernel_to_attention: from Nadaraya-Watson pooling to dot-product and additive attention (d2l
// 2nd edition, exercise 3 of "Attention Pooling by Similarity", and the next section).
//
//   kernel_to_attention [--steps N] [--batch N] [--context N] [--lr X] [--seed N] [--out DIR]
//                       [--no-plots]
//
// 1. The identity: for x and x_i on the unit sphere, ||x - x_i||^2 = 2 - 2 x . x_i, so Gaussian
//    pooling with width w is softmax(w^2 x . x_i) pooling; printed as the largest difference.
// 2. A task where the pooling is learned end to end: each example is a set of `context` pairs
//    (x_i, y_i) from its own random curve y = a sin(x + c) + x^0.8 + noise, given as keys and
//    values, and queries x from the same curve; the model pools the y_i. Four poolings are trained
//    on the same stream of sets (SGD with momentum) and tested on held-out sets against the
//    noise-free curves:
//      nw          Gaussian pooling, one learned width w (the chapter's model)
//      dot-linear  DotProductAttention of Linear(1 -> h) projections of x (with bias)
//      dot-quad    DotProductAttention of Linear(3 -> h) projections of (x, x^2, 1)
//      additive    AdditiveAttention of (x, 1), h hidden units
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xview.hpp>

#include "data/datasets.h"
#include "examples/exercise_util.h"
#include "models/attention_scoring.h"
#include "models/linear.h"
#include "optim/sgd.h"
#include "tapegrad.h"

using namespace tapegrad;
using namespace tapegrad::exercise;
using Tn = Tensor<double>;

namespace {

struct Options {
  int steps = 300, batch = 16, context = 40, queries = 20, hidden = 8, test_sets = 200;
  double lr = 0.05, noise = 0.3;
  std::uint64_t seed = 0;
  std::string out = "out/kernel_to_attention";
  bool no_plots = false;
};

// A batch of sets: keys x_i (b, k, 1), values y_i (b, k, 1), queries x (b, q, 1), their noisy
// targets (b, q, 1) and the noise-free curve at the queries (b, q, 1).
struct Sets {
  Tn keys, values, queries, targets, truth;
  std::vector<std::pair<double, double>> curves;  // (a, c) of each set
};

double curve(std::pair<double, double> ac, double x) {
  return ac.first * std::sin(x + ac.second) + std::pow(x, 0.8);
}

Sets draw_sets(Rng& rng, const Options& o, std::size_t b) {
  const std::size_t k = o.context, q = o.queries;
  xt::xarray<double> kx = xt::zeros<double>({b, k, std::size_t(1)}), ky = kx;
  xt::xarray<double> qx = xt::zeros<double>({b, q, std::size_t(1)}), qy = qx, qt = qx;
  std::vector<std::pair<double, double>> curves;
  for (std::size_t s = 0; s < b; ++s) {
    const double a = 1 + 2 * rng.uniform(), c = 2 * M_PI * rng.uniform();
    curves.push_back({a, c});
    for (std::size_t i = 0; i < k; ++i) {
      kx(s, i, 0) = 5 * rng.uniform();
      ky(s, i, 0) = curve(curves[s], kx(s, i, 0)) + o.noise * rng.normal();
    }
    for (std::size_t i = 0; i < q; ++i) {
      qx(s, i, 0) = 5 * rng.uniform();
      qt(s, i, 0) = curve(curves[s], qx(s, i, 0));
      qy(s, i, 0) = qt(s, i, 0) + o.noise * rng.normal();
    }
  }
  return {Tn(kx), Tn(ky), Tn(qx), Tn(qy), Tn(qt), curves};
}

// (b, n, 1) -> (b, n, 3): the features (x, x^2, 1). With them a dot product can express the
// Gaussian's logit: -(w^2 / 2)(x - x_i)^2 = w^2 x x_i - (w^2 / 2) x_i^2 + (a term in x alone, which
// softmax ignores) = (x, 1) . (w^2 x_i, -(w^2 / 2) x_i^2).
Tn quad_features(const Tn& x) {
  const xt::xarray<double> one = xt::ones<double>(x.shape());
  return Tn(
      xt::xarray<double>(xt::concatenate(xt::xtuple(x.value(), x.value() * x.value(), one), 2)));
}
Tn with_one(const Tn& x) {
  const xt::xarray<double> one = xt::ones<double>(x.shape());
  return Tn(xt::xarray<double>(xt::concatenate(xt::xtuple(x.value(), one), 2)));
}

// A pooling model: its parameters and f(sets) -> predictions (b, q, 1); weights() after a call.
struct Model {
  std::string name;
  std::vector<Tn> params;
  std::function<Tn(const Sets&, Tn* weights)> forward;
};

std::vector<Model> make_models(const Options& o, Rng& rng) {
  std::vector<Model> ms;
  Tn w = full<double>({1}, 1.0, true);
  ms.push_back({"nw", {w}, [w](const Sets& s, Tn* a) {
                  return gaussian_attention_pool(s.queries, s.keys, s.values, w, a);
                }});
  const std::size_t h = o.hidden;
  auto lq = std::make_shared<Linear<double>>(1, h, true, rng);
  auto lk = std::make_shared<Linear<double>>(1, h, true, rng);
  ms.push_back({"dot-linear", {}, [lq, lk](const Sets& s, Tn* a) {
                  DotProductAttention<double> att;
                  const Tn out = att.forward((*lq)(s.queries), (*lk)(s.keys), s.values);
                  if (a) *a = att.attention_weights();
                  return out;
                }});
  for (auto* l : {lq.get(), lk.get()})
    for (const Tn& p : l->parameters()) ms.back().params.push_back(p);
  auto fq = std::make_shared<Linear<double>>(3, h, false, rng);
  auto fk = std::make_shared<Linear<double>>(3, h, false, rng);
  ms.push_back({"dot-quad", {fq->weight(), fk->weight()}, [fq, fk](const Sets& s, Tn* a) {
                  DotProductAttention<double> att;
                  const Tn out = att.forward((*fq)(quad_features(s.queries)),
                                             (*fk)(quad_features(s.keys)), s.values);
                  if (a) *a = att.attention_weights();
                  return out;
                }});
  auto add = std::make_shared<AdditiveAttention<double>>(2, 2, h, rng);
  ms.push_back({"additive", add->parameters(), [add](const Sets& s, Tn* a) {
                  const Tn out = add->forward(with_one(s.queries), with_one(s.keys), s.values);
                  if (a) *a = add->attention_weights();
                  return out;
                }});
  return ms;
}

double mse(const Tn& a, const Tn& b) {
  return xt::mean(xt::square(a.value() - b.value()))();
}

// Largest |Gaussian pooling - softmax(w^2 x . x_i) pooling| over random unit vectors, d = 2, 3, 8.
double sphere_identity(Rng& rng) {
  double worst = 0;
  for (std::size_t d : {2, 3, 8}) {
    auto unit = [&](std::size_t n) {
      xt::xarray<double> a = xt::zeros<double>({std::size_t(1), n, d});
      for (auto& e : a) e = rng.normal();
      for (std::size_t i = 0; i < n; ++i) {
        double norm = 0;
        for (std::size_t j = 0; j < d; ++j) norm += a(0, i, j) * a(0, i, j);
        for (std::size_t j = 0; j < d; ++j) a(0, i, j) /= std::sqrt(norm);
      }
      return Tn(a);
    };
    const Tn q = unit(10), k = unit(50), v = unit(50);
    for (double w : {0.5, 2.0, 5.0}) {
      DotProductAttention<double> dot;  // divides by sqrt(d): scale the queries by w^2 sqrt(d)
      const Tn a = dot.forward(q * (w * w * std::sqrt(double(d))), k, v);
      const Tn g = gaussian_attention_pool(q, k, v, full<double>({1}, w));
      worst = std::max(worst, xt::amax(xt::abs(a.value() - g.value()))());
    }
  }
  return worst;
}

// Trains every model on the same stream of sets; returns each model's loss per step.
std::vector<std::vector<double>> train(std::vector<Model>& ms, const Options& o, Rng& rng) {
  std::vector<SGD<double>> opt;
  for (auto& m : ms) opt.emplace_back(m.params, o.lr, 0.9);
  std::vector<std::vector<double>> losses(ms.size());
  for (int step = 0; step < o.steps; ++step) {
    const Sets s = draw_sets(rng, o, o.batch);
    for (std::size_t k = 0; k < ms.size(); ++k) {
      opt[k].zero_grad();
      const Tn loss = mse_loss(ms[k].forward(s, nullptr), s.targets, "mean");
      loss.backward();
      opt[k].step();
      losses[k].push_back(loss.item());
    }
    if ((step + 1) % 50 == 0 || step + 1 == o.steps) {
      std::printf("step %4d/%d, loss over the last 50 steps:", step + 1, o.steps);
      for (std::size_t k = 0; k < ms.size(); ++k) {
        const auto& l = losses[k];
        double m = 0;
        const std::size_t from = l.size() > 50 ? l.size() - 50 : 0;
        for (std::size_t i = from; i < l.size(); ++i) m += l[i] / double(l.size() - from);
        std::printf(" %s %.4f", ms[k].name.c_str(), m);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  return losses;
}

// One held-out set with its queries replaced by a grid, for the figures.
Sets grid_set(const Sets& test, std::size_t n_grid) {
  const auto& kv = test.keys.value();
  Sets g;
  g.keys = Tn(xt::xarray<double>(xt::view(kv, xt::range(0, 1), xt::all(), xt::all())));
  g.values =
      Tn(xt::xarray<double>(xt::view(test.values.value(), xt::range(0, 1), xt::all(), xt::all())));
  xt::xarray<double> qx = xt::zeros<double>({std::size_t(1), n_grid, std::size_t(1)});
  for (std::size_t i = 0; i < n_grid; ++i) qx(0, i, 0) = 5.0 * i / (n_grid - 1);
  g.queries = Tn(qx);
  g.curves = {test.curves[0]};
  return g;
}

std::string gnuplot_script(std::vector<Model>& ms, const std::vector<std::vector<double>>& losses,
                           const Sets& grid) {
  std::ostringstream gp;
  gp.precision(6);
  const auto& kx = grid.keys.value();
  const std::size_t k = kx.shape()[1], nq = grid.queries.shape()[1];
  std::vector<std::size_t> order(k);  // keys sorted by x, for the heatmaps
  for (std::size_t j = 0; j < k; ++j) order[j] = j;
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return kx(0, a, 0) < kx(0, b, 0); });
  std::vector<xt::xarray<double>> preds;
  for (std::size_t m = 0; m < ms.size(); ++m) {
    NoGradGuard no_grad;
    Tn a;
    preds.push_back(ms[m].forward(grid, &a).value());
    gp << "$w" << m << " << EOD\n";
    for (std::size_t i = 0; i < nq; ++i) {
      for (std::size_t j = 0; j < k; ++j) gp << (j ? " " : "") << a.value()(0, i, order[j]);
      gp << "\n";
    }
    gp << "EOD\n";
  }
  gp << "$fit << EOD\n";
  for (std::size_t i = 0; i < nq; ++i) {
    const double x = grid.queries.value()(0, i, 0);
    gp << x << " " << curve(grid.curves[0], x);
    for (const auto& p : preds) gp << " " << p(0, i, 0);
    gp << "\n";
  }
  gp << "EOD\n$ctx << EOD\n";
  for (std::size_t j = 0; j < k; ++j)
    gp << kx(0, j, 0) << " " << grid.values.value()(0, j, 0) << "\n";
  gp << "EOD\n$loss << EOD\n";
  for (std::size_t s = 0; s < losses[0].size(); ++s) {
    gp << s + 1;
    for (const auto& l : losses) gp << " " << l[s];
    gp << "\n";
  }
  gp << "EOD\n";
  return gp.str();
}

std::string gnuplot_figures(const std::vector<Model>& ms, std::size_t k, std::size_t nq) {
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1600,420 font ',10'\nset output "
        "'kernel_to_attention_weights.png'\n"
     << "set multiplot layout 1," << ms.size() << "\nset palette rgb 33,13,10\nunset colorbox\n"
     << "set xlabel 'context keys, sorted by x'\nset ylabel 'query x (0 to 5)'\n"
     << "set xrange [-0.5:" << k - 0.5 << "]\nset yrange [-0.5:" << nq - 0.5 << "]\n";
  for (std::size_t m = 0; m < ms.size(); ++m)
    gp << "set title '" << ms[m].name << "'\nplot $w" << m << " matrix with image notitle\n";
  gp << "unset multiplot\nset terminal pngcairo size 1400,480 font ',10'\n"
     << "set output 'kernel_to_attention.png'\nset multiplot layout 1,2\nset autoscale\n"
     << "set title 'training loss (MSE on noisy targets, per step)'\nset xlabel 'step'\n"
     << "set ylabel 'loss'\nset logscale y\nplot ";
  for (std::size_t m = 0; m < ms.size(); ++m)
    gp << (m ? ", " : "") << "$loss using 1:" << m + 2 << " with lines title '" << ms[m].name
       << "'";
  gp << "\nunset logscale y\nset title 'one held-out set'\nset xlabel 'x'\nset ylabel 'y'\n"
     << "plot $ctx with points pt 7 ps 0.7 lc 'gray' title 'context (keys, values)', $fit using "
        "1:2 "
     << "with lines lw 3 lc 'black' title 'truth'";
  for (std::size_t m = 0; m < ms.size(); ++m)
    gp << ", $fit using 1:" << m + 3 << " with lines lw 2 title '" << ms[m].name << "'";
  gp << "\nunset multiplot\n";
  return gp.str();
}

// Test MSE against the noise-free curves, per model, on held-out sets; plus average pooling.
std::vector<double> test_errors(std::vector<Model>& ms, const Sets& test, double* average) {
  NoGradGuard no_grad;
  std::vector<double> errs;
  for (auto& m : ms) errs.push_back(mse(m.forward(test, nullptr), test.truth));
  const xt::xarray<double> mean_y = xt::mean(test.values.value(), {1}, xt::keep_dims);
  *average = xt::mean(xt::square(test.truth.value() - mean_y))();
  return errs;
}

std::string learned(Model& m) {
  std::ostringstream os;
  os.precision(4);
  std::size_t count = 0;
  for (const auto& p : m.params) count += p.size();
  if (m.name == "nw")
    os << "w = " << m.params[0].value()(0);
  else
    os << count << " parameters";
  return os.str();
}

int run(const Options& o) {
  Rng rng(o.seed), test_rng(o.seed + 1000003);
  OutputTransaction out(o.out, {"kernel_to_attention.csv", "kernel_to_attention.gp",
                                "kernel_to_attention.png", "kernel_to_attention_weights.png"});
  std::printf(
      "on the unit sphere, max |Gaussian pooling - softmax(w^2 x.x_i) pooling| = %.3g "
      "(d = 2, 3, 8; w = 0.5, 2, 5)\n",
      sphere_identity(rng));
  std::vector<Model> ms = make_models(o, rng);
  std::printf(
      "sets of %d (x_i, y_i) pairs, y = a sin(x + c) + x^0.8 + N(0, %g^2), a ~ U(1, 3), "
      "c ~ U(0, 2 pi); %d queries per set; batch %d, %d steps, SGD lr %g momentum 0.9\n",
      o.context, o.noise, o.queries, o.batch, o.steps, o.lr);
  const auto losses = train(ms, o, rng);
  const Sets test = draw_sets(test_rng, o, o.test_sets);
  double average = 0;
  const std::vector<double> errs = test_errors(ms, test, &average);
  std::ostringstream csv;
  csv << "model,test_mse,learned\naverage," << average << ",\n";
  std::printf("\ntest MSE against the noise-free curves, %d held-out sets:\n  %-12s %.4f\n",
              o.test_sets, "average", average);
  for (std::size_t m = 0; m < ms.size(); ++m) {
    std::printf("  %-12s %.4f  (%s)\n", ms[m].name.c_str(), errs[m], learned(ms[m]).c_str());
    csv << ms[m].name << "," << errs[m] << "," << learned(ms[m]) << "\n";
  }
  const Sets grid = grid_set(test, 100);
  out.write("kernel_to_attention.csv", csv.str());
  out.write("kernel_to_attention.gp",
            gnuplot_script(ms, losses, grid) + gnuplot_figures(ms, o.context, 100));
  if (!o.no_plots)
    run_gnuplot_script(out, "kernel_to_attention", "kernel_to_attention.gp",
                       {"kernel_to_attention.png", "kernel_to_attention_weights.png"});
  out.commit();
  std::cout << "wrote kernel_to_attention.csv, kernel_to_attention.gp"
            << (o.no_plots ? "" : ", kernel_to_attention.png, kernel_to_attention_weights.png")
            << " in " << o.out << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"From Nadaraya-Watson pooling to dot-product and additive attention (d2l exercise)"};
  app.add_option("--steps", o.steps, "training steps (one batch of sets each)")
      ->capture_default_str();
  app.add_option("--batch", o.batch, "sets per batch")->capture_default_str();
  app.add_option("--context", o.context, "(x_i, y_i) pairs per set")->capture_default_str();
  app.add_option("--lr", o.lr, "SGD learning rate (momentum 0.9)")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the sets and the initial weights")
      ->capture_default_str();
  app.add_option("--out", o.out, "output directory")->capture_default_str();
  app.add_flag("--no-plots", o.no_plots, "skip the figures");
  return run_main(app, "kernel_to_attention", argc, argv, [&] {
    require(o.steps >= 1, "--steps must be >= 1");
    require(o.batch >= 1, "--batch must be >= 1");
    require(o.context >= 1, "--context must be >= 1");
    require(std::isfinite(o.lr) && o.lr >= 0, "--lr must be a finite number >= 0");
    return run(o);
  });
}
