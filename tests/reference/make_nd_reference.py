"""PyTorch float64 reference numbers for models/nadaraya_watson.h (vectors and classes) and logsumexp.

Run offline with the system PyTorch (tests never need Python):
    /usr/bin/python3 tests/reference/make_nd_reference.py
writes tests/reference/nd_reference.json next to this script.

Every formula here is written the direct way, from the definitions, not the way the C++
composes it: the cross-entropy is -log of the summed class probability (naive, fine at these
moderate logits), the distances are explicit sums of squares. Each case stores its inputs, an
upstream gradient G (for a scalar loss, none), the outputs, and d(sum(out * G))/d(every input).
Arrays are {"shape": [...], "data": [row-major values]}; a -inf in a logsumexp input is listed by
its flat index in "minus_inf" (JSON has no -inf) and stored as 0 in "data".
"""
import json
import os

import torch

torch.manual_seed(0)
DT = torch.float64
KERNELS = ("gaussian", "boxcar", "constant", "epanechikov")


def arr(t):
    t = t.detach()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def rand(*shape, lo=-1.0, hi=1.0):
    return (lo + (hi - lo) * torch.rand(*shape, dtype=DT)).requires_grad_(True)


def finish(case, inputs, outputs, G=None):
    """Backpropagates sum(out * G) (or out itself when it is a scalar) and stores everything."""
    out = outputs["out"]
    if G is None and out.dim() > 0:
        G = torch.randn(out.shape, dtype=DT)
    (out * G if G is not None else out).sum().backward()
    if G is not None:
        case["G"] = arr(G)
    for name, t in outputs.items():
        case[name] = arr(t)
    for name, t in inputs.items():
        case[name] = arr(t)
        if t.requires_grad:
            case["grad_" + name] = arr(t.grad)
    return case


def weighted_sq_distances(q, keys, w):
    """s_ij = sum_k ((q_ik - keys_ijk) w_k)^2; keys (m, d) are shared by every query. The C++ test
    checks nw_logits against it: -2 nw_logits plus the shift nw_logits drops is s."""
    k = keys if keys.dim() == 3 else keys.unsqueeze(0).expand(q.shape[0], -1, -1)
    return (((q.unsqueeze(1) - k) * w) ** 2).sum(-1)


def leave_one_out(t):
    """(n, c) -> (n, n - 1, c): row i holds every row of t but row i (the chapter's X_tile[~eye])."""
    n = t.shape[0]
    tile = t.unsqueeze(0).expand(n, n, t.shape[1])
    keep = ~torch.eye(n, dtype=torch.bool)
    return tile[keep].reshape(n, n - 1, t.shape[1])


def logsumexp_cases():
    cases = []
    for shape, axis in (((3, 4), 1), ((2, 3, 4), 0), ((2, 3, 4), -1), ((5,), 0), ((2, 3, 4), 1)):
        x = rand(*shape, lo=-3.0, hi=3.0)
        out = torch.logsumexp(x, axis)
        G = torch.randn(out.shape, dtype=DT)  # also for the 0-d result of a 1-D input
        cases.append(finish({"axis": axis}, {"x": x}, {"out": out}, G))
    # Logits far from 0: the naive log(sum(exp)) overflows (row 0) or underflows (row 1).
    x = torch.tensor([[1000.0, 999.0, 0.0], [-1000.0, -1001.5, -999.0]], dtype=DT, requires_grad=True)
    cases.append(finish({"axis": 1}, {"x": x}, {"out": torch.logsumexp(x, 1)}))
    # Masked entries (-inf): they add nothing and get gradient 0; row 2 has one finite entry.
    v = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 0.25, -0.5, 3.0], [0.0, 0.0, -2.0, 0.0]], dtype=DT)
    minus_inf = [1, 3, 6, 8, 9, 11]
    flat = v.reshape(-1).clone()
    flat[minus_inf] = float("-inf")
    x = flat.reshape(3, 4).requires_grad_(True)
    case = finish({"axis": 1, "minus_inf": minus_inf}, {"x": x}, {"out": torch.logsumexp(x, 1)})
    case["x"] = arr(v)  # the finite placeholders; the test writes -inf at minus_inf
    cases.append(case)
    return cases


def distance_cases():
    cases = []
    n, m = 3, 4
    for d in (1, 2, 3):
        for per_query in (True, False):
            for widths in ("shared", "per-coordinate"):
                q = rand(n, d)
                keys = rand(n, m, d) if per_query else rand(m, d)
                w = rand(1 if widths == "shared" else d, lo=0.5, hi=1.5)
                s = weighted_sq_distances(q, keys, w)
                cases.append(finish({"d": d, "widths": widths}, {"queries": q, "keys": keys, "w": w},
                                    {"out": s}))
    return cases


def forward_cases():
    """NWKernelRegression.forward: queries (n, d), keys (n, m, d), values (n, m, C)."""
    cases = []
    n, m = 4, 3
    for d in (1, 2, 3):
        for widths in ("shared", "per-coordinate"):
            for C in (1, 3):
                q, keys, values = rand(n, d), rand(n, m, d), rand(n, m, C)
                w = rand(1 if widths == "shared" else d, lo=0.5, hi=2.0)
                att = torch.softmax(-weighted_sq_distances(q, keys, w) / 2, dim=1)
                out = torch.bmm(att.unsqueeze(1), values).reshape(n, C)
                inputs = {"queries": q, "keys": keys, "values": values, "w": w}
                cases.append(finish({"d": d, "widths": widths}, inputs, {"out": out, "weights": att}))
    return cases


