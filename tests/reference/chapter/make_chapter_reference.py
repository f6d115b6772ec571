#!/usr/bin/python3
"""PyTorch reference numbers for tapegrad's Nadaraya-Watson tests (tests/models).

Runs the d2l chapter "Attention Pooling: Nadaraya-Watson Kernel Regression" (1st edition, PyTorch
tab) in float64, and once more in float32, on fixed data and writes, next to this script:

  train.csv                50 training points, header x,y (float64, repr: exact round trip)
  query.csv                50 queries 0, 0.1, ..., 4.9, header x
  chapter_reference.json   losses, learned w, predictions, attention weights, gradients, ...;
                           "float32": the float32 run's losses, w, predictions and gradients

The C++ tests read these files; Python is not needed at test time. Re-run with
  /usr/bin/python3 tests/reference/chapter/make_chapter_reference.py
(torch 1.13). The data come from numpy's RandomState(7), so the outputs are reproducible.
"""

import json
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
N_TRAIN = 50
W_INIT = 0.3
LR = 0.5
EPOCHS = 5
GRAD_WS = [0.1, 0.5, 1.0, 3.0, 10.0]

torch.set_default_dtype(torch.float64)


def f(x):
    return 2 * np.sin(x) + x**0.8


def make_data():
    rs = np.random.RandomState(7)
    x_train = np.sort(rs.uniform(0.0, 5.0, N_TRAIN))
    y_train = f(x_train) + rs.normal(0.0, 0.5, N_TRAIN)
    # 0, 0.1, ..., 4.9 as float64 products i * 0.1 (what the C++ data generator uses too).
    x_test = np.array([i * 0.1 for i in range(50)])
    return x_train, y_train, x_test


def write_csv(path, header, columns):
    with open(path, "w", newline="\n") as fh:
        fh.write(",".join(header) + "\n")
        for row in zip(*columns):
            fh.write(",".join(repr(float(v)) for v in row) + "\n")


def read_csv(path):
    """Reads back what write_csv wrote, so the reference is computed from the files' exact values."""
    with open(path) as fh:
        lines = fh.read().splitlines()
    rows = [[float(c) for c in line.split(",")] for line in lines[1:] if line.strip()]
    return [np.array(col) for col in zip(*rows)]


class NWKernelRegression(nn.Module):
    """The chapter's model, verbatim except for a fixed w_init (the chapter uses torch.rand)."""

    def __init__(self, w_init, dtype=torch.float64, **kwargs):
        super().__init__(**kwargs)
        self.w = nn.Parameter(torch.tensor([w_init], dtype=dtype, requires_grad=True))

    def forward(self, queries, keys, values):
        # Shape of the output queries and attention_weights:
        # (no. of queries, no. of key-value pairs)
        queries = queries.repeat_interleave(keys.shape[1]).reshape((-1, keys.shape[1]))
        self.attention_weights = nn.functional.softmax(-((queries - keys) * self.w) ** 2 / 2, dim=1)
        # Shape of values: (no. of queries, no. of key-value pairs)
        return torch.bmm(self.attention_weights.unsqueeze(1), values.unsqueeze(-1)).reshape(-1)


def keys_values(x_train, y_train, leave_one_out):
    n_train = len(x_train)
    # Shape of X_tile: (n_train, n_train), where each column contains the same training inputs
    X_tile = x_train.repeat((n_train, 1))
    Y_tile = y_train.repeat((n_train, 1))
    if not leave_one_out:
        return X_tile, Y_tile
    # Shape of keys: ('n_train', 'n_train' - 1)
    keys = X_tile[(1 - torch.eye(n_train)).type(torch.bool)].reshape((n_train, -1))
    values = Y_tile[(1 - torch.eye(n_train)).type(torch.bool)].reshape((n_train, -1))
    return keys, values


def train(x_train, y_train, leave_one_out=True, momentum=0.0, weight_decay=0.0):
    keys, values = keys_values(x_train, y_train, leave_one_out)
    net = NWKernelRegression(W_INIT, x_train.dtype)
    loss = nn.MSELoss(reduction="none")
    trainer = torch.optim.SGD(net.parameters(), lr=LR, momentum=momentum, weight_decay=weight_decay)
    losses = []
    for epoch in range(EPOCHS):
        trainer.zero_grad()
        l = loss(net(x_train, keys, values), y_train) / 2
        l.sum().backward()
        trainer.step()
        # The loss of the forward whose gradient this epoch's step applied.
        losses.append(float(l.sum()))
        print(f"epoch {epoch + 1}, loss {float(l.sum()):.6f}", file=sys.stderr)
    return net, losses


