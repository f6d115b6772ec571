#!/usr/bin/env python3
"""Writes blocks_reference.json and mha_reference.json: PyTorch's answers for the building blocks
of small training programs (the ops of ops/elementwise.h, ops/reduction.h, ops/indexing.h and
ops/loss.h beyond the chapter's, the optimisers of optim/ and models/multi_head_attention.h).

Run with the system Python that has torch (1.13):

    /usr/bin/python3 tests/reference/make_blocks_reference.py

The op cases have the form of make_reference.py's (inputs, args, output, grad_output, grads, all
float64; the upstream gradient is the same fixed non-uniform one), grouped by family:
    blocks_elementwise  sin, cos, clamp, minimum, maximum, where, the dtype cast `to`
    blocks_reduction    min over a dim
    blocks_indexing     narrow, slice, index_select, cat, stack
    blocks_loss         cross_entropy, nll_loss, binary_cross_entropy
Integer arguments (class targets, indices) are {"shape", "data"} in args. Cases without a gradient:
    blocks_index_results  argmax / argmin (integer outputs)
    blocks_compare        gt, lt, ge, le, eq, ne (boolean masks)
    optimizers            a small tanh MLP trained 100 steps by Adam / AdamW (torch.optim,
                          foreach=False) from fixed parameters: the parameters after every step
    schedules             StepLR and CosineAnnealingLR: the lr after each scheduler step
mha_reference.json holds d2l's MultiHeadAttention (bias-free W_q, W_k, W_v, W_o,
DotProductAttention over num_heads heads, valid lengths repeated per head) in eval mode: the
weights the script draws, the inputs, the output, an upstream gradient and the gradient of every
parameter and input, for the book's shapes (batch 2, 4 queries, 6 key-value pairs, valid lengths
[3, 2], num_hiddens 100, num_heads 5) and a small case with valid lengths per query.
"""

import json
import math
import pathlib

import torch
from torch import nn

F64 = torch.float64
torch.set_default_dtype(F64)
HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "blocks_reference.json"
MHA_OUT = HERE / "mha_reference.json"

X23 = [[0.5, -1.25, 2.0], [1.5, 0.75, -0.3]]
Y23 = [[-0.4, 0.9, 2.0], [2.2, 0.75, 0.6]]  # ties with X23 at (0, 2) and (1, 1)
V3 = [0.8, -1.25, 1.7]  # a tie with X23 at (0, 1)
X234 = [
    [[0.1, -0.3, 0.5, 1.2], [-0.7, 0.4, 2.0, -1.5], [0.9, 0.0, -0.2, 0.6]],
    [[1.1, -0.8, 0.3, -0.4], [0.2, 1.7, -1.0, 0.8], [-0.6, 0.5, 1.4, -1.2]],
]
X31 = [[0.6], [-1.3], [2.2]]
X14 = [[0.3, -0.9, 1.4, 0.2]]
TIES23 = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
TIES_MIN23 = [[1.0, -3.0, -3.0], [0.5, 0.0, 0.5]]
LOGITS43 = [[1.2, -0.5, 0.3], [0.1, 2.2, -1.3], [-0.7, 0.4, 0.9], [1.5, 1.4, -0.2]]
BIG_LOGITS = [[1e4, 0.0, -1e4], [-5000.0, 5000.0, 4999.0], [-1e4, -1e4 + 1.0, -1e4 - 2.0]]
PROBS34 = [[0.2, 0.7, 0.5, 0.95], [0.05, 0.4, 0.6, 0.33], [0.8, 0.1, 0.25, 0.5]]
TARGET_PROBS34 = [[0.0, 1.0, 0.5, 1.0], [0.25, 0.0, 1.0, 0.3], [1.0, 0.2, 0.0, 0.5]]


def upstream(shape):
    """The fixed upstream gradient of make_reference.py: ((7k + 3) mod 11 - 5.5) / 4."""
    n = math.prod(shape)
    k = torch.arange(n, dtype=F64)
    return (((7 * k + 3) % 11 - 5.5) / 4).reshape(shape)


FAMILIES = {}


