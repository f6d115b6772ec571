// A 2-64-64-3 MLP classifies a generated three-arm spiral: cross_entropy, Adam with a cosine
// learning-rate schedule, full batch. Prints the held-out accuracy and draws the decision regions
// with the training points (<out>/spiral_regions.png by gnuplot when installed; the script
// spiral_regions.gp either way). Exits 0 when the held-out accuracy is above 95%.
//   spiral_classifier [out directory, default out/spiral_classifier]
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "examples/outputs.h"
#include "tapegrad.h"

using namespace tapegrad;

constexpr long kColors[] = {0xe41a1c, 0x377eb8, 0x4daf4a};  // the classes' points; regions paler

// n points, point i on arm c = i mod 3 at radius r ~ U(0, 1), angle 2 pi c / 3 + 4 r + N(0, 0.2^2).
std::pair<Tensor<double>, IndexArray> spiral(std::size_t n, Rng& rng) {
  xt::xarray<double> x = xt::zeros<double>({n, std::size_t(2)});
  IndexArray y = xt::zeros<std::int64_t>({n});
  for (std::size_t i = 0; i < n; ++i) {
    const double r = rng.uniform(), angle = 2.0944 * double(i % 3) + 4.0 * r + 0.2 * rng.normal();
    x(i, 0) = r * std::cos(angle), x(i, 1) = r * std::sin(angle), y(i) = std::int64_t(i % 3);
  }
  return {Tensor<double>(x), y};
}

struct MLP {
  Linear<double> l1, l2, l3;
  explicit MLP(Rng& rng) : l1(2, 64, true, rng), l2(64, 64, true, rng), l3(64, 3, true, rng) {}
  Tensor<double> operator()(const Tensor<double>& x) const { return l3(relu(l2(relu(l1(x))))); }
  std::vector<Tensor<double>> parameters() const {
    std::vector<Tensor<double>> ps;
    for (const auto* l : {&l1, &l2, &l3})
      for (const auto& p : l->parameters()) ps.push_back(p);
    return ps;
  }
};

int main(int argc, char** argv) {
  if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {  // one optional argument: the directory
    std::cerr << "usage: spiral_classifier [OUT_DIR]  (default out/spiral_classifier)\n";
    return argc == 2 && std::string(argv[1]) == "--help" ? 0 : 2;
  }
  const std::string out = argc > 1 ? argv[1] : "out/spiral_classifier";
  std::error_code ec;  // the destination, checked before any training
  std::filesystem::create_directories(out, ec);
  if (ec) {
    std::cerr << "spiral_classifier: error: cannot create " << out << ": " << ec.message() << "\n";
    return 2;
  }
  Rng rng(0);
  const auto [x, y] = spiral(500, rng);            // training set
  const auto [x_test, y_test] = spiral(500, rng);  // held out
  MLP net(rng);
  Adam<double> opt(net.parameters(), 0.01);      // torch.optim.Adam(net.parameters(), lr=0.01)
  CosineAnnealingLR<double> schedule(opt, 200);  // lr 0.01 -> 0 over the 200 epochs
  for (int epoch = 1; epoch <= 200; ++epoch) {
    Tensor<double> loss = cross_entropy(net(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    schedule.step();
    if (epoch % 50 == 0) std::cout << "epoch " << epoch << ", loss " << loss.item() << "\n";
  }
  NoGradGuard no_grad;
  const double accuracy = xt::mean(xt::equal(argmax(net(x_test), 1), y_test))();
  std::cout << "held-out accuracy " << accuracy << " (500 points, chance 1/3)\n";

  // Decision regions: the predicted class on a 120 x 120 grid over [-1.2, 1.2]^2.
  const std::size_t g = 120;
  xt::xarray<double> grid = xt::zeros<double>({g * g, std::size_t(2)});
  for (std::size_t i = 0; i < g * g; ++i) {
    grid(i, 0) = -1.2 + 2.4 * double(i % g) / (g - 1);
    grid(i, 1) = -1.2 + 2.4 * double(i / g) / (g - 1);
  }
  const IndexArray regions = argmax(net(Tensor<double>(grid)), 1);
  std::ofstream gp(out + "/spiral_regions.gp");
  gp << "set terminal pngcairo size 640,600\nset output 'spiral_regions.png'\n$grid << EOD\n";
  for (std::size_t i = 0; i < g * g; ++i)
    gp << grid(i, 0) << " " << grid(i, 1) << " " << regions(i) << "\n";
  gp << "EOD\n$train << EOD\n";
  for (std::size_t i = 0; i < y.size(); ++i)
    gp << x.value()(i, 0) << " " << x.value()(i, 1) << " " << kColors[y(i)] << "\n";
  gp << "EOD\nset palette defined (0 '#fbb4ae', 1 '#b3cde3', 2 '#ccebc5')\nset cbrange [0:2]\n"
     << "unset colorbox\nset size ratio -1\nset title 'MLP decision regions, held-out accuracy "
     << accuracy << "'\nplot $grid using 1:2:3 with image notitle, "
     << "$train using 1:2:3 with points pt 7 ps 0.5 lc rgb variable notitle\n";
  gp.close();
  const bool gnuplot = on_path("gnuplot");  // run without a shell, in the output directory
  if (gnuplot && run_program(out, {"gnuplot", "spiral_regions.gp"}) != 0) {
    std::cerr << "spiral_classifier: error: gnuplot failed on " << out << "/spiral_regions.gp\n";
    return 1;
  }
  std::cout << "wrote " << out
            << (gnuplot ? "/spiral_regions.png\n" : "/spiral_regions.gp (no gnuplot)\n");
  return accuracy > 0.95 ? 0 : 1;
}