def grad_at(x_train, y_train, w):
    keys, values = keys_values(x_train, y_train, True)
    net = NWKernelRegression(w, x_train.dtype)
    l = nn.MSELoss(reduction="none")(net(x_train, keys, values), y_train) / 2
    l.sum().backward()
    return float(l.sum()), float(net.w.grad[0])


def nonparametric(x_train, y_train, x_test):
    """The chapter's nonparametric pooling, gaussian kernel with sigma = 1."""
    n_train = len(x_train)
    X_repeat = x_test.repeat_interleave(n_train).reshape((-1, n_train))
    weights = nn.functional.softmax(-((X_repeat - x_train) ** 2) / 2, dim=1)
    return torch.matmul(weights, y_train), weights


def float32_run(x_np, y_np, q_np):
    """The same chapter in float32 (the data rounded to float32 once): what a float32 program
    prints, up to the order of its sums."""
    x_train = torch.tensor(x_np, dtype=torch.float32)
    y_train = torch.tensor(y_np, dtype=torch.float32)
    x_test = torch.tensor(q_np, dtype=torch.float32)
    net, losses = train(x_train, y_train)
    keys, values = x_train.repeat((len(x_test), 1)), y_train.repeat((len(x_test), 1))
    with torch.no_grad():
        pred = net(x_test, keys, values)
    grads = [grad_at(x_train, y_train, w) for w in GRAD_WS]
    np_pred, _ = nonparametric(x_train, y_train, x_test)
    return {
        "loss": losses,
        "w": float(net.w[0]),
        "predictions": [float(v) for v in pred],
        "grad_loss": [g[0] for g in grads],
        "dloss_dw": [g[1] for g in grads],
        "nonparametric_predictions": [float(v) for v in np_pred],
    }


def main():
    x_np, y_np, q_np = make_data()
    train_csv = os.path.join(HERE, "train.csv")
    query_csv = os.path.join(HERE, "query.csv")
    write_csv(train_csv, ["x", "y"], [x_np, y_np])
    write_csv(query_csv, ["x"], [q_np])
    x_np, y_np = read_csv(train_csv)
    (q_np,) = read_csv(query_csv)

    x_train = torch.tensor(x_np, dtype=torch.float64)
    y_train = torch.tensor(y_np, dtype=torch.float64)
    x_test = torch.tensor(q_np, dtype=torch.float64)
    n_train, n_test = len(x_train), len(x_test)

    # Average pooling.
    average = float(y_train.mean())

    # Nonparametric attention pooling, gaussian kernel with sigma = 1, as in the chapter.
    np_pred, np_weights = nonparametric(x_train, y_train, x_test)

    # Parametric attention pooling, leave-one-out training.
    net, losses = train(x_train, y_train)
    keys = x_train.repeat((n_test, 1))
    values = y_train.repeat((n_test, 1))
    with torch.no_grad():
        pred = net(x_test, keys, values)
    par_weights = net.attention_weights

    net_all, losses_all = train(x_train, y_train, leave_one_out=False)
    net_mom, losses_mom = train(x_train, y_train, momentum=0.9, weight_decay=0.01)

    grads = [grad_at(x_train, y_train, w) for w in GRAD_WS]

    ref = {
        "description": "d2l Nadaraya-Watson chapter (PyTorch tab) in float64 on train.csv/query.csv; "
        "under float32, the same run in float32",
        "torch_version": torch.__version__,
        "data_seed": "numpy RandomState(7)",
        "w_init": W_INIT,
        "lr": LR,
        "epochs": EPOCHS,
        "average": average,
        "nonparametric": {
            "kernel": "gaussian",
            "sigma": 1.0,
            "predictions": np_pred.tolist(),
            "weights": np_weights.tolist(),
        },
        "parametric": {
            "leave_one_out": True,
            "loss": losses,
            "w": float(net.w[0]),
            "predictions": pred.tolist(),
            "weights": par_weights.tolist(),
        },
        "keep_self": {"leave_one_out": False, "loss": losses_all, "w": float(net_all.w[0])},
        "momentum": {
            "momentum": 0.9,
            "weight_decay": 0.01,
            "loss": losses_mom,
            "w": float(net_mom.w[0]),
        },
        "grad": {
            "leave_one_out": True,
            "w": GRAD_WS,
            "loss": [g[0] for g in grads],
            "dloss_dw": [g[1] for g in grads],
        },
        "float32": float32_run(x_np, y_np, q_np),
    }
    with open(os.path.join(HERE, "chapter_reference.json"), "w") as fh:
        # Python's json writes floats with repr: float64 round-trips exactly.
        json.dump(ref, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