def enc(x):
    x = x.detach()
    if x.dtype == torch.bool:
        return {"shape": list(x.shape), "data": x.reshape(-1).tolist()}
    if x.dtype == torch.int64:
        return {"shape": list(x.shape), "data": x.reshape(-1).tolist()}
    x = x.to(F64)
    data = [int(v) if v.is_integer() else v for v in x.reshape(-1).tolist()]
    return {"shape": list(x.shape), "data": data}


def ints(data):
    return enc(torch.tensor(data, dtype=torch.int64))


def case(family, name, op, inputs, fn, args=None):
    """inputs: list of (name, literal data, requires_grad); fn(*tensors) -> output tensor."""
    assert name.isidentifier(), name
    ts = [torch.tensor(d, dtype=F64, requires_grad=rg) for (_, d, rg) in inputs]
    out = fn(*ts)
    entry = {
        "op": op,
        "args": args or {},
        "inputs": [{"name": n, "requires_grad": rg, **enc(t)} for (n, _, rg), t in zip(inputs, ts)],
        "output": enc(out),
    }
    if out.requires_grad:
        g = upstream(out.shape)
        out.backward(g)
        entry["grad_output"] = enc(g)
        entry["grads"] = [enc(t.grad) if rg else None for (_, _, rg), t in zip(inputs, ts)]
    cases = FAMILIES.setdefault(family, {})
    assert name not in cases, name
    cases[name] = entry


# --- elementwise -----------------------------------------------------------------------------

E = "blocks_elementwise"
case(E, "sin", "sin", [("x", X234, True)], torch.sin)
case(E, "cos", "cos", [("x", X234, True)], torch.cos)
for name, lo, hi in [("clamp_both", -0.5, 0.9), ("clamp_min", -0.3, None), ("clamp_max", None, 0.5),
                     ("clamp_min_above_max", 1.0, -1.0), ("clamp_at_bounds", 0.4, 1.2)]:
    case(E, name, "clamp", [("x", X234, True)], lambda x: torch.clamp(x, lo, hi),
         {"min": lo, "max": hi})
for op, fn in [("minimum", torch.minimum), ("maximum", torch.maximum)]:
    case(E, f"{op}_same_shape_ties", op, [("a", X23, True), ("b", Y23, True)], fn)
    case(E, f"{op}_broadcast_row", op, [("a", X23, True), ("b", V3, True)], fn)
    case(E, f"{op}_broadcast_outer", op, [("a", X31, True), ("b", X14, True)], fn)
    case(E, f"{op}_0d", op, [("a", X23, True), ("b", 0.6, True)], fn)
    case(E, f"{op}_b_constant", op, [("a", X23, True), ("b", V3, False)], fn)

COND34 = [[True, False, True, True], [False, False, True, False], [True, True, False, True]]
COND4 = [False, True, True, False]
COND31 = [[True], [False], [True]]


def where_case(name, cond, a, b):
    c = torch.tensor(cond)
    case(E, name, "where", [("input", a, True), ("other", b, True)],
         lambda x, y: torch.where(c, x, y), {"condition": enc(c)})


where_case("where_same_shape", COND34, [r[:] for r in [[0.3, -1.2, 0.8, 2.1], [-0.5, 1.4, 0.0, -0.9],
                                                     [1.6, -0.2, 0.7, 0.4]]],
           [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]])
where_case("where_condition_broadcast", COND4, X14 * 3, [[0.5, -0.5, 1.5, -1.5]] * 3)
where_case("where_all_broadcast", COND31, X14, [[0.25], [0.5], [0.75]])
case(E, "where_scalar_other", "where_scalar_other", [("input", X14, True)],
     lambda x: torch.where(torch.tensor(COND31), x, torch.tensor(-2.5)),
     {"condition": enc(torch.tensor(COND31)), "scalar": -2.5})
case(E, "to_float32_and_back", "to_float32_and_back",
     [("x", [[0.1, 1.0 / 3.0, -2.7], [1e-3, 123.456, 0.5]], True)],
     lambda x: x.to(torch.float32).to(F64))

# --- reductions ------------------------------------------------------------------------------

