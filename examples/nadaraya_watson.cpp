// nadaraya_watson: the d2l chapter "Attention Pooling: Nadaraya-Watson Kernel Regression", end to
// end.
//
//   nadaraya_watson [--train FILE] [--query FILE] [--epochs N] [--lr X] [--w-init X] [--seed N]
//                   [--kernel gaussian|boxcar|constant|epanechikov] [--sigma X]
//                   [--dtype float32|float64] [--threads N] [--out DIR] [--no-plots] [--keep-self]
//                   [--impl fused|composed] [--n-train N] [--save PATH] [--resume PATH]
//
// With no arguments: the chapter's data (seeded), average pooling, nonparametric pooling, 5 epochs
// of leave-one-out training of NWKernelRegression with SGD (lr 0.5), predictions, CSV/JSON outputs
// and figures in out/. Exit status: 0 on success, 2 on bad input (one line on stderr, nothing
// written), 1 on an unexpected internal error.
#include <malloc.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <tuple>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "examples/csv.h"
#include "examples/plots.h"
#include "models/checkpoint.h"
#include "models/data.h"
#include "models/nadaraya_watson.h"
#include "models/sgd.h"
#include "tapegrad.h"

namespace fs = std::filesystem;
using namespace tapegrad;

namespace {

struct Options {
  std::string train, query, out = "out", kernel = "gaussian", dtype = "float32", impl = "fused";
  std::string save, resume;  // checkpoint paths
  int epochs = 5;
  int n_train = 50;  // size of the generated chapter data
  double lr = 0.5, sigma = 1.0;
  std::optional<double> w_init;
  std::uint64_t seed = 0;
  int threads = 0;  // 0: OpenMP's default
  bool no_plots = false, keep_self = false;
};

// Bad user input that is not about a file line (a flag value, the output directory).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Data {
  std::vector<double> x_train, y_train, x_query, y_truth;  // y_truth empty unless chapter data
  std::string source;
};

Data load_data(const Options& o, Rng& rng) {
  Data d;
  if (o.train.empty()) {
    ChapterData c = make_chapter_data(rng, static_cast<std::size_t>(o.n_train));
    d.x_train = c.x_train, d.y_train = c.y_train, d.x_query = c.x_query, d.y_truth = c.y_truth;
    d.source = "the chapter's data (seed " + std::to_string(o.seed) + ")";
  } else {
    Columns c = read_csv(o.train, {"x", "y"});
    if (c[0].size() < 2)
      throw InputError(o.train, 0,
                       "needs at least 2 training rows, found " + std::to_string(c[0].size()));
    d.x_train = c[0], d.y_train = c[1];
    d.source = o.train;
    // Default queries: 50 points evenly spread over the training inputs' range.
    const auto [lo, hi] = std::minmax_element(d.x_train.begin(), d.x_train.end());
    d.x_query.clear();
    for (int i = 0; i < 50; ++i) d.x_query.push_back(*lo + (*hi - *lo) * i / 49.0);
  }
  if (!o.query.empty()) {
    Columns q = read_csv(o.query, {"x"});
    if (q[0].empty()) throw InputError(o.query, 0, "no query rows");
    d.x_query = q[0];
    if (o.train.empty())  // the truth is known for the chapter's generator only
      for (double& x : d.y_truth = q[0]) x = chapter_truth(x);
  }
  return d;
}

// Writes through a temporary file and a rename, so a reader never sees half a file.
void write_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw UsageError("cannot write " + tmp.string());
    f << text;
    f.flush();
    if (!f) throw UsageError("error writing " + tmp.string());
  }
  fs::rename(tmp, path);
}

template <class T>
std::vector<double> to_vec(const xt::xarray<T>& a) {
  return std::vector<double>(a.begin(), a.end());
}

template <class T>
Matrix to_matrix(const xt::xarray<T>& a) {
  Matrix m(a.shape()[0], std::vector<double>(a.shape()[1]));
  for (std::size_t r = 0; r < m.size(); ++r)
    for (std::size_t c = 0; c < m[r].size(); ++c) m[r][c] = a(r, c);
  return m;
}

std::string matrix_csv(const Matrix& m, int precision) {
  std::ostringstream os;
  os.precision(precision);
  for (const auto& row : m) {
    for (std::size_t c = 0; c < row.size(); ++c) os << (c ? "," : "") << row[c];
    os << "\n";
  }
  return os.str();
}

