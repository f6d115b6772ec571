// poolings: other parametric attention poolings on the chapter's data (d2l 1st edition, exercise 4,
// and the forum's variants), trained side by side with leave-one-out keys and values.
//
//   poolings [--epochs N] [--lr X] [--seed N] [--n-train N] [--out DIR] [--no-plots]
//
// Every pooling predicts f(x) = sum_j alpha(x, x_j) v_j with attention weights alpha computed from
// d = x - x_j and its own parameters; all start from w = 1 and train with the chapter's loss
// 1/2 sum_i (f(x_i) - y_i)^2, plain SGD, the same lr and epochs. Prints a table of final loss, test
// MSE against the truth 2 sin(x) + x^0.8 and learned parameters; writes poolings.csv, losses.csv,
// poolings.gp and poolings_attention.png (one heatmap per pooling), poolings_fit.png in --out.
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <xtensor/xadapt.hpp>

#include "data/datasets.h"
#include "examples/exercise_util.h"
#include "models/nadaraya_watson.h"
#include "optim/sgd.h"
#include "tapegrad.h"

using namespace tapegrad;
using namespace tapegrad::exercise;
using Tn = Tensor<double>;

namespace {

struct Options {
  int epochs = 200, n_train = 50;
  double lr = 0.5;
  std::uint64_t seed = 0;
  std::string out = "out/poolings";
  bool no_plots = false;
};

// One pooling: its attention weights from d = query - key (rows: queries) and its parameters.
// With value offsets, the values are y_j + b_j, b learned (one per training point).
struct Pooling {
  std::string name, formula;
  std::vector<Tn> params;  // params[0] is the width-like w; params[1] the offsets b when used
  std::function<Tn(const Tn& d, const std::vector<Tn>& p)> weights;
  bool value_offsets = false;
};

Tn param(double v, std::size_t n = 1) {
  return full<double>({n}, v, true);
}

std::vector<Pooling> make_poolings(std::size_t n) {
  auto gauss = [](const Tn& d, const std::vector<Tn>& p) {
    return softmax(square(d * p[0]) * -0.5, 1);  // the book's -((d w)^2) / 2
  };
  std::vector<Pooling> ps;
  ps.push_back({"gaussian", "-((x - x_i) w)^2 / 2", {param(1)}, gauss});
  ps.push_back(
      {"gaussian-sq", "-w (x - x_i)^2 / 2", {param(1)}, [](const Tn& d, const std::vector<Tn>& p) {
         return softmax(square(d) * p[0] * -0.5, 1);
       }});
  ps.push_back({"laplace", "-|x - x_i| w", {param(1)}, [](const Tn& d, const std::vector<Tn>& p) {
                  return softmax(-(abs(d) * p[0]), 1);
                }});
  ps.push_back({"gaussian+offset",
                "-((x - x_i) w)^2 / 2, values y_i + b_i",
                {param(1), param(0, n)},
                gauss,
                true});
  // The forum's "inverse" kernel: weights proportional to the distance, normalised per query.
  ps.push_back({"inverse",
                "|(x - x_i) w| / sum_j |(x - x_j) w|",
                {param(1)},
                [](const Tn& d, const std::vector<Tn>& p) {
                  const Tn a = abs(d * p[0]);
                  return a / sum(a, {1}, true);
                }});
  return ps;
}

// Differences d = query - key and values for the training set-up (leave-one-out) or prediction
// (every query sees all n training pairs). Constants: no gradient flows into the data.
struct Layout {
  Tn d, values;
};
Layout layout(const Tn& x_train, const Tn& y_train, const Tn& queries, bool train) {
  const std::size_t n = x_train.size(), m = train ? n - 1 : n;
  auto [keys, values] = train ? training_keys_values(x_train, y_train, true)
                              : query_keys_values(x_train, y_train, queries.size());
  const Tn q = reshape(repeat_interleave(queries, m), {-1, static_cast<long>(m)});
  return {q - keys, values};
}

// f = sum_j alpha_ij v_ij with the pooling's values (offsets laid out like the values).
Tn predict(const Pooling& p, const Layout& l, const Tn& x_train, bool train, Tn* weights) {
  Tn values = l.values;
  if (p.value_offsets) {
    const Tn& b = p.params[1];
    values = values + (train ? training_keys_values(x_train, b, true).second
                             : query_keys_values(x_train, b, l.d.shape()[0]).second);
  }
  const Tn alpha = p.weights(l.d, p.params);
  if (weights) *weights = alpha;
  return sum(alpha * values, {1});
}

struct Outcome {
  std::vector<double> losses, fit;
  double test_mse = 0;
  xt::xarray<double> attention;  // (n_query, n_train)
};

Outcome train_and_test(Pooling& p, const Options& o, const ChapterData& data) {
  const Tn x_train(xt::adapt(data.x_train)), y_train(xt::adapt(data.y_train));
  const Tn x_query(xt::adapt(data.x_query));
  const Layout tr = layout(x_train, y_train, x_train, true);
  SGD<double> sgd(p.params, o.lr);
  Outcome r;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    sgd.zero_grad();
    const Tn loss = sum(square(predict(p, tr, x_train, true, nullptr) - y_train)) * 0.5;
    loss.backward();
    sgd.step();
    r.losses.push_back(loss.item());
  }
  NoGradGuard no_grad;
  const Tn loss = sum(square(predict(p, tr, x_train, true, nullptr) - y_train)) * 0.5;
  r.losses.push_back(loss.item());  // the loss at the learned parameters
  Tn alpha;
  const Tn f = predict(p, layout(x_train, y_train, x_query, false), x_train, false, &alpha);
  r.attention = alpha.value();
  for (std::size_t i = 0; i < data.x_query.size(); ++i) {
    r.fit.push_back(f.value()(i));
    r.test_mse += std::pow(f.value()(i) - data.y_truth[i], 2) / double(data.x_query.size());
  }
  return r;
}