def predict_cases():
    """NWKernelRegression.predict: queries (n, d), x_train (m, d), values (m, C)."""
    cases = []
    n, m = 3, 5
    for d, widths, C in ((1, "shared", 1), (2, "shared", 3), (2, "per-coordinate", 1), (3, "per-coordinate", 3)):
        q, x, values = rand(n, d), rand(m, d), rand(m, C)
        w = rand(1 if widths == "shared" else d, lo=0.5, hi=2.0)
        att = torch.softmax(-weighted_sq_distances(q, x, w) / 2, dim=1)
        inputs = {"queries": q, "x_train": x, "values": values, "w": w}
        cases.append(finish({"d": d, "widths": widths}, inputs, {"out": att @ values, "weights": att}))
    return cases


def cross_entropy_cases():
    """nw_cross_entropy on given logits: -sum_i log sum_{j: key_labels_ij = y_i} softmax_j(logits)_ij."""
    cases = []
    for n, m, C in ((4, 5, 2), (3, 6, 3)):
        logits = rand(n, m, lo=-3.0, hi=3.0)
        labels = torch.randint(0, C, (n,))
        key_labels = torch.randint(0, C, (n, m))
        key_labels[:, 0] = labels  # every row has a key of its own class
        p = torch.softmax(logits, dim=1)
        own = (key_labels == labels.unsqueeze(1)).to(DT)
        loss = -torch.log((p * own).sum(1)).sum()
        case = {"labels": labels.tolist(), "key_labels": key_labels.tolist()}
        cases.append(finish(case, {"logits": logits}, {"out": loss}))
    return cases


def training_cases():
    """Training losses end to end: keys/values from the training set (leave-one-out or all pairs),
    the parametric model, and the loss; gradients of w and x_train."""
    cases = []
    n = 6
    for d, widths, task, loss_name, loo in (
            (1, "shared", "regression", "squared", True), (2, "per-coordinate", "regression", "squared", True),
            (3, "shared", "regression", "squared", False), (2, "shared", "classification", "cross-entropy", True),
            (2, "per-coordinate", "classification", "cross-entropy", False),
            (3, "per-coordinate", "classification", "squared", True),
            (1, "shared", "classification", "cross-entropy", True)):
        x = rand(n, d, lo=-2.0, hi=2.0)
        w = rand(1 if widths == "shared" else d, lo=0.5, hi=1.5)
        case = {"d": d, "widths": widths, "task": task, "loss": loss_name, "leave_one_out": loo}
        if task == "regression":
            values = rand(n, 1).detach()
            case["values"] = arr(values)
        else:
            labels = torch.tensor([0, 1, 2, 0, 1, 2][:n])
            values = torch.nn.functional.one_hot(labels, 3).to(DT)
            case["labels"] = labels.tolist()
        keys = leave_one_out(x) if loo else x.unsqueeze(0).expand(n, n, d)
        vals = leave_one_out(values) if loo else values.unsqueeze(0).expand(n, n, values.shape[1])
        att = torch.softmax(-weighted_sq_distances(x, keys, w) / 2, dim=1)
        p = torch.bmm(att.unsqueeze(1), vals).reshape(n, -1)
        if loss_name == "squared":
            loss = 0.5 * ((p - values) ** 2).sum()
        else:
            loss = -torch.log(p[torch.arange(n), labels]).sum()
        cases.append(finish(case, {"x_train": x, "w": w}, {"out": loss, "p": p}))
    return cases


def kernel(name, u):
    if name == "gaussian":
        return torch.exp(-u ** 2 / 2)
    if name == "boxcar":
        return (u.abs() < 1).to(DT)
    if name == "constant":
        return torch.ones_like(u)
    return torch.clamp(1 - u.abs(), min=0)


def nonparametric_cases():
    """nadaraya_watson: weights K(||q - x|| / sigma) normalised per row, y_hat = weights @ values.
    Each query sits near a training input, so no compact-kernel row is empty."""
    cases = []
    m, n = 7, 5
    for d, C in ((1, 1), (2, 1), (2, 3), (3, 2)):
        x = 2 * torch.rand(m, d, dtype=DT)
        values = torch.randn(m, C, dtype=DT)
        q = x[:n] + 0.2 * (torch.rand(n, d, dtype=DT) - 0.5)
        for name in KERNELS:
            for sigma in (0.6, 1.5):
                dist = ((q.unsqueeze(1) - x.unsqueeze(0)) ** 2).sum(-1).sqrt()
                if name == "gaussian":
                    wts = torch.softmax(-dist ** 2 / (2 * sigma ** 2), dim=1)
                else:
                    k = kernel(name, dist / sigma)
                    assert (k.sum(1) > 0).all()
                    wts = k / k.sum(1, keepdim=True)
                cases.append({"d": d, "kernel": name, "sigma": sigma, "x_train": arr(x), "values": arr(values),
                              "x_query": arr(q), "weights": arr(wts), "y_hat": arr(wts @ values)})
    return cases


def main():
    ref = {
        "generator": "tests/reference/make_nd_reference.py",
        "torch": torch.__version__,
        "logsumexp": logsumexp_cases(),
        "weighted_sq_distances": distance_cases(),
        "forward": forward_cases(),
        "predict": predict_cases(),
        "cross_entropy": cross_entropy_cases(),
        "training": training_cases(),
        "nonparametric": nonparametric_cases(),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nd_reference.json")
    with open(path, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