double mse(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / double(a.size());
}

// Draws the figures with gnuplot; returns false (with a warning) when gnuplot is not available.
bool draw_figures(const fs::path& dir, const PlotData& pd) {
  write_atomic(dir / "plots.gp", gnuplot_script(pd, false));
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::cerr << "nadaraya_watson: warning: gnuplot not found, figures skipped "
                 "(apt-get install gnuplot-nox); the script is in "
              << (dir / "plots.gp").string() << "\n";
    return false;
  }
  std::string quoted = dir.string(), q = "'";
  for (char c : quoted) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  q += "'";
  FILE* gp = popen(("cd " + q + " && gnuplot").c_str(), "w");
  if (!gp) throw std::runtime_error("cannot start gnuplot");
  const std::string script = gnuplot_script(pd, true);
  std::fwrite(script.data(), 1, script.size(), gp);
  const int status = pclose(gp);
  for (const auto& f : figure_files()) {
    const fs::path tmp = dir / (f + ".tmp");
    if (!fs::exists(tmp)) continue;
    if (status == 0)
      fs::rename(tmp, dir / f);
    else
      fs::remove(tmp);
  }
  if (status != 0)
    throw std::runtime_error("gnuplot failed (status " + std::to_string(status) + ")");
  return true;
}

template <class T>
int run(const Options& o) {
  Rng rng(o.seed);
  const Kernel kernel = kernel_from_string(o.kernel);
  Data d = load_data(o, rng);
  // The chapter initialises w with torch.rand(1): U(0, 1), drawn after the data.
  double w_init = o.w_init ? *o.w_init : rng.uniform();

  // The model and its optimizer; --resume overwrites w and the SGD state from a checkpoint, which
  // is validated completely before anything else happens (a bad one exits 2 with nothing written).
  NWKernelRegression<T> net(static_cast<T>(w_init));
  SGD<T> trainer(net.parameters(), static_cast<T>(o.lr));
  NamedTensors<T> named = {{"w", net.w()}};
  int epochs_before = 0;
  if (!o.resume.empty()) {
    const nlohmann::json meta = load_checkpoint(o.resume, named, trainer);
    w_init = static_cast<double>(net.w().value()(0));
    epochs_before = meta.value("epochs_done", 0);
    std::cout << "resumed from " << o.resume << ": w = " << w_init << " after " << epochs_before
              << " epochs\n";
  }

  // Check the output directory before any work, so bad --out fails fast and writes nothing.
  const fs::path dir(o.out);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir))
    throw UsageError("--out " + o.out + ": not a directory and cannot be created");

  auto as_tensor = [](const std::vector<double>& v) {
    xt::xarray<T> a = xt::zeros<T>({v.size()});
    for (std::size_t i = 0; i < v.size(); ++i) a(i) = static_cast<T>(v[i]);
    return Tensor<T>(std::move(a));
  };
  const Tensor<T> x_train = as_tensor(d.x_train), y_train = as_tensor(d.y_train);
  const Tensor<T> x_query = as_tensor(d.x_query);
  const std::size_t n = d.x_train.size(), nq = d.x_query.size();
  const bool truth = !d.y_truth.empty();

  std::cout << "data: " << d.source << ": " << n << " training points, " << nq << " queries; dtype "
            << o.dtype << ", " << omp_get_max_threads() << " thread(s)\n";

  // 1. Average pooling: f(x) = mean(y).
  Tensor<T> avg = average_pooling(y_train, nq);
  std::cout << "average pooling: f(x) = " << avg.value()(0) << " for every query";
  if (truth) std::cout << "; MSE vs truth " << mse(to_vec(avg.value()), d.y_truth);
  std::cout << "\n";

  // 2. Nonparametric attention pooling with the chosen kernel.
  std::ostringstream kl;
  kl << to_string(kernel) << ", sigma = " << o.sigma;
  NWResult<T> np = nadaraya_watson(x_train, y_train, x_query, kernel, static_cast<T>(o.sigma));
  std::cout << "nonparametric pooling (" << kl.str() << ")";
  if (truth) std::cout << ": MSE vs truth " << mse(to_vec(np.y_hat.value()), d.y_truth);
  std::cout << "\n";
  if (np.empty_rows)
    std::cout << "note: " << np.empty_rows << " queries had no training input within the "
              << to_string(kernel)
              << " kernel's support; each took its nearest training input's value\n";

  // 3. Parametric attention pooling: train w with SGD on leave-one-out keys/values.
  //    composed: the chapter's formulation with (n, n - 1) key/value matrices and the engine's ops;
  //    fused:    the same function through one fused op (ops/attention.h), O(n) memory.
  const bool fused = o.impl == "fused", loo = !o.keep_self;
  Tensor<T> keys, values;
  if (!fused) std::tie(keys, values) = training_keys_values(x_train, y_train, loo);
  std::cout << "parametric pooling: training w (w_init " << w_init << ", " << o.impl << " ops) on "
            << (loo ? "leave-one-out pairs (" : "all pairs (") << n << " x " << (loo ? n - 1 : n)
            << "), lr " << o.lr << ", " << o.epochs << " epochs\n";
  std::vector<double> losses;
  const auto t0 = std::chrono::steady_clock::now();
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    trainer.zero_grad();
    Tensor<T> f =
        fused ? net.forward_fused(x_train, x_train, y_train, loo) : net(x_train, keys, values);
    // L = 1/2 sum_i (f(x_i) - y_i)^2: the chapter's MSELoss(reduction='none') / 2, summed.
    Tensor<T> l = sum(mse_loss(f, y_train, "none") * T(0.5));
    l.backward();
    trainer.step();
    losses.push_back(static_cast<double>(l.item()));
    std::printf("epoch %d, loss %.6f\n", epochs_before + epoch + 1, losses.back());
  }
  const double train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double w = static_cast<double>(net.w().value()(0));
  std::cout << "learned w = " << w << "\n";
  if (!std::isfinite(w))
    throw UsageError("training diverged (w is not finite); try a smaller --lr or --w-init");

  // Predictions with every training pair as keys, as the chapter does after training.
  NoGradGuard no_grad;
  Tensor<T> par;
  xt::xarray<T> par_attention;
  if (fused) {
    par = net.forward_fused(x_query, x_train, y_train, false);
    par_attention =
        nw_attention_weights(x_query.value(), x_train.value(), static_cast<T>(w), false);
  } else {
    auto [qkeys, qvalues] = query_keys_values(x_train, y_train, nq);
    par = net(x_query, qkeys, qvalues);
    par_attention = net.attention_weights().value();
  }
  if (truth)
    std::cout << "parametric pooling: MSE vs truth " << mse(to_vec(par.value()), d.y_truth) << "\n";

  // 4. Outputs.
  const int prec = std::is_same_v<T, float> ? 9 : 17;
  std::ostringstream pred;
  pred.precision(prec);
  pred << "x,average,nonparametric,parametric\n";
  for (std::size_t i = 0; i < nq; ++i)
    pred << d.x_query[i] << "," << avg.value()(i) << "," << np.y_hat.value()(i) << ","
         << par.value()(i) << "\n";

  PlotData pd;
  pd.x_train = d.x_train, pd.y_train = d.y_train, pd.x_query = d.x_query, pd.y_truth = d.y_truth;
  pd.average = to_vec(avg.value()), pd.nonparametric = to_vec(np.y_hat.value());
  pd.parametric = to_vec(par.value());
  pd.attention_nonparametric = to_matrix(np.weights.value());
  pd.attention_parametric = to_matrix(par_attention);
  pd.kernel_label = kl.str();
  pd.loss = losses;
  for (double s : {0.1, 0.2, 0.5, 1.0}) {
    NWResult<T> r = nadaraya_watson(x_train, y_train, x_query, Kernel::Gaussian, static_cast<T>(s));
    pd.widths.push_back({s, to_vec(r.y_hat.value()), to_matrix(r.weights.value())});
  }

  nlohmann::json j;
  j["w_init"] = w_init;
  j["w"] = w;
  j["loss"] = losses;
  j["lr"] = o.lr;
  j["epochs"] = o.epochs;
  j["kernel"] = to_string(kernel);
  j["sigma"] = o.sigma;
  j["dtype"] = o.dtype;
  j["n_train"] = n;
  j["n_query"] = nq;
  j["train_seconds"] = train_seconds;
  j["seed"] = o.seed;
  j["leave_one_out"] = !o.keep_self;
  j["threads"] = omp_get_max_threads();
  j["impl"] = o.impl;
  j["data"] = d.source;
  j["epochs_before"] = epochs_before;

  if (!o.save.empty()) {
    save_checkpoint(
        o.save, named, trainer,
        {{"epochs_done", epochs_before + o.epochs}, {"dtype", o.dtype}, {"seed", o.seed}});
    std::cout << "saved checkpoint " << o.save << "\n";
  }

  write_atomic(dir / "predictions.csv", pred.str());
  write_atomic(dir / "attention_nonparametric.csv", matrix_csv(pd.attention_nonparametric, prec));
  write_atomic(dir / "attention_parametric.csv", matrix_csv(pd.attention_parametric, prec));
  write_atomic(dir / "training.json", j.dump(2) + "\n");
  std::cout << "wrote " << (dir / "predictions.csv").string() << ", attention_*.csv, training.json";
  if (!o.no_plots && draw_figures(dir, pd))
    std::cout << ", plots.gp and " << figure_files().size() << " figures";
  std::cout << " in " << dir.string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Keep freed memory in the heap instead of returning it to the kernel: every training step frees
  // and reallocates arrays of the same sizes, and on virtual machines the page faults of re-mapping
  // them cost more than the arithmetic (14x for --impl composed at n = 4000; docs/performance.md).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  Options o;
  CLI::App app{"Nadaraya-Watson kernel regression as attention pooling (d2l), on tapegrad"};
  app.add_option("--train", o.train, "training CSV with header x,y (default: the chapter's data)");
  app.add_option("--query", o.query, "query CSV with header x (default: 0, 0.1, ..., 4.9)");
  app.add_option("--n-train", o.n_train, "training points to generate when there is no --train")
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "training epochs (full-batch SGD steps)")
      ->capture_default_str();
  app.add_option("--lr", o.lr, "SGD learning rate")->capture_default_str();
  app.add_option("--w-init", o.w_init, "initial w (default: U(0,1) drawn with the seed)");
  app.add_option("--seed", o.seed, "random seed for the data and w_init")->capture_default_str();
  app.add_option("--kernel", o.kernel, "nonparametric kernel: gaussian|boxcar|constant|epanechikov")
      ->capture_default_str();
  app.add_option("--sigma", o.sigma, "kernel width")->capture_default_str();
  app.add_option("--dtype", o.dtype, "float32|float64")->capture_default_str();
  app.add_option("--threads", o.threads, "OpenMP threads (0: default)")->capture_default_str();
  app.add_option("--out", o.out, "output directory")->capture_default_str();
  app.add_option("--impl", o.impl, "parametric model's ops: fused|composed")->capture_default_str();
  app.add_flag("--no-plots", o.no_plots, "skip the figures");
  app.add_option("--save", o.save,
                 "write w and the optimizer state to this checkpoint after training");
  app.add_option("--resume", o.resume,
                 "start from this checkpoint (--epochs counts the new epochs)");
  app.add_flag("--keep-self", o.keep_self,
               "train with each example's own pair among the keys (the chapter leaves it out)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "nadaraya_watson: error: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    if (o.epochs < 0) throw UsageError("--epochs must be >= 0");
    if (o.n_train < 2) throw UsageError("--n-train must be >= 2");
    if (!std::isfinite(o.lr) || o.lr < 0) throw UsageError("--lr must be a finite number >= 0");
    if (!std::isfinite(o.sigma) || o.sigma <= 0)
      throw UsageError("--sigma must be a positive number");
    if (o.w_init && !std::isfinite(*o.w_init)) throw UsageError("--w-init must be finite");
    if (o.threads < 0) throw UsageError("--threads must be >= 0");
    kernel_from_string(o.kernel);  // rejects unknown names before any work
    if (o.dtype != "float32" && o.dtype != "float64")
      throw UsageError("--dtype must be float32 or float64, got '" + o.dtype + "'");
    if (o.impl != "fused" && o.impl != "composed")
      throw UsageError("--impl must be fused or composed, got '" + o.impl + "'");
    if (o.threads > 0) omp_set_num_threads(o.threads);
    return o.dtype == "float64" ? run<double>(o) : run<float>(o);
  } catch (const CheckpointError& e) {
    std::cerr << "nadaraya_watson: error: " << e.what() << "\n";
    return 2;
  } catch (const InputError& e) {
    std::cerr << "nadaraya_watson: error: " << e.message() << "\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "nadaraya_watson: error: " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "nadaraya_watson: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "nadaraya_watson: internal error: " << e.what() << "\n";
    return 1;
  }
}