R = "blocks_reduction"
for name, src, axis, keep in [("min_axis0", X234, 0, False), ("min_axis1", X234, 1, False),
                              ("min_axis_m1_keepdims", X234, -1, True),
                              ("min_ties_rows", TIES_MIN23, 1, False),
                              ("min_ties_columns_keepdims", TIES_MIN23, 0, True)]:
    case(R, name, "min", [("x", src, True)], lambda x: torch.min(x, axis, keepdim=keep).values,
         {"axis": axis, "keepdims": keep})

IR = "blocks_index_results"
for fn_name, src in [("argmax", TIES23), ("argmin", TIES_MIN23), ("argmax", X234), ("argmin", X234)]:
    t = torch.tensor(src)
    axes = range(-1, t.dim())
    for axis in axes:
        for keep in (False, True):
            name = f"{fn_name}_{t.dim()}d_axis{axis if axis >= 0 else 'm1'}{'_keepdims' if keep else ''}"
            out = getattr(torch, fn_name)(t, dim=axis, keepdim=keep)
            FAMILIES.setdefault(IR, {})[name] = {"op": fn_name, "input": enc(t),
                                                 "args": {"axis": axis, "keepdims": keep},
                                                 "output": enc(out)}
    FAMILIES[IR][f"{fn_name}_{t.dim()}d_flat"] = {"op": fn_name, "input": enc(t), "args": {},
                                                  "output": enc(getattr(torch, fn_name)(t))}

C = "blocks_compare"
for fn_name in ["gt", "lt", "ge", "le", "eq", "ne"]:
    fn = getattr(torch, fn_name)
    a, b = torch.tensor(X23), torch.tensor(V3)
    FAMILIES.setdefault(C, {})[f"{fn_name}_broadcast"] = {
        "op": fn_name, "a": enc(a), "b": enc(b), "output": enc(fn(a, b))}
    FAMILIES[C][f"{fn_name}_scalar"] = {"op": fn_name, "a": enc(a), "scalar": 0.75,
                                        "output": enc(fn(a, 0.75))}

# --- indexing --------------------------------------------------------------------------------

I = "blocks_indexing"
for name, dim, start, length in [("narrow_dim1", 1, 1, 2), ("narrow_negative_start", -1, -3, 2),
                                 ("narrow_dim0_empty", 0, 2, 0), ("narrow_whole", 2, 0, 4)]:
    case(I, name, "narrow", [("x", X234, True)], lambda x: torch.narrow(x, dim, start, length),
         {"dim": dim, "start": start, "length": length})
SLICE_MAX = 2**62
for name, dim, start, end, step in [("slice_dim2_step2", 2, 1, 4, 2), ("slice_negative_bounds", 1, -2, SLICE_MAX, 1),
                                    ("slice_end_past_axis", 0, 1, 10, 1), ("slice_step3", -1, 0, SLICE_MAX, 3),
                                    ("slice_empty", 1, 2, 1, 1)]:
    def fn(x, dim=dim, start=start, end=end, step=step):
        idx = [slice(None)] * x.dim()
        idx[dim] = slice(start, None if end == SLICE_MAX else end, step)
        return x[tuple(idx)]
    case(I, name, "slice", [("x", X234, True)], fn, {"dim": dim, "start": start, "end": end, "step": step})
for name, dim, index in [("index_select_repeats", 1, [2, 0, 2]), ("index_select_last_dim", -1, [3, 1]),
                         ("index_select_dim0", 0, [1, 1, 0]), ("index_select_empty", 2, [])]:
    idx = torch.tensor(index, dtype=torch.int64)
    case(I, name, "index_select", [("x", X234, True)], lambda x: torch.index_select(x, dim, idx),
         {"dim": dim, "index": enc(idx)})
case(I, "cat_dim1_three", "cat", [("a", X23, True), ("b", [[0.7], [-0.2]], True),
                                  ("c", [[1.1, 2.2], [3.3, 4.4]], True)],
     lambda a, b, c: torch.cat([a, b, c], 1), {"dim": 1})
case(I, "cat_dim0", "cat", [("a", X23, True), ("b", [V3], True)], lambda a, b: torch.cat([a, b], 0),
     {"dim": 0})
