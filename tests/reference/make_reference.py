#!/usr/bin/env python3
"""Writes ops_reference.json (and ops_reference_large.json): PyTorch's answers for the op tests.

Run with the system Python that has torch (1.13):

    /usr/bin/python3 tests/reference/make_reference.py

Every case runs one op in float64 on the fixed inputs written below, then calls
out.backward(grad_output) with a fixed, non-uniform upstream gradient (see `upstream`), and stores
    inputs       name, shape, row-major data, requires_grad
    args         the op's non-tensor arguments (axes, reps, mask, ...)
    output       the forward result
    grad_output  the upstream gradient used
    grads        torch's d(sum(output * grad_output)) / d(input) per input (null if not required)
grouped by op family (the C++ test file that reads them). The C++ tests (tests/ops/*.cpp) read the
JSON and never need Python; re-run this script only when adding or changing a case.

Inputs are literal numbers, except the two bmm cases big enough to take the multithreaded and the
BLAS paths: those hold thousands of elements, so they are made by a small integer formula
(`int_grid`) and stored literally in ops_reference_large.json (ops_reference.json has a stub
naming that file). Their values are small integers, so every product and sum is exact in float32
as well as float64.
"""

import json
import math
import pathlib

import torch

F64 = torch.float64
torch.set_default_dtype(F64)  # also for torch.ones / torch.arange below
OUT = pathlib.Path(__file__).resolve().parent / "ops_reference.json"
LARGE_OUT = OUT.with_name("ops_reference_large.json")

# --- literal inputs --------------------------------------------------------------------------

X23 = [[0.5, -1.25, 2.0], [1.5, 0.75, -0.3]]
Y23 = [[-0.4, 0.9, 1.1], [2.2, -1.7, 0.6]]
V3 = [0.8, -1.1, 1.7]
W3 = [1.6, -0.9, 2.5]  # away from 0: a divisor
POS23 = [[0.5, 1.25, 2.0], [3.5, 0.75, 0.3]]  # > 0: sqrt, log, fractional powers
ZERO23 = [[0.0, -1.25, 2.0], [1.5, 0.0, -0.3]]  # abs / relu at 0: torch's convention is slope 0
X413 = [[[0.2, -0.5, 1.0]], [[1.3, 0.4, -0.8]], [[-1.1, 0.7, 0.25]], [[0.9, -0.2, 1.6]]]
X21 = [[1.5], [-0.75]]
X213 = [[[0.3, -0.6, 1.2]], [[0.9, 1.5, -0.4]]]
S0 = 0.7  # a 0-d tensor
X234 = [
    [[0.1, -0.3, 0.5, 1.2], [-0.7, 0.4, 2.0, -1.5], [0.9, 0.0, -0.2, 0.6]],
    [[1.1, -0.8, 0.3, -0.4], [0.2, 1.7, -1.0, 0.8], [-0.6, 0.5, 1.4, -1.2]],
]
X34 = [[0.3, -1.2, 0.8, 2.1], [-0.5, 1.4, 0.0, -0.9], [1.6, -0.2, 0.7, 0.4]]
MASK34 = [
    [True, False, True, True],
    [False, False, True, False],
    [True, True, False, True],
]
MASK4 = [False, True, True, False]
X31 = [[0.6], [-1.3], [2.2]]
B34 = [[0.2, -0.7, 1.1, 0.5], [1.3, 0.4, -0.6, -1.0], [-0.8, 0.9, 0.3, 1.5]]
B245 = [
    [[0.3, -0.2, 0.8, 1.1, -0.5], [0.6, 0.9, -1.3, 0.2, 0.4],
     [-0.7, 0.1, 0.5, -0.9, 1.2], [1.0, -0.4, 0.7, 0.3, -0.6]],
    [[-0.1, 0.5, 0.9, -1.2, 0.8], [0.4, -0.3, 0.2, 0.7, -1.1],
     [1.5, 0.6, -0.8, 0.1, 0.3], [-0.5, 1.2, 0.4, -0.6, 0.9]],
]
TIES23 = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
TIES22 = [[1.0, 5.0], [1.0, 2.0]]
PRED34 = [[0.5, 1.2, -0.3, 2.0], [1.1, -0.7, 0.4, 0.9], [-1.5, 0.2, 0.8, 1.3]]
TARGET34 = [[0.0, 1.0, 0.5, 1.5], [1.4, -0.2, 0.4, 0.1], [-1.0, 0.7, 1.1, 0.6]]


