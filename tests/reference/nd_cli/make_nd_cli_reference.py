#!/usr/bin/python3
"""PyTorch reference for the nadaraya_watson program on vectors and on classes.

Implements the program's contract (README, "Vectors and classes") independently, in torch float64,
and writes nd_cli_reference.json next to this script: for each case, the training and query CSV
text, the program's flags, and what the program must write:

  predictions      rows of predictions.csv: x1..xd, average, nonparametric, parametric
  probabilities    (classification) rows of probabilities_{nonparametric,parametric}.csv
  w, loss          training.json's "w" (a number for --widths shared, a list for per-coordinate)
                   and "loss" (one entry per epoch, the loss before that epoch's SGD step)
  train_accuracy   (classification) leave-one-out accuracy of the final model on the training set

The contract, as torch code:
  s_ij        = sum_k ((q_ik - x_jk) w_k)^2                     w: (1,) shared or (d,)
  alpha_ij    = softmax_j(-s_ij / 2)   over j != i while training (leave-one-out), unless
                --keep-self; over every training pair for the queries
  regression  f_i = sum_j alpha_ij y_j,            L = 1/2 sum_i (f_i - y_i)^2
  classes     p_i = sum_j alpha_ij onehot(y_j),    L = -sum_i log p_i[y_i]   (cross-entropy)
                                                   L = 1/2 sum_i ||p_i - onehot(y_i)||^2 (squared)
  SGD         w <- w - lr dL/dw, --epochs times
  nonparametric (gaussian) alpha_ij = softmax_j(-||q_i - x_j||^2 / (2 sigma^2)); the other kernels
              K(||q_i - x_j|| / sigma) normalised per row
  labels      argmax, ties to the smallest label; average pooling predicts the majority class

The C++ test (tests/examples/test_cli_nd_torch.cpp) reads the JSON; Python is not needed at test
time. Re-run with /usr/bin/python3 tests/reference/nd_cli/make_nd_cli_reference.py (torch 1.13).
"""

import json
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_default_dtype(torch.float64)


def csv_text(header, rows):
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join(repr(float(v)) if not isinstance(v, int) else str(v) for v in row))
    return "\n".join(lines) + "\n"


def x_header(d):
    return ["x"] if d == 1 else ["x%d" % (k + 1) for k in range(d)]


def kernel_weights(x, q, kernel, sigma):
    dist2 = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # (nq, n)
    if kernel == "gaussian":
        return torch.softmax(-dist2 / (2 * sigma**2), dim=1)
    u = dist2.sqrt() / sigma
    if kernel == "boxcar":
        k = (u < 1).double()
    elif kernel == "epanechikov":
        k = torch.clamp(1 - u, min=0)
    else:
        k = torch.ones_like(u)
    assert bool((k.sum(1) > 0).all()), "a test case must not have empty kernel rows"
    return k / k.sum(1, keepdim=True)


def logits(x_q, x_k, w):
    return -0.5 * (((x_q[:, None, :] - x_k[None, :, :]) * w) ** 2).sum(-1)


def training_logits(x, w, keep_self):
    l = logits(x, x, w)
    if not keep_self:
        l = l.masked_fill(torch.eye(len(x), dtype=torch.bool), float("-inf"))
    return l


def loss_of(x, values, labels, w, keep_self, task, loss_fn):
    l = training_logits(x, w, keep_self)
    if task == "regression":
        f = torch.softmax(l, 1) @ values
        return 0.5 * ((f[:, 0] - values[:, 0]) ** 2).sum()
    if loss_fn == "cross-entropy":
        same = labels[None, :] == labels[:, None]
        log_p = torch.logsumexp(l.masked_fill(~same, float("-inf")), 1) - torch.logsumexp(l, 1)
        return -log_p.sum()
    p = torch.softmax(l, 1) @ values
    return 0.5 * ((p - values) ** 2).sum()


def check_margin(p, what):
    # A label the float32/float64 rounding of another implementation could flip is not a fair
    # test: the top two probabilities of every row must differ by more than 1e-6.
    top2 = p.topk(2, 1).values
    assert bool(((top2[:, 0] - top2[:, 1]) > 1e-6).all()), what + ": a near tie"


def argmax_smallest(p):
    # torch.argmax's tie order is unspecified; the contract breaks ties to the smallest label.
    best = p.max(1, keepdim=True).values
    idx = torch.arange(p.shape[1]).expand_as(p)
    return torch.where(p == best, idx, p.shape[1]).min(1).values


def run_case(case):
    x = torch.tensor(case["x"])
    y = torch.tensor(case["y"])
    q = torch.tensor(case["q"])
    n, d = x.shape
    task, widths = case["task"], case["widths"]
    loss_fn = case.get("loss", "cross-entropy" if task == "classification" else "squared")
    keep_self = case.get("keep_self", False)
    if task == "classification":
        labels = y.long()
        classes = int(labels.max()) + 1
        values = torch.nn.functional.one_hot(labels, classes).double()
    else:
        labels = None
        values = y[:, None]
    w = torch.full((d if widths == "per-coordinate" else 1,), case["w_init"], requires_grad=True)
    losses = []
    for _ in range(case["epochs"]):
        loss = loss_of(x, values, labels, w, keep_self, task, loss_fn)
        w.grad = None
        loss.backward()
        losses.append(loss.item())
        with torch.no_grad():
            w -= case["lr"] * w.grad
    w = w.detach()
    nonpar = kernel_weights(x, q, case["kernel"], case["sigma"]) @ values
    par = torch.softmax(logits(q, x, w), 1) @ values
    out = {"w": w.tolist() if widths == "per-coordinate" else w.item(), "loss": losses}
    if task == "regression":
        avg = torch.full((len(q),), y.mean().item())
        cols = [avg, nonpar[:, 0], par[:, 0]]
    else:
        counts = torch.bincount(labels, minlength=classes)
        majority = int(argmax_smallest(counts[None, :].double())[0])
        check_margin(nonpar, case["name"] + " nonparametric")
        check_margin(par, case["name"] + " parametric")
        cols = [torch.full((len(q),), majority), argmax_smallest(nonpar), argmax_smallest(par)]
        out["classes"] = classes
        out["probabilities_nonparametric"] = nonpar.tolist()
        out["probabilities_parametric"] = par.tolist()
        loo = torch.softmax(training_logits(x, w, False), 1) @ values
        check_margin(loo, case["name"] + " leave-one-out")
        out["train_accuracy"] = (argmax_smallest(loo) == labels).double().mean().item()
    out["predictions"] = torch.cat([q, torch.stack(cols, 1).double()], 1).tolist()
    return out


