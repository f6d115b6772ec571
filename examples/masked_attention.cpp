// Masked scaled dot-product attention on a batch, checked with gradcheck.
//   scores  = q k^T / sqrt(d)                     (b, n, m)
//   masked  = scores where key j < valid_len[b], else -1e6 (composed: s * mask + (1 - mask) * -1e6)
//   weights = softmax(masked, axis 2);  out = weights v                      (b, n, dv)
// Exits 0 when gradcheck passes for q, k and v and the masked keys get no weight.
#include <cmath>
#include <iostream>
#include <vector>

#include "tapegrad.h"

using namespace tapegrad;

// mask (b, 1, m): 1 for the first valid_len[i] keys of batch entry i, else 0.
Tensor<double> key_mask(const std::vector<std::size_t>& valid_len, std::size_t m) {
  Tensor<double> mask = zeros({valid_len.size(), 1, m});
  for (std::size_t i = 0; i < valid_len.size(); ++i)
    for (std::size_t j = 0; j < valid_len[i]; ++j) mask.mutable_value()(i, 0, j) = 1.0;
  return mask;
}

// q (b, n, d), k (b, m, d), v (b, m, dv) -> (attention weights (b, n, m), output (b, n, dv))
std::pair<Tensor<double>, Tensor<double>> attention(const Tensor<double>& q,
                                                    const Tensor<double>& k,
                                                    const Tensor<double>& v,
                                                    const Tensor<double>& mask) {
  const double d = static_cast<double>(q.shape()[2]);
  Tensor<double> scores = bmm(q, transpose(k, 1, 2)) / std::sqrt(d);
  Tensor<double> masked = scores * mask + (1.0 - mask) * -1e6;
  Tensor<double> weights = softmax(masked, 2);
  return {weights, bmm(weights, v)};
}

int main() {
  manual_seed(0);
  Tensor<double> q = randn({2, 3, 4}, true), k = randn({2, 5, 4}, true), v = randn({2, 5, 2}, true);
  const Tensor<double> mask = key_mask({2, 4}, 5);  // batch 0 sees 2 keys, batch 1 sees 4

  auto [weights, out] = attention(q, k, v, mask);
  std::cout << "weights " << weights << "\nout " << out << "\n";
  const double leaked = xt::amax(weights.value() * (1.0 - mask.value()))();
  std::cout << "largest weight on a masked key: " << leaked << "\n";

  GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor<double>>& in) {
        return attention(in[0], in[1], in[2], mask).second;
      },
      {q, k, v});
  std::cout << r << "\n";
  return r.ok && leaked < 1e-12 ? 0 : 1;
}