def int_grid(shape, mul, add, mod):
    """Element k (row-major) is ((k * mul + add) % mod) - mod // 2: small integers, no pattern
    along any single axis that would hide a transposed index."""
    n = math.prod(shape)
    k = torch.arange(n, dtype=torch.int64)
    return (((k * mul + add) % mod) - mod // 2).to(F64).reshape(shape).tolist()


def upstream(shape):
    """The fixed upstream gradient: ((7k + 3) mod 11 - 5.5) / 4 for element k. Non-uniform, never
    zero, and every value is a multiple of 1/8, so it is exact in float32 too."""
    n = math.prod(shape)
    k = torch.arange(n, dtype=F64)
    return (((7 * k + 3) % 11 - 5.5) / 4).reshape(shape)


# --- recording -------------------------------------------------------------------------------

FAMILIES = {}
LARGE = {}


def enc(x):
    x = x.detach().to(F64)
    # Whole numbers are written as integers ("3", not "3.0"): it keeps the large cases small.
    data = [int(v) if v.is_integer() else v for v in x.reshape(-1).tolist()]
    return {"shape": list(x.shape), "data": data}


def case(family, name, op, inputs, fn, args=None, large=False):
    """inputs: list of (name, literal data, requires_grad); fn(*tensors) -> output tensor.
    A `large` case is stored in LARGE_OUT, with a stub in OUT pointing there: every test process
    reads OUT to list the cases, and only the tests that need the bulky data parse LARGE_OUT."""
    assert name.isidentifier(), name  # becomes part of a GoogleTest name
    ts = [torch.tensor(d, dtype=F64, requires_grad=rg) for (_, d, rg) in inputs]
    out = fn(*ts)
    entry = {
        "op": op,
        "args": args or {},
        "inputs": [
            {"name": n, "requires_grad": rg, **enc(t)} for (n, _, rg), t in zip(inputs, ts)
        ],
        "output": enc(out),
    }
    if any(rg for (_, _, rg) in inputs):
        g = upstream(out.shape)
        out.backward(g)
        entry["grad_output"] = enc(g)
        entry["grads"] = [enc(t.grad) if rg else None for (_, _, rg), t in zip(inputs, ts)]
    family_cases = FAMILIES.setdefault(family, {})
    assert name not in family_cases, name
    if large:
        LARGE.setdefault(family, {})[name] = entry
        entry = {"op": op, "args": entry["args"], "external": LARGE_OUT.name}
    family_cases[name] = entry


# --- elementwise -----------------------------------------------------------------------------

E = "elementwise"
case(E, "add_same_shape", "add", [("a", X23, True), ("b", Y23, True)], torch.add)
case(E, "add_broadcast_row", "add", [("a", X23, True), ("b", V3, True)], torch.add)
case(E, "add_0d", "add", [("a", X23, True), ("b", S0, True)], torch.add)
case(E, "sub_broadcast_row", "sub", [("a", X23, True), ("b", V3, True)], torch.sub)
case(E, "sub_broadcast_3d", "sub", [("a", X413, True), ("b", X21, True)], torch.sub)
case(E, "mul_broadcast_3d", "mul", [("a", X413, True), ("b", X21, True)], torch.mul)
case(E, "mul_0d_left", "mul", [("a", S0, True), ("b", X23, True)], torch.mul)
case(E, "div_broadcast_row", "div", [("a", X23, True), ("b", W3, True)], torch.div)
case(E, "div_broadcast_3d", "div", [("a", X21, True), ("b", X413, True)], torch.div)

# Scalar operands, on either side; each is the C++ operator of the same shape (x + s, s + x, ...).
for op, fn in [
    ("scalar_add", lambda x: x + 2.5),
    ("scalar_radd", lambda x: 2.5 + x),
    ("scalar_sub", lambda x: x - 2.5),
    ("scalar_rsub", lambda x: 2.5 - x),
    ("scalar_mul", lambda x: x * 2.5),
    ("scalar_rmul", lambda x: 2.5 * x),
    ("scalar_div", lambda x: x / 2.5),
    ("scalar_rdiv", lambda x: 2.5 / x),
]:
    src = POS23 if op == "scalar_rdiv" else X23
    case(E, op, op, [("x", src, True)], fn, {"scalar": 2.5})

case(E, "neg", "neg", [("x", X23, True)], torch.neg)
case(E, "pow_3", "pow", [("x", X23, True)], lambda x: torch.pow(x, 3.0), {"p": 3.0})
case(E, "pow_2", "pow", [("x", X23, True)], lambda x: torch.pow(x, 2.0), {"p": 2.0})
case(E, "pow_half", "pow", [("x", POS23, True)], lambda x: torch.pow(x, 0.5), {"p": 0.5})
case(E, "pow_neg", "pow", [("x", POS23, True)], lambda x: torch.pow(x, -1.5), {"p": -1.5})
case(E, "pow_0", "pow", [("x", X23, True)], lambda x: torch.pow(x, 0.0), {"p": 0.0})
case(E, "square", "square", [("x", X23, True)], torch.square)
case(E, "sqrt", "sqrt", [("x", POS23, True)], torch.sqrt)
case(E, "exp", "exp", [("x", X23, True)], torch.exp)
case(E, "log", "log", [("x", POS23, True)], torch.log)
case(E, "abs", "abs", [("x", X23, True)], torch.abs)
case(E, "abs_at_zero", "abs", [("x", ZERO23, True)], torch.abs)
case(E, "relu", "relu", [("x", X23, True)], torch.relu)
case(E, "relu_at_zero", "relu", [("x", ZERO23, True)], torch.relu)
case(E, "tanh", "tanh", [("x", X234, True)], torch.tanh)
case(E, "sigmoid", "sigmoid", [("x", X234, True)], torch.sigmoid)
case(E, "sigmoid_far_tails", "sigmoid", [("x", [-40.0, -5.0, 0.0, 5.0, 40.0], True)], torch.sigmoid)

# --- reductions ------------------------------------------------------------------------------

R = "reduction"
case(R, "sum_all", "sum", [("x", X234, True)], torch.sum)
case(R, "sum_all_0d", "sum", [("x", S0, True)], torch.sum)
for name, axes, keep in [
    ("sum_axis1", [1], False),
    ("sum_axis_m1_keepdims", [-1], True),
    ("sum_axes_0_2", [0, 2], False),
    ("sum_axes_m3_m1_keepdims", [-3, -1], True),
    ("sum_axes_all_listed", [0, 1, 2], False),
]:
    case(R, name, "sum", [("x", X234, True)], lambda x: torch.sum(x, axes, keepdim=keep),
         {"axes": axes, "keepdims": keep})
case(R, "mean_all", "mean", [("x", X234, True)], torch.mean)
for name, axes, keep in [
    ("mean_axis1", [1], False),
    ("mean_axis_m1_keepdims", [-1], True),
    ("mean_axes_0_2", [0, 2], False),
    ("mean_axes_m2_keepdims", [-2], True),
]:
    case(R, name, "mean", [("x", X234, True)], lambda x: torch.mean(x, axes, keepdim=keep),
         {"axes": axes, "keepdims": keep})
for name, src, axis, keep in [
    ("max_axis0", X234, 0, False),
    ("max_axis1", X234, 1, False),
    ("max_axis_m1_keepdims", X234, -1, True),
    ("max_ties_rows", TIES23, 1, False),  # torch routes the gradient to the first maximum
    ("max_ties_columns_keepdims", TIES22, 0, True),
]:
    case(R, name, "max", [("x", src, True)], lambda x: torch.max(x, axis, keepdim=keep).values,
         {"axis": axis, "keepdims": keep})

# --- shape -----------------------------------------------------------------------------------

S = "shape"
for name, shape in [
    ("reshape_4_m1", [4, -1]),
    ("reshape_m1", [-1]),
    ("reshape_3_m1_2", [3, -1, 2]),
    ("reshape_6_4", [6, 4]),
]:
    case(S, name, "reshape", [("x", X234, True)], lambda x: torch.reshape(x, shape),
         {"shape": shape})
case(S, "reshape_0d_to_1x1", "reshape", [("x", S0, True)], lambda x: torch.reshape(x, [1, 1]),
     {"shape": [1, 1]})
case(S, "flatten", "flatten", [("x", X234, True)], torch.flatten)
for name, src, axis in [
    ("unsqueeze_0", X23, 0),
    ("unsqueeze_1", X23, 1),
    ("unsqueeze_m1", X23, -1),
    ("unsqueeze_0d", S0, 0),
]:
    case(S, name, "unsqueeze", [("x", src, True)], lambda x: torch.unsqueeze(x, axis),
         {"axis": axis})
case(S, "squeeze_axis1", "squeeze", [("x", X213, True)], lambda x: torch.squeeze(x, 1),
     {"axis": 1})
case(S, "squeeze_axis_m1", "squeeze", [("x", X31, True)], lambda x: torch.squeeze(x, -1),
     {"axis": -1})
case(S, "squeeze_all", "squeeze", [("x", [[[[0.4], [-1.2]]]], True)], torch.squeeze)
for name, src, a0, a1 in [
    ("transpose_2d", X23, 0, 1),
    ("transpose_0_2", X234, 0, 2),
    ("transpose_m1_m2", X234, -1, -2),
]:
    case(S, name, "transpose", [("x", src, True)], lambda x: torch.transpose(x, a0, a1),
         {"axis0": a0, "axis1": a1})
for name, dims in [
    ("permute_2_0_1", [2, 0, 1]),
    ("permute_1_2_0", [1, 2, 0]),
    ("permute_negative", [-1, 0, -2]),
]:
    case(S, name, "permute", [("x", X234, True)], lambda x: x.permute(*dims), {"dims": dims})

# --- repeat ----------------------------------------------------------------------------------

P = "repeat"
for name, src, reps in [
    ("repeat_1d_to_2d", V3, [2, 2]),  # more reps than dims: leading axes are added
    ("repeat_2d", X23, [2, 1]),
    ("repeat_2d_both", X23, [3, 2]),
    ("repeat_more_reps_than_dims", X23, [2, 1, 3]),
    ("repeat_3d", X213, [1, 2, 1]),
    ("repeat_0d", S0, [3]),
    ("repeat_ones", X23, [1, 1]),
]:
    case(P, name, "repeat", [("x", src, True)], lambda x: x.repeat(*reps), {"reps": reps})
case(P, "repeat_interleave_flat", "repeat_interleave", [("x", X23, True)],
     lambda x: torch.repeat_interleave(x, 2), {"repeats": 2})
case(P, "repeat_interleave_0d", "repeat_interleave", [("x", S0, True)],
     lambda x: torch.repeat_interleave(x, 3), {"repeats": 3})
for name, src, reps, axis in [
    ("repeat_interleave_axis0", X23, 2, 0),
    ("repeat_interleave_axis1", X23, 3, 1),
    ("repeat_interleave_axis_m1", X234, 2, -1),
    ("repeat_interleave_1d", V3, 2, 0),
]:
    case(P, name, "repeat_interleave", [("x", src, True)],
         lambda x: torch.repeat_interleave(x, reps, dim=axis), {"repeats": reps, "axis": axis})

# --- indexing --------------------------------------------------------------------------------

I = "indexing"


def mask_arg(m):
    t = torch.tensor(m, dtype=torch.bool)
    return {"shape": list(t.shape), "data": t.reshape(-1).tolist()}


case(I, "masked_select_same_shape", "masked_select", [("x", X34, True)],
     lambda x: torch.masked_select(x, torch.tensor(MASK34)), {"mask": mask_arg(MASK34)})
case(I, "masked_select_mask_broadcast", "masked_select", [("x", X34, True)],
     lambda x: torch.masked_select(x, torch.tensor(MASK4)), {"mask": mask_arg(MASK4)})
case(I, "masked_select_input_broadcast", "masked_select", [("x", X31, True)],
     lambda x: torch.masked_select(x, torch.tensor(MASK34)), {"mask": mask_arg(MASK34)})
case(I, "masked_fill_same_shape", "masked_fill", [("x", X34, True)],
     lambda x: x.masked_fill(torch.tensor(MASK34), -2.5), {"mask": mask_arg(MASK34), "value": -2.5})
case(I, "masked_fill_mask_broadcast", "masked_fill", [("x", X34, True)],
     lambda x: x.masked_fill(torch.tensor(MASK4), 7.0), {"mask": mask_arg(MASK4), "value": 7.0})
case(I, "masked_fill_input_broadcast", "masked_fill", [("x", X31, True)],
     lambda x: torch.masked_fill(x, torch.tensor(MASK34), 0.0), {"mask": mask_arg(MASK34), "value": 0.0})


def leave_one_out_keys(x):
    # The chapter (Nadaraya-Watson): X_tile = x.repeat((n, 1)); keys = X_tile[~eye].reshape(n, -1)
    n = x.shape[0]
    tile = x.repeat((n, 1))
    return tile[~torch.eye(n, dtype=torch.bool)].reshape((n, n - 1))


case(I, "leave_one_out_keys_4", "leave_one_out_keys", [("x", [0.5, 1.3, 2.1, 3.4], True)],
     leave_one_out_keys)
case(I, "leave_one_out_keys_5", "leave_one_out_keys",
     [("x", [-0.2, 0.9, 1.6, 2.4, 3.1], True)], leave_one_out_keys)
for n, m in [(3, 3), (2, 4), (4, 2)]:
    case(I, f"eye_{n}_{m}", "eye", [], lambda: torch.eye(n, m, dtype=F64), {"n": n, "m": m})

# --- softmax ---------------------------------------------------------------------------------

X = "softmax"
for fn_name, fn in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
    for axis in [0, 1, 2, -1]:
        name = f"{fn_name}_axis{axis}" if axis >= 0 else f"{fn_name}_axis_m{-axis}"
        case(X, name, fn_name, [("x", X234, True)], lambda x: fn(x, axis), {"axis": axis})
    # Naive exp(x) / sum(exp(x)) gives inf / inf = NaN on the first and 0 / 0 on the second.
    case(X, f"{fn_name}_stable_large", fn_name, [("x", [1000.0, 0.0], True)],
         lambda x: fn(x, 0), {"axis": 0})
    case(X, f"{fn_name}_stable_negative", fn_name, [("x", [-1000.0, -1001.0], True)],
         lambda x: fn(x, 0), {"axis": 0})
    case(X, f"{fn_name}_stable_rows", fn_name,
         [("x", [[1000.0, 0.0, -1000.0], [-1000.0, -1001.0, -1002.0]], True)], lambda x: fn(x, 1),
         {"axis": 1})

# --- linalg ----------------------------------------------------------------------------------

L = "linalg"
case(L, "matmul_2d", "matmul", [("a", X23, True), ("b", B34, True)], torch.matmul)
case(L, "matmul_vec_mat", "matmul", [("a", V3, True), ("b", B34, True)], torch.matmul)
case(L, "matmul_mat_vec", "matmul", [("a", X23, True), ("b", W3, True)], torch.matmul)
case(L, "matmul_vec_vec", "matmul", [("a", V3, True), ("b", W3, True)], torch.matmul)
case(L, "matmul_only_b_requires_grad", "matmul", [("a", X23, False), ("b", B34, True)],
     torch.matmul)
case(L, "bmm_small", "bmm", [("a", X234, True), ("b", B245, True)], torch.bmm)
# The book's shape check and its weighted-average check.
case(L, "bmm_book_ones", "bmm",
     [("a", torch.ones(2, 1, 4).tolist(), True), ("b", torch.ones(2, 4, 6).tolist(), True)],
     torch.bmm)
case(L, "bmm_book_weights", "bmm",
     [("weights", (0.1 * torch.ones(2, 10)).unsqueeze(1).tolist(), True),
      ("values", torch.arange(20.0).reshape(2, 10, 1).tolist(), True)], torch.bmm)
# 3 * 16 * 32 * 24 multiply-adds: the small-loop path, split across OpenMP threads.
case(L, "bmm_medium_threaded", "bmm",
     [("a", int_grid([3, 16, 24], 37, 11, 17), True),
      ("b", int_grid([3, 24, 32], 53, 5, 19), True)], torch.bmm, large=True)
# 50 * 70 * 80 = 280000 >= 64^3 multiply-adds per batch entry, forward and both backward
# products: the OpenBLAS path.
case(L, "bmm_large_blas", "bmm",
     [("a", int_grid([2, 50, 80], 37, 11, 17), True),
      ("b", int_grid([2, 80, 70], 53, 5, 19), True)], torch.bmm, large=True)

# --- loss ------------------------------------------------------------------------------------

M = "loss"
for reduction in ["none", "mean", "sum"]:
    case(M, f"mse_loss_{reduction}", "mse_loss", [("pred", PRED34, True), ("target", TARGET34, True)],
         lambda p, t: torch.nn.functional.mse_loss(p, t, reduction=reduction),
         {"reduction": reduction})
case(M, "mse_loss_target_constant", "mse_loss",
     [("pred", PRED34, True), ("target", TARGET34, False)],
     lambda p, t: torch.nn.functional.mse_loss(p, t), {"reduction": "mean"})


# --- output ----------------------------------------------------------------------------------


def dump(path, families):
    """One case per line: the file stays diffable without putting every number on its own line."""
    lines = ["{"]
    meta = {"generator": "tests/reference/make_reference.py", "torch": torch.__version__,
            "dtype": "float64"}
    lines.append(f' "meta": {json.dumps(meta)},')
    families = list(families.items())
    for fi, (family, cases) in enumerate(families):
        lines.append(f' "{family}": {{')
        items = list(cases.items())
        for ci, (name, entry) in enumerate(items):
            sep = "," if ci + 1 < len(items) else ""
            lines.append(f'  "{name}": {json.dumps(entry, separators=(",", ":"))}{sep}')
        lines.append(" }" + ("," if fi + 1 < len(families) else ""))
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
    json.loads(path.read_text())  # the file must be valid JSON


if __name__ == "__main__":
    dump(OUT, FAMILIES)
    dump(LARGE_OUT, LARGE)
    total = sum(len(c) for c in FAMILIES.values())
    large = sum(len(c) for c in LARGE.values())
    print(f"wrote {OUT} ({total} cases in {len(FAMILIES)} families; {large} of them in "
          f"{LARGE_OUT.name})")
