// Matrix products: matmul (torch.matmul: 1-D promotions, 2-D, and N-D with broadcast batch
// dimensions) and bmm (batched).
#pragma once

#include "autograd/tensor.h"

namespace tapegrad {

// torch.matmul:
//   (n, m) @ (m, p) -> (n, p)     (n, m) @ (m,) -> (n,)     (m,) @ (m, p) -> (p,)     (m,) @ (m,) -> ()
//   (..., n, m) @ (..., m, p) -> (..., n, p), the batch dimensions "..." broadcast against each
//   other (so matmul(q, transpose(k, -2, -1)) is attention's scores for (b, n, d) or (b, h, n, d)).
// A 1-D operand is promoted to a matrix (a row on the left, a column on the right) and the added
// axis is removed from the result, so the 1-D cases are the 2-D case between reshapes; the N-D
// case is bmm between reshapes, after broadcasting the batch dimensions.
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b);

// torch.bmm: (b, n, m) x (b, m, p) -> (b, n, p), one matrix product per batch entry.
// The batch entries are independent and are split across OpenMP threads.
template <class T>
Tensor<T> bmm(const Tensor<T>& a, const Tensor<T>& b);

}  // namespace tapegrad