case(I, "cat_dim_m1_3d", "cat", [("a", X234, True), ("b", [[[0.5], [1.5], [2.5]], [[-0.5], [-1.5], [-2.5]]], True)],
     lambda a, b: torch.cat([a, b], -1), {"dim": -1})
case(I, "cat_one_constant", "cat", [("a", X23, False), ("b", Y23, True)],
     lambda a, b: torch.cat([a, b], 0), {"dim": 0})
case(I, "cat_same_tensor_twice", "cat_twice", [("a", X23, True)], lambda a: torch.cat([a, a], 1),
     {"dim": 1})
for dim in [0, 1, 2, -1]:
    case(I, f"stack_dim{dim if dim >= 0 else 'm1'}", "stack",
         [("a", X23, True), ("b", Y23, True), ("c", [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], True)],
         lambda a, b, c: torch.stack([a, b, c], dim), {"dim": dim})

# --- losses ----------------------------------------------------------------------------------

L = "blocks_loss"
F = nn.functional
T4 = [2, 0, 1, 2]
for reduction in ["none", "mean", "sum"]:
    case(L, f"cross_entropy_{reduction}", "cross_entropy", [("logits", LOGITS43, True)],
         lambda x: F.cross_entropy(x, torch.tensor(T4), reduction=reduction),
         {"target": ints(T4), "reduction": reduction, "ignore_index": -100})
    case(L, f"cross_entropy_ignore_index_{reduction}", "cross_entropy", [("logits", LOGITS43, True)],
         lambda x: F.cross_entropy(x, torch.tensor([2, 1, 1, 0]), reduction=reduction, ignore_index=1),
         {"target": ints([2, 1, 1, 0]), "reduction": reduction, "ignore_index": 1})
    case(L, f"nll_loss_{reduction}", "nll_loss", [("log_probs", LOGITS43, True)],
         lambda x: F.nll_loss(x, torch.tensor(T4), reduction=reduction),
         {"target": ints(T4), "reduction": reduction, "ignore_index": -100})
    case(L, f"binary_cross_entropy_{reduction}", "binary_cross_entropy",
         [("input", PROBS34, True), ("target", TARGET_PROBS34, True)],
         lambda x, t: F.binary_cross_entropy(x, t, reduction=reduction), {"reduction": reduction})
case(L, "cross_entropy_huge_logits", "cross_entropy", [("logits", BIG_LOGITS, True)],
     lambda x: F.cross_entropy(x, torch.tensor([2, 0, 1]), reduction="none"),
     {"target": ints([2, 0, 1]), "reduction": "none", "ignore_index": -100})
case(L, "cross_entropy_huge_logits_mean", "cross_entropy", [("logits", BIG_LOGITS, True)],
     lambda x: F.cross_entropy(x, torch.tensor([0, 1, 1])),
     {"target": ints([0, 1, 1]), "reduction": "mean", "ignore_index": -100})
T24 = [[0, 2, 1, 1], [2, 2, 0, 1]]
case(L, "cross_entropy_spatial", "cross_entropy", [("logits", X234, True)],
     lambda x: F.cross_entropy(x.permute(0, 1, 2), torch.tensor(T24)),
     {"target": ints(T24), "reduction": "mean", "ignore_index": -100})
case(L, "cross_entropy_one_sample", "cross_entropy", [("logits", [0.3, -1.1, 2.4, 0.0], True)],
     lambda x: F.cross_entropy(x, torch.tensor(2)),
     {"target": ints(2), "reduction": "mean", "ignore_index": -100})
case(L, "nll_loss_ignore_index_mean", "nll_loss", [("log_probs", LOGITS43, True)],
     lambda x: F.nll_loss(x, torch.tensor([0, 2, 0, 1]), ignore_index=0),
     {"target": ints([0, 2, 0, 1]), "reduction": "mean", "ignore_index": 0})
case(L, "binary_cross_entropy_at_0_and_1", "binary_cross_entropy",
     [("input", [0.0, 1.0, 0.5, 1.0, 0.0], True), ("target", [0.0, 1.0, 1.0, 0.0, 1.0], False)],
     lambda x, t: F.binary_cross_entropy(x, t, reduction="none"), {"reduction": "none"})