std::string learned(const Pooling& p) {
  std::ostringstream os;
  os.precision(4);
  os << "w = " << p.params[0].value()(0);
  if (p.value_offsets) {
    const auto& b = p.params[1].value();
    os << ", |b| mean " << xt::mean(xt::abs(b))() << " max " << xt::amax(xt::abs(b))();
  }
  return os.str();
}

std::string matrix_block(const std::string& name, const xt::xarray<double>& m) {
  std::ostringstream os;
  os.precision(6);
  os << "$" << name << " << EOD\n";
  for (std::size_t r = 0; r < m.shape()[0]; ++r) {
    for (std::size_t c = 0; c < m.shape()[1]; ++c) os << (c ? " " : "") << m(r, c);
    os << "\n";
  }
  return os.str() + "EOD\n";
}

std::string gnuplot_script(const std::vector<Pooling>& ps, const std::vector<Outcome>& rs,
                           const ChapterData& data) {
  std::ostringstream gp;
  for (std::size_t k = 0; k < ps.size(); ++k)
    gp << matrix_block("p" + std::to_string(k), rs[k].attention);
  gp << "$fit << EOD\n";
  for (std::size_t i = 0; i < data.x_query.size(); ++i) {
    gp << data.x_query[i] << " " << data.y_truth[i];
    for (const auto& r : rs) gp << " " << r.fit[i];
    gp << "\n";
  }
  gp << "EOD\n$train << EOD\n";
  for (std::size_t i = 0; i < data.x_train.size(); ++i)
    gp << data.x_train[i] << " " << data.y_train[i] << "\n";
  gp << "EOD\nset terminal pngcairo size 1800,420 font ',10'\nset output 'poolings_attention.png'\n"
     << "set multiplot layout 1," << ps.size() << "\nset xlabel 'training inputs (sorted)'\n"
     << "set ylabel 'queries'\nset palette rgb 33,13,10\nunset colorbox\n"
     << "set xrange [-0.5:" << data.x_train.size() - 0.5
     << "]\nset yrange [-0.5:" << data.x_query.size() - 0.5 << "]\n";
  for (std::size_t k = 0; k < ps.size(); ++k)
    gp << "set title '" << ps[k].name << "'\nplot $p" << k << " matrix with image notitle\n";
  gp << "unset multiplot\nset terminal pngcairo size 900,520 font ',10'\n"
     << "set output 'poolings_fit.png'\nset xlabel 'x'\nset ylabel 'y'\nset key top right\n"
     << "set autoscale\n"
     << "unset title\nplot $train using 1:2 with points pt 7 ps 0.6 lc 'gray' title 'training', "
     << "$fit using 1:2 with lines lw 3 lc 'black' title 'truth'";
  for (std::size_t k = 0; k < ps.size(); ++k)
    gp << ", $fit using 1:" << k + 3 << " with lines lw 2 title '" << ps[k].name << "'";
  gp << "\n";
  return gp.str();
}

