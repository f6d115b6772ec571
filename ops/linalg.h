// Matrix products: matmul (2-D, with torch's 1-D promotions) and bmm (batched).
#pragma once

#include "autograd/tensor.h"

namespace tapegrad {

// torch.matmul for 1-D and 2-D operands:
//   (n, m) @ (m, p) -> (n, p)     (n, m) @ (m,) -> (n,)     (m,) @ (m, p) -> (p,)     (m,) @ (m,)
//   -> ()
// A 1-D operand is promoted to a matrix (a row on the left, a column on the right) and the added
// axis is removed from the result, so the 1-D cases are the 2-D case between reshapes.
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b);

// torch.bmm: (b, n, m) x (b, m, p) -> (b, n, p), one matrix product per batch entry.
// The batch entries are independent and are split across OpenMP threads.
template <class T>
Tensor<T> bmm(const Tensor<T>& a, const Tensor<T>& b);

}  // namespace tapegrad
