#!/usr/bin/env python3
"""PyTorch's side of the tapegrad performance comparison (docs/performance.md).

One invocation runs ONE configuration (the driver bench/run.py starts a fresh process for each,
so thread settings apply before any parallel region exists and ru_maxrss belongs to that
configuration) and prints one line "RESULT {json}".  The workloads, the data (bench_data below,
bit-identical to bench/bench_data.h) and the timing loop are the same as tapegrad_bench.cpp's.

  W1   the chapter's training epoch verbatim (d2l NWKernelRegression: repeat_interleave, softmax,
       bmm; MSELoss(reduction='none') / 2, sum, backward, SGD step).  Leave-one-out (n, n-1)
       keys/values built once, untimed; w reset to cfg["w"] (default 0.8, the chapter's w_init;
       untimed) before every epoch, so every repetition runs at that width.
  W1b  the best plain-PyTorch rewrite of the same epoch (nothing recomputed that w leaves fixed):
       D2 = (x_i - x_j)^2 precomputed once; timed: logits = D2 * (-w^2/2), masked diagonal,
       softmax, mv with y, 1/2 sum of squares, backward, step.  Same loss and gradient.
  W2   nonparametric Gaussian prediction as the chapter writes it (attention matrix
       materialised, no autograd), n_test = n_train = n.
  W3   torch.bmm (2000,1,2000)x(2000,2000,1) ("vec") and (64,128,128)x(64,128,128) ("mat").
  W4   softmax (4000,4000) along dim 1: forward (fwd_ms_median) and forward+backward (median_ms);
       cfg["logits"] "randn" (N(0, 1)) or a number R (uniform in [-R, 0], bench_data.h's logits).
  W5   one training epoch on d = 2 inputs (bench_data_2d, as bench_data.h's make_data_2d), the
       plain PyTorch rewrite of tapegrad's fused d-D ops: per-coordinate widths w (2,) (cfg["w"],
       default 1, reset before every epoch), leave-one-out; timed: logits = -1/2 sum over the
       coordinates of ((x_i - x_j) w)^2 from the (n, n, 2) differences (precomputed once),
       masked diagonal; cfg["task"] "regression": softmax @ y, 1/2 sum of squares;
       "classification": logsumexp over the row's class minus logsumexp over all keys; backward,
       SGD step.

Usage
  python3 torch_bench.py --worker '{"workload": "W1", "n": 1000, "dtype": "float32", ...}'
  python3 torch_bench.py --selftest      # W1 and W1b loss and dL/dw vs a numpy closed form
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import numpy as np

W_INIT, LR = 0.8, 0.5  # the chapter's w_init and learning rate (tapegrad_bench.cpp's too)


# ----------------------------------------------------------------------------- data
# splitmix64(stream << 32 | i) in numpy uint64 arithmetic (wraps mod 2^64, like C++).
def _splitmix64(z):
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(stream, n):
    i = np.arange(n, dtype=np.uint64) | (np.uint64(stream) << np.uint64(32))
    return (_splitmix64(i) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def normals(n, stream):
    u1, u2 = _uniform(stream, n), _uniform(stream + 100, n)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * math.pi * u2)


def logits(n, kind):
    """W4's logits, as bench_data.h's logits(): N(0, 1) for "randn", else -R u (stream 21)."""
    if kind == "randn":
        return normals(n, 21)
    return -float(kind) * _uniform(21, n)


def bench_data_2d(n):
    """x (n, 2) uniform in [0, 5)^2, y = 2 sin x1 + cos x2 + 0.5 eps, label = x2 > 2.5 + sin 2 x1
    (float64 numpy and int64; see bench_data.h's make_data_2d)."""
    x = np.stack([5.0 * _uniform(31, n), 5.0 * _uniform(32, n)], axis=1)
    y = 2.0 * np.sin(x[:, 0]) + np.cos(x[:, 1]) + 0.5 * normals(n, 33)
    label = (x[:, 1] > 2.5 + np.sin(2.0 * x[:, 0])).astype(np.int64)
    return x, y, label


def make_epoch_nd(task, n, dtype, w_bench=1.0):
    """(epoch, reset, fwd_ms) for W5: the d = 2 epoch, regression or classification."""
    import torch

    xd, yd, labels = bench_data_2d(n)
    x, y = torch.from_numpy(xd).to(dtype), torch.from_numpy(yd).to(dtype)
    label = torch.from_numpy(labels)
    w = torch.nn.Parameter(torch.full((2,), w_bench, dtype=dtype))
    diff2 = (x[:, None, :] - x[None, :, :]) ** 2  # (n, n, 2), once, untimed (as W1b's D2)
    diag = torch.eye(n, dtype=torch.bool)
    other_class = label[:, None] != label[None, :]
    trainer = torch.optim.SGD([w], lr=LR)
    fwd_ms = []

    def epoch():
        trainer.zero_grad()
        t0 = time.perf_counter()
        logits = (diff2 @ (-0.5 * w * w)).masked_fill(diag, float("-inf"))  # (n, n)
        if task == "regression":
            yhat = torch.softmax(logits, dim=1) @ y
            total = 0.5 * ((yhat - y) ** 2).sum()
        elif task == "classification":
            own = torch.logsumexp(logits.masked_fill(other_class, float("-inf")), dim=1)
            total = (torch.logsumexp(logits, dim=1) - own).sum()
        else:
            raise ValueError(task)
        fwd_ms.append(1e3 * (time.perf_counter() - t0))
        total.backward()
        epoch.last = (float(total), float(w.grad[0]))
        trainer.step()

    def reset():
        with torch.no_grad():
            w.fill_(w_bench)

    return epoch, reset, fwd_ms


def bench_data(n):
    """x sorted in [0, 5), y = 2 sin x + x^0.8 + 0.5 eps; float64 numpy (see bench_data.h)."""
    x = np.sort(5.0 * _uniform(1, n))
    y = 2.0 * np.sin(x) + x ** 0.8 + 0.5 * normals(n, 2)
    return x, y


# ----------------------------------------------------------------------------- workloads
def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def time_it(fn, pol, pre=None):
    """The loop of tapegrad_bench.cpp's time_it: warm-up, then repeat until min_reps and
    min_time, at most max_reps, and stop at max_time once 3 reps exist."""
    for _ in range(pol["warmup"]):
        if pre:
            pre()
        fn()
    times = []
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    while True:
        if pre:
            pre()
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
        elapsed = time.perf_counter() - start
        k = len(times)
        if k >= pol["max_reps"] or (k >= pol["min_reps"] and elapsed >= pol["min_time"]) or \
                (k >= 3 and elapsed >= pol["max_time"]):
            break
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / len(times)
    return times, faults


def put_stats(out, times, faults):
    s = sorted(times)
    k = len(s)
    out.update(reps=k, median_ms=statistics.median(s), min_ms=s[0],
               p10_ms=s[int(0.1 * (k - 1))], p90_ms=s[int(0.9 * (k - 1) + 0.5)],
               minor_faults_per_rep=faults)


def chapter_epoch(x, y, n, dtype, w_bench, fwd_ms):
    """(epoch, w) for W1: the chapter's training epoch verbatim over (n, n - 1) leave-one-out keys
    and values built once."""
    import torch
    from torch import nn

    class NWKernelRegression(nn.Module):  # d2l, verbatim
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.w = nn.Parameter(torch.full((1,), w_bench, dtype=dtype))

        def forward(self, queries, keys, values):
            queries = queries.repeat_interleave(keys.shape[1]).reshape((-1, keys.shape[1]))
            self.attention_weights = nn.functional.softmax(
                -((queries - keys) * self.w) ** 2 / 2, dim=1)
            return torch.bmm(self.attention_weights.unsqueeze(1),
                             values.unsqueeze(-1)).reshape(-1)

    X_tile, Y_tile = x.repeat((n, 1)), y.repeat((n, 1))
    keep = (1 - torch.eye(n)).type(torch.bool)
    keys = X_tile[keep].reshape((n, -1))
    values = Y_tile[keep].reshape((n, -1))
    del X_tile, Y_tile, keep
    net = NWKernelRegression()
    loss = nn.MSELoss(reduction="none")
    trainer = torch.optim.SGD(net.parameters(), lr=LR)

    def epoch():
        trainer.zero_grad()
        t0 = time.perf_counter()
        l = loss(net(x, keys, values), y) / 2
        fwd_ms.append(1e3 * (time.perf_counter() - t0))
        total = l.sum()
        total.backward()
        epoch.last = (float(total), float(net.w.grad[0]))
        trainer.step()

    return epoch, net.w


def plain_epoch(x, y, n, dtype, w_bench, fwd_ms):
    """(epoch, w) for W1b: the plain rewrite over the masked (n, n) squared distances."""
    import torch
    from torch import nn

    w = nn.Parameter(torch.full((1,), w_bench, dtype=dtype))
    D2 = (x[:, None] - x[None, :]) ** 2
    diag = torch.eye(n, dtype=torch.bool)
    trainer = torch.optim.SGD([w], lr=LR)

    def epoch():
        trainer.zero_grad()
        t0 = time.perf_counter()
        logits = (D2 * (-0.5 * w * w)).masked_fill(diag, float("-inf"))
        yhat = torch.softmax(logits, dim=1) @ y
        total = 0.5 * ((yhat - y) ** 2).sum()
        fwd_ms.append(1e3 * (time.perf_counter() - t0))
        total.backward()
        epoch.last = (float(total), float(w.grad[0]))
        trainer.step()

    return epoch, w


def make_epoch(wl, n, dtype, w_bench=W_INIT):
    """(epoch, reset, w, x, y, fwd_ms) for W1 (chapter verbatim) or W1b (masked (n, n)), reset
    to width w_bench before every epoch."""
    import torch

    xd, yd = bench_data(n)
    x, y = torch.from_numpy(xd).to(dtype), torch.from_numpy(yd).to(dtype)
    fwd_ms = []
    build = {"W1": chapter_epoch, "W1b": plain_epoch}.get(wl)
    if build is None:
        raise ValueError(wl)
    epoch, w = build(x, y, n, dtype, w_bench, fwd_ms)

    def reset():
        with torch.no_grad():
            w.fill_(w_bench)

    return epoch, reset, w, xd, yd, fwd_ms


def run_training(out, cfg, dtype, pol):
    """W1, W1b, W5: one untimed epoch at w (its loss and dL/dw for the driver's cross-check),
    then the timed epochs, each from the same w."""
    n = out["n"] = cfg["n"]
    if out["workload"] == "W5":
        out["w"] = cfg.get("w", 1.0)
        out["task"] = cfg.get("task", "regression")
        epoch, reset, fwd_ms = make_epoch_nd(out["task"], n, dtype, out["w"])
        out["shape"] = f"n={n} d=2"
    else:
        out["w"] = cfg.get("w", W_INIT)
        epoch, reset, _, _, _, fwd_ms = make_epoch(out["workload"], n, dtype, out["w"])
        out["shape"] = f"n={n}"
    reset()
    epoch()
    out["loss_at_w_init"], out["grad_at_w_init"] = epoch.last
    out["rss_after_setup_MiB"] = _rss_mb()
    fwd_ms.clear()
    put_stats(out, *time_it(epoch, pol, pre=reset))
    out["fwd_ms_median"] = statistics.median(fwd_ms)


def run_predict(out, cfg, dtype, pol):
    """W2: the chapter's nonparametric prediction, n_test = n_train = n, no autograd."""
    import torch
    from torch import nn

    n = out["n"] = cfg["n"]
    xd, yd = bench_data(n)
    x_train, y_train = torch.from_numpy(xd).to(dtype), torch.from_numpy(yd).to(dtype)
    # linspace in float64 then cast, as tapegrad_bench.cpp builds it
    x_test = torch.linspace(0, 5, n, dtype=torch.float64).to(dtype)
    n_train = n

    def predict():
        with torch.no_grad():  # d2l, verbatim
            X_repeat = x_test.repeat_interleave(n_train).reshape((-1, n_train))
            attention_weights = nn.functional.softmax(-(X_repeat - x_train) ** 2 / 2, dim=1)
            y_hat = torch.matmul(attention_weights, y_train)
        predict.checksum = float(y_hat[n // 2])

    out["rss_after_setup_MiB"] = _rss_mb()
    put_stats(out, *time_it(predict, pol))
    out["checksum"] = predict.checksum
    out["shape"] = f"n_test=n_train={n}"


def run_bmm(out, cfg, dtype, pol):
    """W3: torch.bmm, "vec" (2000,1,2000)x(2000,2000,1) or "mat" (64,128,128)x(64,128,128)."""
    import torch

    case = out["case"] = cfg["case"]
    B, N, M, P = (2000, 1, 2000, 1) if case == "vec" else (64, 128, 128, 128)
    a = torch.from_numpy(normals(B * N * M, 11).reshape(B, N, M)).to(dtype)
    b = torch.from_numpy(normals(B * M * P, 12).reshape(B, M, P)).to(dtype)
    out["rss_after_setup_MiB"] = _rss_mb()
    put_stats(out, *time_it(lambda: torch.bmm(a, b), pol))
    out["shape"] = "(2000,1,2000)x(2000,2000,1)" if case == "vec" else "(64,128,128)x(64,128,128)"


def run_softmax(out, cfg, dtype, pol):
    """W4: softmax (4000, 4000) along dim 1, forward alone and forward + backward(G)."""
    import torch

    out["logits"] = cfg.get("logits", "randn")
    X = torch.from_numpy(logits(4000 * 4000, out["logits"]).reshape(4000, 4000)).to(dtype)
    X.requires_grad_(True)
    G = torch.from_numpy(normals(4000 * 4000, 22).reshape(4000, 4000)).to(dtype)
    out["rss_after_setup_MiB"] = _rss_mb()

    def fwd():
        with torch.no_grad():
            torch.softmax(X, dim=1)

    def fwdbwd():
        X.grad = None
        torch.softmax(X, dim=1).backward(G)

    tf, _ = time_it(fwd, pol)
    out["fwd_ms_median"] = statistics.median(tf)
    put_stats(out, *time_it(fwdbwd, pol))
    out["shape"] = "(4000,4000) dim=1"


def worker(cfg):
    """One configuration: threads set first, then the workload; prints "RESULT {json}"."""
    import torch

    threads = cfg["threads"]
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    dtype = {"float32": torch.float32, "float64": torch.float64}[cfg["dtype"]]
    wl = cfg["workload"]
    pol = {k: cfg[k] for k in ("min_time", "min_reps", "max_reps", "max_time", "warmup")}
    out = dict(impl="torch", workload=wl, dtype=cfg["dtype"], torch_threads=torch.get_num_threads())
    run = {"W1": run_training, "W1b": run_training, "W5": run_training, "W2": run_predict,
           "W3": run_bmm, "W4": run_softmax}.get(wl)
    if run is None:
        raise ValueError(wl)
    run(out, cfg, dtype, pol)
    out["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("RESULT " + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- selftest
def selftest():
    """W1 and W1b must give the loss and dL/dw of a numpy float64 closed form on the same data
    (an independent reference).  tapegrad is then checked against W1 by the driver."""
    import torch

    ok = True
    for n in (50, 300):
        xd, yd = bench_data(n)
        w = W_INIT
        D = xd[:, None] - xd[None, :]
        Z = -0.5 * (D * w) ** 2
        np.fill_diagonal(Z, -np.inf)
        Z -= Z.max(1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(1, keepdims=True)
        yhat = P @ yd
        r = yhat - yd
        L = 0.5 * (r ** 2).sum()
        D2 = D ** 2
        G = (r * (-w * ((P * D2) @ yd - yhat * (P * D2).sum(1)))).sum()
        for wl in ("W1", "W1b"):
            for dt in (torch.float64, torch.float32):
                epoch, reset, *_ = make_epoch(wl, n, dt)
                reset()
                epoch()
                l, g = epoch.last
                tol = 1e-10 if dt == torch.float64 else 2e-5
                el, eg = abs(l - L) / abs(L), abs(g - G) / abs(G)
                good = el < tol and eg < 10 * tol
                ok &= good
                print(f"selftest {wl:3s} n={n:4d} {str(dt):13s} loss {l:.10g} vs {L:.10g} "
                      f"(rel {el:.1e}) grad {g:.10g} vs {G:.10g} (rel {eg:.1e}) "
                      f"{'ok' if good else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help="one configuration as JSON")
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    if args.selftest:
        sys.exit(0 if selftest() else 1)
    if args.worker:
        worker(json.loads(args.worker))
        return
    ap.print_help()


if __name__ == "__main__":
    main()