# --- optimisers ------------------------------------------------------------------------------


def mlp_problem():
    """A 3-5-1 tanh MLP on 8 fixed points: data and starting parameters, made by a seeded
    generator and stored, so the C++ test needs no generator of torch's."""
    g = torch.Generator().manual_seed(7)
    X = torch.randn(8, 3, generator=g)
    y = torch.sin(X.sum(1, keepdim=True))
    params = {"W1": 0.5 * torch.randn(5, 3, generator=g), "b1": 0.1 * torch.randn(5, generator=g),
              "W2": 0.5 * torch.randn(1, 5, generator=g), "b2": 0.1 * torch.randn(1, generator=g)}
    return X, y, params


def mlp_loss(X, y, p):
    h = torch.tanh(X @ p["W1"].T + p["b1"])
    return ((h @ p["W2"].T + p["b2"] - y) ** 2).mean()


OPTIMIZERS = [
    ("adam", "Adam", dict(lr=0.01), None),
    ("adam_weight_decay", "Adam", dict(lr=0.01, weight_decay=0.1), None),
    ("adam_amsgrad_betas_eps", "Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, amsgrad=True), None),
    ("adamw", "AdamW", dict(lr=0.01, weight_decay=0.1), None),
    ("adamw_amsgrad", "AdamW", dict(lr=0.01, amsgrad=True), None),
    ("adam_step_lr", "Adam", dict(lr=0.05), ("StepLR", dict(step_size=30, gamma=0.5))),
    ("adamw_cosine", "AdamW", dict(lr=0.05, weight_decay=0.05), ("CosineAnnealingLR", dict(T_max=100, eta_min=0.001))),
]


def optimizer_case(name, cls, kwargs, schedule, steps=100):
    X, y, start = mlp_problem()
    params = {k: v.clone().requires_grad_(True) for k, v in start.items()}
    opt = getattr(torch.optim, cls)(list(params.values()), foreach=False, **kwargs)
    sched = getattr(torch.optim.lr_scheduler, schedule[0])(opt, **schedule[1]) if schedule else None
    losses = []
    for _ in range(steps):
        loss = mlp_loss(X, y, params)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched:
            sched.step()
        losses.append(loss.item())
    args = dict(kwargs)
    if "betas" in args:
        args["betas"] = list(args["betas"])
    return {"optimizer": cls, "args": args,
            "schedule": {"name": schedule[0], **schedule[1]} if schedule else None,
            "steps": steps, "X": enc(X), "y": enc(y),
            "start": {k: enc(v) for k, v in start.items()},
            "final": {k: enc(v) for k, v in params.items()}, "losses": losses}


FAMILIES["optimizers"] = {name: optimizer_case(name, cls, kw, s) for name, cls, kw, s in OPTIMIZERS}


def schedule_case(cls, kwargs, epochs, lr=0.1):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = getattr(torch.optim.lr_scheduler, cls)(opt, **kwargs)
    lrs = []
    for _ in range(epochs):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    return {"scheduler": cls, "args": kwargs, "base_lr": lr, "lrs": lrs}


FAMILIES["schedules"] = {
    "step_lr": schedule_case("StepLR", dict(step_size=3, gamma=0.5), 12),
    "step_lr_default_gamma": schedule_case("StepLR", dict(step_size=2), 7),
    "cosine": schedule_case("CosineAnnealingLR", dict(T_max=10, eta_min=0.001), 25),
    "cosine_to_zero": schedule_case("CosineAnnealingLR", dict(T_max=7), 7, lr=0.3),
}

# --- multi-head attention --------------------------------------------------------------------


def masked_softmax(X, valid_lens):
    """d2l's masked_softmax (entries past the valid length get -1e6)."""
    if valid_lens is None:
        return F.softmax(X, dim=-1)
    shape = X.shape
    if valid_lens.dim() == 1:
        valid_lens = torch.repeat_interleave(valid_lens, shape[1])
    else:
        valid_lens = valid_lens.reshape(-1)
    X = X.reshape(-1, shape[-1])
    mask = torch.arange(X.shape[1])[None, :] < valid_lens[:, None]
    X = X.masked_fill(~mask, -1e6)
    return F.softmax(X.reshape(shape), dim=-1)


def transpose_qkv(X, num_heads):
    X = X.reshape(X.shape[0], X.shape[1], num_heads, -1)
    X = X.permute(0, 2, 1, 3)
    return X.reshape(-1, X.shape[2], X.shape[3])


def transpose_output(X, num_heads):
    X = X.reshape(-1, num_heads, X.shape[1], X.shape[2])
    X = X.permute(0, 2, 1, 3)
    return X.reshape(X.shape[0], X.shape[1], -1)


def multi_head_attention(queries, keys, values, valid_lens, W, num_heads):
    """d2l's MultiHeadAttention.forward with bias-free linear maps W["W_q"], ... (out, in)."""
    q = transpose_qkv(queries @ W["W_q"].T, num_heads)
    k = transpose_qkv(keys @ W["W_k"].T, num_heads)
    v = transpose_qkv(values @ W["W_v"].T, num_heads)
    if valid_lens is not None:
        valid_lens = torch.repeat_interleave(valid_lens, repeats=num_heads, dim=0)
    d = q.shape[-1]
    weights = masked_softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(d), valid_lens)
    out = transpose_output(torch.bmm(weights, v), num_heads)
    return out @ W["W_o"].T, weights