def make_inputs(rs, n, d, task, classes=2, nq=7, balanced=False):
    x = np.round(rs.uniform(0, 3, (n, d)), 4)
    q = np.round(rs.uniform(-0.5, 3.5, (nq, d)), 4)
    if task == "regression":
        y = np.round(np.sin(2 * x[:, 0]) + (x[:, 1] if d > 1 else 0) + rs.normal(0, 0.3, n), 4)
        return x, y, q
    # Classes by the angle around the box's centre, then every class made to appear >= 2 times.
    angle = np.arctan2(x[:, -1] - 1.5, x[:, 0] - 1.5) + np.pi
    y = np.minimum((angle / (2 * np.pi) * classes).astype(int), classes - 1)
    y[: 2 * classes] = np.repeat(np.arange(classes), 2)
    if balanced:  # equal class counts: average pooling's majority is a tie, won by label 0
        y = rs.permutation(np.arange(n) % classes)
    return x, y, q


def case_list():
    rs = np.random.RandomState(11)
    spec = [
        # name, n, d, task, widths, extra
        ("d2_regression_shared", 24, 2, "regression", "shared", {}),
        ("d2_regression_per_coordinate", 24, 2, "regression", "per-coordinate", {}),
        ("d2_regression_per_coordinate_keep_self", 20, 2, "regression", "per-coordinate",
         {"keep_self": True}),
        ("d3_regression_shared", 30, 3, "regression", "shared", {"kernel": "epanechikov",
                                                                 "sigma": 2.5}),
        ("d3_regression_per_coordinate", 30, 3, "regression", "per-coordinate",
         {"kernel": "boxcar", "sigma": 3.0}),
        ("d1_regression_per_coordinate", 25, 1, "regression", "per-coordinate", {}),
        ("d2_classification_ce_shared", 30, 2, "classification", "shared", {"classes": 3}),
        ("d2_classification_ce_per_coordinate", 30, 2, "classification", "per-coordinate",
         {"classes": 3}),
        ("d2_classification_squared_per_coordinate", 26, 2, "classification", "per-coordinate",
         {"classes": 2, "loss": "squared"}),
        ("d3_classification_ce_keep_self", 28, 3, "classification", "per-coordinate",
         {"classes": 2, "keep_self": True}),
        ("d3_classification_squared_shared", 28, 3, "classification", "shared",
         {"classes": 4, "loss": "squared", "kernel": "constant"}),
        ("d2_classification_ce_balanced", 24, 2, "classification", "shared",
         {"classes": 3, "balanced": True}),
        ("d1_classification_ce", 24, 1, "classification", "shared", {"classes": 2}),
        ("d1_classification_squared_per_coordinate", 24, 1, "classification", "per-coordinate",
         {"classes": 3, "loss": "squared"}),
    ]
    cases = []
    for name, n, d, task, widths, extra in spec:
        x, y, q = make_inputs(rs, n, d, task, extra.get("classes", 2),
                              balanced=extra.get("balanced", False))
        case = {"name": name, "task": task, "widths": widths, "x": x.tolist(), "y": y.tolist(),
                "q": q.tolist(), "w_init": 0.7, "lr": 0.02 if task == "regression" else 0.05,
                "epochs": 4, "kernel": extra.get("kernel", "gaussian"),
                "sigma": extra.get("sigma", 0.8)}
        case.update({k: v for k, v in extra.items() if k in ("keep_self", "loss")})
        cases.append(case)
    return cases


def flags(case):
    args = ["--task", case["task"], "--widths", case["widths"], "--w-init", repr(case["w_init"]),
            "--lr", repr(case["lr"]), "--epochs", str(case["epochs"]), "--kernel", case["kernel"],
            "--sigma", repr(case["sigma"])]
    if "loss" in case:
        args += ["--loss", case["loss"]]
    if case.get("keep_self"):
        args.append("--keep-self")
    return args


def main():
    out = []
    for case in case_list():
        d = len(case["x"][0])
        y_cells = [int(v) for v in case["y"]] if case["task"] == "classification" else case["y"]
        entry = {
            "name": case["name"],
            "d": d,
            "task": case["task"],
            "widths": case["widths"],
            "args": flags(case),
            "train_csv": csv_text(x_header(d) + ["y"],
                                  [list(r) + [v] for r, v in zip(case["x"], y_cells)]),
            "query_csv": csv_text(x_header(d), case["q"]),
        }
        entry.update(run_case(case))
        out.append(entry)
    with open(os.path.join(HERE, "nd_cli_reference.json"), "w") as fh:
        json.dump({"torch": torch.__version__, "cases": out}, fh, indent=1)
        fh.write("\n")
    print("wrote %d cases" % len(out))


if __name__ == "__main__":
    main()
