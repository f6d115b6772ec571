// Index arguments and results are integer arrays, as torch's int64 tensors: the class targets of
// cross_entropy and nll_loss, index_select's indices, what argmax and argmin return. They are
// constants: no gradient flows through an index.
#pragma once

#include <cstdint>

#include <xtensor/xarray.hpp>

namespace tapegrad {

using IndexArray = xt::xarray<std::int64_t>;

}  // namespace tapegrad
