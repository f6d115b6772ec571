// A fully connected layer, torch.nn.Linear: y = x W^T + b.
//
//   x (..., in) -> y (..., out);   weight W (out, in);   bias b (out,), optional
//
// Initialised as torch does (kaiming_uniform with a = sqrt(5), which works out to
// W, b ~ U(-1/sqrt(in), 1/sqrt(in))), from our own seeded generators so the numbers are the same on
// every platform: by default the thread's manual_seed generator (as torch.nn.Linear draws from
// torch.manual_seed's), or an Rng of the caller's. The leading axes of x are flattened into one for
// a 2-D matmul and restored after it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"

namespace tapegrad {

template <class T>
class Linear {
 public:
  // Draws the weights (row-major, then the bias) from this thread's manual_seed generator
  // (autograd/random.h): after manual_seed(s) the layer equals Linear(in, out, bias, Rng(s)).
  Linear(std::size_t in_features, std::size_t out_features, bool bias = true);
  // Draws the weights (row-major, then the bias) from rng.
  Linear(std::size_t in_features, std::size_t out_features, bool bias, Rng& rng);

  // x (..., in) -> (..., out). Throws std::invalid_argument naming Linear and the shapes when
  // x's last axis is not in_features.
  Tensor<T> forward(const Tensor<T>& x) const;
  Tensor<T> operator()(const Tensor<T>& x) const { return forward(x); }

  Tensor<T>& weight() { return weight_; }
  Tensor<T>& bias() { return bias_; }  // undefined (a null handle) when built without a bias
  bool has_bias() const { return bias_.defined(); }
  std::vector<Tensor<T>> parameters() const;
  std::size_t in_features() const { return in_; }
  std::size_t out_features() const { return out_; }

 private:
  // Fills weight and bias with bound * (2 u - 1), u = uniform() in [0, 1).
  void init(bool bias, const std::function<double()>& uniform);

  std::size_t in_, out_;
  Tensor<T> weight_, bias_;
};

}  // namespace tapegrad
