// Multi-head self-attention learns to follow pointers. Token i of a sequence of 8 holds a value
// v_i in 0..5 and a pointer p_i in 0..7 (and its position, one-hot); the answer at position i is
// v_{p_i}, which only attention to position p_i can give (chance: 1/6). One MultiHeadAttention
// layer (2 heads) then a Linear to the 6 classes, cross_entropy, AdamW with a step schedule.
// Prints the held-out accuracy and draws one sequence's attention weights with its pointers
// (<out>/pointer_attention.png, by gnuplot when installed). Exits 0 above 90% accuracy.
//   pointer_attention [out directory, default out/pointer_attention]
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "examples/outputs.h"
#include "tapegrad.h"

using namespace tapegrad;

constexpr std::size_t n = 8, V = 6, F = V + 2 * n;  // features: value, pointer, position one-hots

// b random sequences: features (b, n, F), answers (b * n,), pointers (b, n).
struct Batch {
  Tensor<double> x;
  IndexArray y, pointer;
};
Batch batch(std::size_t b, Rng& rng) {
  xt::xarray<double> x = xt::zeros<double>({b, n, F});
  IndexArray y = xt::zeros<std::int64_t>({b * n}), pointer = xt::zeros<std::int64_t>({b, n});
  for (std::size_t s = 0; s < b; ++s) {
    std::vector<std::size_t> value(n), p(n);
    for (std::size_t i = 0; i < n; ++i) value[i] = std::size_t(rng.uniform() * V);
    for (std::size_t i = 0; i < n; ++i) p[i] = std::size_t(rng.uniform() * n);
    for (std::size_t i = 0; i < n; ++i) {
      x(s, i, value[i]) = x(s, i, V + p[i]) = x(s, i, V + n + i) = 1.0;
      y(s * n + i) = std::int64_t(value[p[i]]), pointer(s, i) = std::int64_t(p[i]);
    }
  }
  return {Tensor<double>(x), y, pointer};
}

int main(int argc, char** argv) {
  if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {  // one optional argument: the directory
    std::cerr << "usage: pointer_attention [OUT_DIR]  (default out/pointer_attention)\n";
    return argc == 2 && std::string(argv[1]) == "--help" ? 0 : 2;
  }
  const std::string out = argc > 1 ? argv[1] : "out/pointer_attention";
  std::error_code ec;  // the destination, checked before any training
  std::filesystem::create_directories(out, ec);
  if (ec) {
    std::cerr << "pointer_attention: error: cannot create " << out << ": " << ec.message() << "\n";
    return 2;
  }
  Rng rng(0);
  MultiHeadAttention<double> attention(F, F, F, 16, 2, /*dropout=*/0.0, rng);
  Linear<double> classify(16, V, true, rng);
  std::vector<Tensor<double>> params = attention.parameters();
  params.push_back(classify.weight()), params.push_back(classify.bias());
  AdamW<double> opt(params, 0.02);
  StepLR<double> schedule(opt, /*step_size=*/100, /*gamma=*/0.3);
  auto logits = [&](const Tensor<double>& x) {
    return reshape(classify(attention.forward(x, x, x)), {-1, long(V)});
  };
  for (int step = 1; step <= 200; ++step) {
    const Batch b = batch(24, rng);
    Tensor<double> loss = cross_entropy(logits(b.x), b.y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    schedule.step();
    if (step % 50 == 0) std::cout << "step " << step << ", loss " << loss.item() << "\n";
  }
  NoGradGuard no_grad;
  const Batch test = batch(500, rng);
  const double accuracy = xt::mean(xt::equal(argmax(logits(test.x), 1), test.y))();
  std::cout << "held-out accuracy " << accuracy << " (4000 positions, chance " << 1.0 / V << ")\n";

  // The heads' attention weights of the first held-out sequence, averaged, with its pointers.
  const auto& w =
      attention.attention_weights().value();  // (500 * 2, n, n): sequence 0 is rows 0, 1
  std::ofstream gp(out + "/pointer_attention.gp");
  gp << "set terminal pngcairo size 560,500\nset output 'pointer_attention.png'\n$w << EOD\n";
  for (std::size_t i = 0; i < n; ++i, gp << "\n")
    for (std::size_t j = 0; j < n; ++j) gp << (w(0, i, j) + w(1, i, j)) / 2 << " ";
  gp << "EOD\n$pointer << EOD\n";
  for (std::size_t i = 0; i < n; ++i) gp << test.pointer(0, i) << " " << i << "\n";
  gp << "EOD\nset xlabel 'key position'\nset ylabel 'query position'\nset yrange [-0.5:7.5] "
        "reverse\n"
     << "set xrange [-0.5:7.5]\nset palette grey negative\nset title 'attention weights (mean of 2 "
     << "heads); circles: the pointers'\nplot $w matrix with image notitle, $pointer with points "
     << "pt 6 ps 2.5 lc 'red' notitle\n";
  gp.close();
  const bool gnuplot = on_path("gnuplot");  // run without a shell, in the output directory
  if (gnuplot && run_program(out, {"gnuplot", "pointer_attention.gp"}) != 0) {
    std::cerr << "pointer_attention: error: gnuplot failed on " << out << "/pointer_attention.gp\n";
    return 1;
  }
  std::cout << "wrote " << out
            << (gnuplot ? "/pointer_attention.png\n" : "/pointer_attention.gp (no gnuplot)\n");
  return accuracy > 0.9 ? 0 : 1;
}
