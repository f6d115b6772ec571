"""PyTorch float64 reference numbers for models/attention.h and models/linear.h.

Run offline with the system PyTorch (tests never need Python):
    /usr/bin/python3 tests/reference/make_attention_reference.py
writes tests/reference/attention_reference.json next to this script.

masked_softmax, DotProductAttention and AdditiveAttention are d2l's ("Attention Scoring
Functions", PyTorch tab) with dropout left out. Each case stores its inputs, an upstream gradient G,
the forward output and d(sum(out * G))/d(every input and parameter).
"""
import json
import math
import os

import torch
from torch import nn

torch.manual_seed(0)
DT = torch.float64


def masked_softmax(X, valid_lens):
    """d2l's masked_softmax: entries past the valid length get -1e6 before the softmax."""

    def _sequence_mask(X, valid_len, value=0):
        maxlen = X.size(1)
        mask = torch.arange((maxlen), dtype=torch.float32, device=X.device)[None, :] < valid_len[:, None]
        X[~mask] = value
        return X

    if valid_lens is None:
        return nn.functional.softmax(X, dim=-1)
    shape = X.shape
    if valid_lens.dim() == 1:
        valid_lens = torch.repeat_interleave(valid_lens, shape[1])
    else:
        valid_lens = valid_lens.reshape(-1)
    X = _sequence_mask(X.reshape(-1, shape[-1]), valid_lens, value=-1e6)
    return nn.functional.softmax(X.reshape(shape), dim=-1)


def dot_product_attention(q, k, v, valid_lens):
    d = q.shape[-1]
    scores = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(d)
    w = masked_softmax(scores, valid_lens)
    return torch.bmm(w, v), w


def additive_attention(q, k, v, valid_lens, W_q, W_k, w_v):
    features = torch.tanh((q @ W_q.T).unsqueeze(2) + (k @ W_k.T).unsqueeze(1))
    scores = (features @ w_v.T).squeeze(-1)
    w = masked_softmax(scores, valid_lens)
    return torch.bmm(w, v), w


def rand(*shape):
    return torch.randn(*shape, dtype=DT, requires_grad=True)


def tolist(t):
    return t.detach().tolist()


def finish(case, inputs, out, extra=None):
    """Backpropagates sum(out * G) and stores inputs, G, out and every input's gradient."""
    G = torch.randn(out.shape, dtype=DT)
    (out * G).sum().backward()
    case["G"] = tolist(G)
    case["out"] = tolist(out)
    for name, t in inputs.items():
        case[name] = tolist(t)
        case["grad_" + name] = tolist(t.grad)
    if extra:
        case.update(extra)
    return case


def lens_tensor(lens):
    return None if lens is None else torch.tensor(lens)


def masked_softmax_cases():
    cases = []
    for lens in ([2, 0], [[1, 3], [0, 4]], [5, 4], None):
        x = rand(2, 2, 4)
        out = masked_softmax(x.clone(), lens_tensor(lens))
        cases.append(finish({"valid_lens": lens}, {"x": x}, out))
    return cases


def dot_cases():
    cases = []
    for lens, (b, nq, nk, d, dv) in (([2, 0], (2, 3, 4, 2, 3)), ([[1, 3, 0], [4, 2, 1]], (2, 3, 4, 5, 2)),
                                     (None, (1, 2, 3, 4, 1))):
        q, k, v = rand(b, nq, d), rand(b, nk, d), rand(b, nk, dv)
        out, w = dot_product_attention(q, k, v, lens_tensor(lens))
        cases.append(finish({"valid_lens": lens, "weights": tolist(w)}, {"q": q, "k": k, "v": v}, out))
    return cases


def additive_cases():
    cases = []
    for lens, (b, nq, nk, dq, dk, h, dv) in (([2, 0], (2, 3, 4, 3, 2, 5, 2)),
                                             ([[1, 0, 4], [3, 2, 2]], (2, 3, 4, 2, 2, 3, 3)),
                                             (None, (1, 2, 3, 1, 1, 4, 1))):
        q, k, v = rand(b, nq, dq), rand(b, nk, dk), rand(b, nk, dv)
        W_q, W_k, w_v = rand(h, dq), rand(h, dk), rand(1, h)
        out, w = additive_attention(q, k, v, lens_tensor(lens), W_q, W_k, w_v)
        inputs = {"q": q, "k": k, "v": v, "W_q": W_q, "W_k": W_k, "w_v": w_v}
        cases.append(finish({"valid_lens": lens, "weights": tolist(w)}, inputs, out))
    return cases


def linear_cases():
    cases = []
    for shape, out_f, bias in (((2, 3, 4), 3, True), ((5, 2), 1, False), ((3,), 2, True)):
        x = rand(*shape)
        W = rand(out_f, shape[-1])
        inputs = {"x": x, "W": W}
        b = None
        if bias:
            b = rand(out_f)
            inputs["b"] = b
        out = nn.functional.linear(x, W, b)
        cases.append(finish({"bias": bias}, inputs, out))
    return cases


def main():
    ref = {
        "generator": "tests/reference/make_attention_reference.py",
        "torch": torch.__version__,
        "masked_softmax": masked_softmax_cases(),
        "dot_product_attention": dot_cases(),
        "additive_attention": additive_cases(),
        "linear": linear_cases(),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attention_reference.json")
    with open(path, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