def rounded(t, digits=6):
    """Weights and inputs with few digits: the JSON stays small and both sides read the same
    doubles."""
    return torch.tensor([float(f"{v:.{digits}g}") for v in t.reshape(-1).tolist()]).reshape(t.shape)


def mha_case(b, nq, nk, dq, dk, dv, hiddens, heads, lens, seed):
    g = torch.Generator().manual_seed(seed)
    sizes = {"W_q": dq, "W_k": dk, "W_v": dv}
    W = {n: rounded(torch.randn(hiddens, s, generator=g) / math.sqrt(s)) for n, s in sizes.items()}
    W["W_o"] = rounded(torch.randn(hiddens, hiddens, generator=g) / math.sqrt(hiddens))
    inputs = {"queries": rounded(torch.randn(b, nq, dq, generator=g)),
              "keys": rounded(torch.randn(b, nk, dk, generator=g)),
              "values": rounded(torch.randn(b, nk, dv, generator=g))}
    leaves = {**W, **inputs}
    for t in leaves.values():
        t.requires_grad_(True)
    out, weights = multi_head_attention(inputs["queries"], inputs["keys"], inputs["values"],
                                        torch.tensor(lens), W, heads)
    G = rounded(torch.randn(out.shape, generator=g))
    (out * G).sum().backward()
    return {"num_hiddens": hiddens, "num_heads": heads, "valid_lens": ints(lens),
            "sizes": {"query": dq, "key": dk, "value": dv},
            "tensors": {n: enc(t) for n, t in leaves.items()}, "G": enc(G), "output": enc(out),
            "attention_weights": enc(weights),
            "grads": {n: enc(t.grad) for n, t in leaves.items()}}


def dump(path, families, generator_note):
    lines = ["{"]
    meta = {"generator": "tests/reference/make_blocks_reference.py", "torch": torch.__version__,
            "dtype": "float64", "what": generator_note}
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
    json.loads(path.read_text())


if __name__ == "__main__":
    dump(OUT, FAMILIES, "ops, optimisers and schedules")
    mha = {"multi_head_attention": {
        "book": mha_case(2, 4, 6, 100, 100, 100, 100, 5, [3, 2], seed=11),
        "small_per_query_lens": mha_case(2, 3, 5, 4, 3, 2, 6, 3, [[1, 5, 0], [2, 3, 4]], seed=12),
    }}
    dump(MHA_OUT, mha, "d2l MultiHeadAttention")
    total = sum(len(c) for c in FAMILIES.values())
    print(f"wrote {OUT} ({total} cases in {len(FAMILIES)} families) and {MHA_OUT}")