int run(const Options& o) {
  Rng rng(o.seed);
  const ChapterData data = make_chapter_data(rng, static_cast<std::size_t>(o.n_train));
  OutputTransaction out(o.out, {"poolings.csv", "losses.csv", "poolings.gp",
                                "poolings_attention.png", "poolings_fit.png"});  // checks --out
  std::vector<Pooling> ps = make_poolings(data.x_train.size());
  std::vector<Outcome> rs;
  std::printf(
      "chapter data, seed %llu: %d training points, leave-one-out; SGD lr %g, %d epochs, "
      "w_init 1\n\n%-16s %-42s %11s %9s  %s\n",
      static_cast<unsigned long long>(o.seed), o.n_train, o.lr, o.epochs, "pooling",
      "attention logits / weights", "final loss", "test MSE", "learned");
  std::ostringstream csv, losses;
  csv << "pooling,final_loss,test_mse,learned\n";
  for (auto& p : ps) {
    rs.push_back(train_and_test(p, o, data));
    const Outcome& r = rs.back();
    std::printf("%-16s %-42s %11.4f %9.4f  %s\n", p.name.c_str(), p.formula.c_str(),
                r.losses.back(), r.test_mse, learned(p).c_str());
    csv << p.name << "," << r.losses.back() << "," << r.test_mse << ",\"" << learned(p) << "\"\n";
  }
  losses << "epoch";
  for (const auto& p : ps) losses << "," << p.name;
  for (int e = 0; e <= o.epochs; ++e) {
    losses << "\n" << e;
    for (const auto& r : rs) losses << "," << r.losses[e];
  }
  out.write("poolings.csv", csv.str());
  out.write("losses.csv", losses.str() + "\n");
  out.write("poolings.gp", gnuplot_script(ps, rs, data));
  if (!o.no_plots)
    run_gnuplot_script(out, "poolings", "poolings.gp",
                       {"poolings_attention.png", "poolings_fit.png"});
  out.commit();
  std::cout << "\nwrote poolings.csv, losses.csv, poolings.gp"
            << (o.no_plots ? "" : ", poolings_attention.png, poolings_fit.png") << " in " << o.out
            << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Other parametric attention poolings on the chapter's data (d2l exercise)"};
  app.add_option("--epochs", o.epochs, "full-batch SGD steps per pooling")->capture_default_str();
  app.add_option("--lr", o.lr, "SGD learning rate (the same for every pooling)")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the chapter's data")->capture_default_str();
  app.add_option("--n-train", o.n_train, "training points")->capture_default_str();
  app.add_option("--out", o.out, "output directory")->capture_default_str();
  app.add_flag("--no-plots", o.no_plots, "skip the figures");
  return run_main(app, "poolings", argc, argv, [&] {
    require(o.epochs >= 0, "--epochs must be >= 0");
    require(o.n_train >= 3, "--n-train must be >= 3");
    require(std::isfinite(o.lr) && o.lr >= 0, "--lr must be a finite number >= 0");
    return run(o);
  });
}
