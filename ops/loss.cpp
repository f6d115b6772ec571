#include "ops/loss.h"

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/reduction.h"

namespace tapegrad {

template <class T>
Tensor<T> mse_loss(const Tensor<T>& pred, const Tensor<T>& target, const std::string& reduction) {
  check_defined("mse_loss", pred);
  check_defined("mse_loss", target);
  if (pred.shape() != target.shape())
    throw std::invalid_argument("mse_loss: pred " + describe(pred) + " and target " +
                                describe(target) + " differ in shape");
  if (reduction != "none" && reduction != "mean" && reduction != "sum")
    throw std::invalid_argument(
        "mse_loss: reduction must be \"none\", \"mean\" or \"sum\", got \"" + reduction + "\"");
  if (reduction == "mean" && pred.size() == 0)  // torch returns NaN; we say why instead
    throw std::invalid_argument("mse_loss: reduction \"mean\" of empty tensors of shape " +
                                shape_str(pred.shape()));
  Tensor<T> sq = square(sub(pred, target));
  if (reduction == "none") return sq;
  if (reduction == "sum") return sum(sq);
  return mean(sq);
}

template Tensor<float> mse_loss(const Tensor<float>&, const Tensor<float>&, const std::string&);
template Tensor<double> mse_loss(const Tensor<double>&, const Tensor<double>&, const std::string&);

}  // namespace tapegrad
