#!/usr/bin/env python3
"""Driver of the tapegrad vs PyTorch / LibTorch comparison (docs/performance.md).  Normally
started by `bash bench/run.sh [--quick] [--update-doc]`, which builds tapegrad_bench (gcc and clang),
libtorch_bench and nadaraya_watson, and finds a Python with torch.

Stages, in order:
  1. widths: tapegrad_bench --workload fit trains w at each benchmark n (the width training reaches);
  2. W1f against w (0.8 ... 200 and the trained width), each width with tapegrad (gcc, clang),
     PyTorch's plain rewrite (W1b; also with glibc's default malloc at some widths), LibTorch's,
     and PyTorch's chapter formulation (W1) back to back;
  3. W4 softmax by logit range (N(0, 1), U[-1, 0], U[-30, 0], U[-300, 0]), every side;
  4. the first comparison's workloads at w = 0.8 (W1 composed against n, W2, W3, 1 thread);
  5. W5: a d = 2 epoch through the fused d-D ops (regression, cross-entropy) against PyTorch;
  6. n = 100000: one fused epoch at the trained width;
  7. examples' nadaraya_watson: its own per-epoch time at the trained width.
Every configuration runs in a fresh process with OMP_NUM_THREADS = OPENBLAS_NUM_THREADS =
MKL_NUM_THREADS = threads, one at a time.  Before each process the driver waits (bounded) for idle
CPUs and records how busy they were, because this machine may be shared.

Output, in bench/results/<timestamp>[-quick]/:
  results.jsonl   one JSON object per process (raw numbers: median/p10/p90/min ms, reps,
                  peak RSS, losses for the cross-check, threads seen, others' CPU share)
  table.md        the markdown tables, targets and cross-check printed at the end
  perf_vs_w.dat, scaling.dat and the plots perf_vs_w.png, perf_scaling.png (gnuplot)
With --update-doc, table.md replaces the generated block of docs/performance.md and the plots are
copied into docs/.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------------------- configurations
# The widths of the W1f sweep (issue 13): from the chapter's w_init 0.8 to attention so sharp that
# almost every weight underflows; "trained" (the width training reaches at that n) is added per n.
SWEEP_W = [0.8, 2, 5, 10, 20, 50, 200]
LOGITS = ["randn", "1", "30", "300"]  # W4: N(0, 1) and uniform in [-R, 0]


def C(impl, wl, **p):
    """One process: impl is tapegrad (gcc build), tapegrad-clang, torch or libtorch."""
    return dict(impl=impl, workload=wl, threads=p.pop("threads", 2), malloc=p.pop("malloc", "tuned"),
                **p)


def sweep_configs(args, widths):
    """W1f against w, each width with every side back to back (tapegrad first)."""
    for n in args.sweep_sizes:
        ws = list(args.sweep_w) + ([widths[n]] if n in widths else [])
        for dt in args.dtypes:
            for w in ws:
                p = dict(n=n, dtype=dt, w=w)
                yield C("tapegrad", "W1f", **p)
                yield C("tapegrad-clang", "W1f", **p)
                yield C("torch", "W1b", **p)
                yield C("libtorch", "W1b", **p)
                if n in args.chapter_sizes:
                    yield C("torch", "W1", **p)
                if n == 4000 and (w in (0.8, 50) or w == widths.get(n)):
                    # PyTorch as shipped: glibc's default malloc (see run_one)
                    yield C("torch", "W1b", malloc="default", **p)


def softmax_configs(args):
    for dt in args.dtypes:
        for lg in args.logits:
            p = dict(dtype=dt, logits=lg)
            yield from (C("tapegrad", "W4", **p), C("tapegrad-clang", "W4", **p),
                        C("torch", "W4", **p), C("libtorch", "W4", **p))
            if dt == "float32":
                yield C("torch", "W4", malloc="default", **p)


def classic_configs(args):
    """The workloads of the first comparison (issue #4) at w = 0.8, 2 threads, minus what the
    sweep already measures; 1 thread where a target needs it."""
    for dt in args.classic_dtypes:
        for n in args.sizes:
            p = dict(n=n, dtype=dt, w=0.8)
            yield from (C("tapegrad", "W1", **p), C("tapegrad-clang", "W1", **p))
            if n not in args.sweep_sizes or n not in args.chapter_sizes:
                yield C("torch", "W1", **p)
            if n not in args.sweep_sizes:
                yield from (C("tapegrad", "W1f", **p), C("tapegrad-clang", "W1f", **p),
                            C("torch", "W1b", **p))
        for n in args.predict_sizes:
            p = dict(n=n, dtype=dt)
            yield from (C("tapegrad", "W2", **p), C("tapegrad", "W2c", **p),
                        C("tapegrad-clang", "W2", **p), C("tapegrad-clang", "W2c", **p),
                        C("torch", "W2", **p))
        for case in ("vec", "mat"):
            p = dict(case=case, dtype=dt)
            yield from (C("tapegrad", "W3", **p), C("tapegrad-clang", "W3", **p), C("torch", "W3", **p))
        # 1 thread: the fused op's 2-thread speedup, and W1 n = 50 (a target at both counts)
        yield C("tapegrad", "W1f", n=4000, dtype=dt, w=0.8, threads=1)
        yield from (C("tapegrad", "W1", n=50, dtype=dt, w=0.8, threads=1),
                    C("torch", "W1", n=50, dtype=dt, w=0.8, threads=1))


def nd_configs(args):
    """W5 (issue 11): one d = 2 training epoch through the fused d-D ops, regression and the
    cross-entropy, tapegrad (gcc, clang) and PyTorch's plain rewrite back to back; at the largest n
    also at w = 30, sharp attention, where the fused op visits only each row's window."""
    for n in args.nd_sizes:
        for w in (1.0, 30.0) if n == max(args.nd_sizes) else (1.0,):
            for dt in args.dtypes:
                for task in ("regression", "classification"):
                    p = dict(n=n, dtype=dt, w=w, task=task)
                    yield from (C("tapegrad", "W5", **p), C("tapegrad-clang", "W5", **p),
                                C("torch", "W5", **p))


def big_configs(args, widths):
    """n = 100000 (1e10 pairs): tapegrad only (PyTorch would need (n, n) matrices of 40-80 GB),
    one repetition, no warm-up, at the width training reaches."""
    if args.big and args.big_n in widths:
        for dt in args.big_dtypes:
            p = dict(n=args.big_n, dtype=dt, w=widths[args.big_n], big=True)
            yield C("tapegrad", "W1f", **p)
            if dt == "float32" and not args.quick:
                yield C("tapegrad-clang", "W1f", **p)


def policy(args, impl, wl, p):
    pol = dict(min_time=args.min_time, min_reps=args.min_reps, max_reps=2000,
               max_time=args.max_time, warmup=args.warmup)
    if p.get("big"):
        pol.update(min_reps=1, max_reps=1, warmup=0, min_time=0)
    return pol


# ----------------------------------------------------------------------------- running
def cpu_busy(interval=0.25):
    """Fraction of all CPUs busy over `interval` (the driver itself sleeps meanwhile)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v), idle
    t0, i0 = snap()
    time.sleep(interval)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def cpu_jiffies():
    """(busy, total) jiffies of all CPUs from /proc/stat (steal counts as busy: a VM whose host
    is loaded is as unfit for timing as a busy guest)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], sum(v)


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wait_idle(max_wait, threshold=0.2):
    busy = cpu_busy()
    waited = 0.0
    while busy > threshold and waited < max_wait:
        time.sleep(2.0)
        waited += 2.5
        busy = cpu_busy()
    return busy, waited


PARAMS = ("n", "w", "case", "logits", "lr", "epochs", "task")  # passed as --name value


def command(args, cfg, pol):
    impl, wl = cfg["impl"], cfg["workload"]
    if impl == "torch":
        w = dict(workload=wl, dtype=cfg["dtype"], threads=cfg["threads"], **pol)
        w.update({k: cfg[k] for k in PARAMS if k in cfg})
        return [args.python, os.path.join(HERE, "torch_bench.py"), "--worker", json.dumps(w)]
    binary = {"tapegrad": args.bin, "tapegrad-clang": args.bin_clang,
              "libtorch": args.libtorch_bin}[impl]
    cmd = [binary, "--workload", wl, "--dtype", cfg["dtype"]]
    for k in PARAMS:
        if k in cfg:
            cmd += ["--" + k, str(cfg[k])]
    for k, v in pol.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    return cmd


def worker_env(threads, malloc):
    env = dict(os.environ)
    t = str(threads)
    env.update(OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t)
    if malloc == "tuned":
        # Both sides allocate fresh (n, n) buffers in every op. glibc serves big blocks with mmap
        # and returns them with munmap, so every epoch page-faults its whole working set again
        # (1 GB and 265k faults per epoch at n = 4000), and on this VM a fault costs ~13 us:
        # the timings measured the hypervisor, not the arithmetic. Keeping freed memory in the
        # heap (same setting for every side; examples/nadaraya_watson sets it with mallopt) removes
        # that. malloc "default" rows run with glibc's defaults: PyTorch as `python3` ships.
        env.update(MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_=str(64 * 2 ** 30),
                   MALLOC_TOP_PAD_=str(64 * 2 ** 20))
    return env


def run_one(args, cfg):
    """Runs one configuration in a fresh process; returns its RESULT merged with cfg."""
    pol = policy(args, cfg["impl"], cfg["workload"], cfg)
    cmd = command(args, cfg, pol)
    env = worker_env(cfg["threads"], cfg["malloc"])
    busy, waited = wait_idle(args.idle_wait)
    t0 = time.time()
    b0, c0 = cpu_jiffies()[0], children_cpu_s()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
        res = None
        for line in r.stdout.splitlines():
            if line.startswith("RESULT "):
                res = json.loads(line[7:])
        if res is None:
            err = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}, no output"])[-1]
            res = dict(error=err)
    except subprocess.TimeoutExpired:
        res = dict(error=f"timeout after {args.timeout} s")
    # CPU time of everything else during the run, as a fraction of the machine: the share of
    # the busy jiffies that our child did not use. Rows where this is large are flagged.
    wall = time.time() - t0
    other = ((cpu_jiffies()[0] - b0) / os.sysconf("SC_CLK_TCK") - (children_cpu_s() - c0)) / \
        (wall * os.cpu_count())
    res["others_cpu_during"] = round(max(0.0, other), 3)
    res.update(cfg)  # the configuration's own fields are the keys the tables look rows up by
    res.update(wall_s=round(wall, 2), cpu_busy_before=round(busy, 3), idle_wait_s=round(waited, 1))
    return res


def run_program(args, n, w, dtype, epochs):
    """examples/nadaraya_watson's own training loop at width w held fixed (--lr 0), --impl fused:
    its reported per-epoch time, the median of epoch_seconds in training.json, as the benchmark
    takes the median of its repetitions (issue 13: within 1.2x of the benchmark's W1f at the same
    w). train_seconds / epochs is kept beside it."""
    import tempfile
    with tempfile.TemporaryDirectory() as out:
        cmd = [args.program, "--n-train", str(n), "--epochs", str(epochs), "--lr", "0",
               "--w-init", repr(w), "--impl", "fused", "--dtype", dtype, "--threads", "2",
               "--no-plots", "--out", out]
        busy, waited = wait_idle(args.idle_wait)
        t0 = time.time()
        b0, c0 = cpu_jiffies()[0], children_cpu_s()
        r = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(2, "tuned"),
                           timeout=args.timeout)
        wall = time.time() - t0
        other = ((cpu_jiffies()[0] - b0) / os.sysconf("SC_CLK_TCK") - (children_cpu_s() - c0)) / \
            (wall * os.cpu_count())
        res = dict(impl="program", workload="W1f", n=n, w=w, dtype=dtype, threads=2,
                   malloc="tuned", others_cpu_during=round(max(0.0, other), 3),
                   cpu_busy_before=round(busy, 3), wall_s=round(wall, 2),
                   command=" ".join(cmd[:-2] + ["--out", "DIR"]))
        try:
            with open(os.path.join(out, "training.json")) as f:
                j = json.load(f)
            res.update(median_ms=1e3 * j["epoch_seconds_median"],
                       mean_ms=1e3 * j["train_seconds"] / j["epochs"], epochs=j["epochs"],
                       train_seconds=j["train_seconds"], shape=f"n={n}", reps=j["epochs"])
        except (OSError, KeyError, ValueError):
            res["error"] = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    return res


FIT_LR_BIG = 10.0  # the big n's fit (see find_widths)


def find_widths(args, log):
    """The width training reaches at each n: tapegrad_bench --workload fit trains w with the fused
    op on the benchmark's data (the chapter's function and noise) by full-batch SGD at the
    chapter's step per training point (lr 0.5 at n = 50, i.e. lr = 25 / n: the loss is a sum
    over the n points, so the chapter's lr 0.5 at n = 4000 would jump to w ~ 550 in one step).
    n <= 4000 start at the chapter's w_init 0.8; the big n starts from the largest smaller n's
    width (training it from 0.8 at 1e10 pairs per epoch would dominate the run) with lr
    FIT_LR_BIG: there the loss is so flat in w (12472.6 at w = 11.3, 12449.8 at w = 40) that
    25 / n moves w by about 1e-3 an epoch and "the width training reaches" would be only the
    start. With lr 10, w overshoots to about 75 in one step and settles near 37 in about 60
    epochs (measured: 36.92 after 60, the loss 12449.75 and falling by < 0.01 an epoch)."""
    widths = {}
    ns = sorted(set(args.sweep_sizes) | ({args.big_n} if args.big else set()))
    for n in ns:
        big = n == args.big_n and args.big
        smaller = [m for m in widths if m < n]
        start = widths[max(smaller)] if big and smaller else 0.8
        epochs = args.fit_epochs_big if big else args.fit_epochs
        lr = FIT_LR_BIG if big else 25.0 / n
        cfg = C("tapegrad", "fit", n=n, dtype="float32", w=start, lr=lr, epochs=epochs)
        r = run_one(args, cfg)
        log(r)
        if "error" not in r:
            widths[n] = round(r["w_reached"], 4)
    return widths


# ----------------------------------------------------------------------------- reporting
def find(results, impl, wl, dtype, threads=2, malloc="tuned", **q):
    """The successful result with these fields; keyword fields not given are not compared, but a
    row of the n = 100000 epoch ('big') is only found when asked for by its n."""
    for r in results:
        if (r["impl"], r["workload"], r["dtype"], r["threads"], r.get("malloc", "tuned")) != \
                (impl, wl, dtype, threads, malloc) or "error" in r:
            continue
        if all(r.get(k) == v for k, v in q.items() if v is not None):
            return r
    return None


NOISY = 0.2  # other processes used more than this share of the CPUs during the measurement


def noisy(r):
    return r.get("others_cpu_during", 0) > NOISY


def ms(r, field="median_ms"):
    return (f"{r[field]:.4g}" + (" †" if noisy(r) else "")) if r and field in r else "-"


def mib(r):
    return f"{r['peak_rss_MiB']:.0f}" if r and "peak_rss_MiB" in r else "-"


def ratio(a, b, field="median_ms"):
    return a[field] / b[field] if a and b and field in a and field in b else None


def fmt_ratio(x, digits=3):
    return f"{x:.{digits}g}" if x is not None else "-"


def widths_of(results):
    return {r["n"]: round(r["w_reached"], 4) for r in results
            if r["workload"] == "fit" and "error" not in r}


def w_label(w, widths, n):
    return f"{w:g} (trained)" if widths.get(n) == w and w not in SWEEP_W else f"{w:g}"


def widths_table(results):
    lines = ["| n | started at w | lr | epochs | w reached | loss first -> last epoch | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if r["workload"] == "fit":
            if "error" in r:
                lines.append(f"| {r['n']} | {r['w']:g} | {r['lr']:.3g} | {r['epochs']} | "
                             f"ERROR {r['error'][:60]} | | |")
                continue
            lines.append(f"| {r['n']} | {r['w']:g} | {r['lr']:.3g} | {r['epochs']} | "
                         f"**{r['w_reached']:.4g}** | {r['loss_first']:.5g} -> {r['loss_last']:.5g} | "
                         f"{r['train_seconds']:.3g} |")
    return "\n".join(lines)


def sweep_table(results, n, dt):
    """W1f against w at one n and dtype, every side of the same run."""
    widths = widths_of(results)
    ws = sorted({r["w"] for r in results if r["workload"] in ("W1f", "W1b") and r.get("n") == n
                 and r["dtype"] == dt and r["threads"] == 2})
    lines = ["| w | tapegrad fused ms | tapegrad clang ms | PyTorch plain ms | LibTorch plain ms | "
             "PyTorch chapter ms | **tapegrad / PyTorch plain** | tapegrad / PyTorch plain, as shipped | "
             "tapegrad / LibTorch | clang / gcc |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for w in ws:
        tg = find(results, "tapegrad", "W1f", dt, n=n, w=w)
        cl = find(results, "tapegrad-clang", "W1f", dt, n=n, w=w)
        tb = find(results, "torch", "W1b", dt, n=n, w=w)
        tbd = find(results, "torch", "W1b", dt, malloc="default", n=n, w=w)
        lb = find(results, "libtorch", "W1b", dt, n=n, w=w)
        tw = find(results, "torch", "W1", dt, n=n, w=w)
        if not any((tg, tb)):
            continue
        lines.append(f"| {w_label(w, widths, n)} | {ms(tg)} | {ms(cl)} | {ms(tb)} | {ms(lb)} | "
                     f"{ms(tw)} | **{fmt_ratio(ratio(tg, tb))}** | {fmt_ratio(ratio(tg, tbd))} | "
                     f"{fmt_ratio(ratio(tg, lb))} | {fmt_ratio(ratio(cl, tg))} |")
    return "\n".join(lines)


def softmax_table(results):
    lines = ["| logits | dtype | pass | tapegrad ms | tapegrad clang ms | PyTorch ms | LibTorch ms | "
             "**tapegrad / PyTorch** | tapegrad / PyTorch as shipped | tapegrad / LibTorch | clang / gcc |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for dt in ("float32", "float64"):
        for lg in LOGITS:
            rs = [find(results, i, "W4", dt, logits=lg) for i in ("tapegrad", "tapegrad-clang",
                                                                 "torch", "libtorch")]
            td = find(results, "torch", "W4", dt, malloc="default", logits=lg)
            if not any(rs):
                continue
            g, c, t, l = rs
            label = "N(0, 1)" if lg == "randn" else f"U[-{lg}, 0]"
            for name, f in (("fwd", "fwd_ms_median"), ("fwd+bwd", "median_ms")):
                lines.append(f"| {label} | {dt} | {name} | {ms(g, f)} | {ms(c, f)} | {ms(t, f)} | "
                             f"{ms(l, f)} | **{fmt_ratio(ratio(g, t, f))}** | "
                             f"{fmt_ratio(ratio(g, td, f))} | {fmt_ratio(ratio(g, l, f))} | "
                             f"{fmt_ratio(ratio(c, g, f))} |")
            # tapegrad's backward(std::move(seed)) against the others' backward(G) (no copy there)
            f, m = "median_ms", "moved_ms_median"
            lines.append(f"| {label} | {dt} | fwd+bwd, seed moved in | {ms(g, m)} | {ms(c, m)} | "
                         f"{ms(t, f)} | {ms(l, f)} | **{fmt_ratio(moved_ratio(g, t))}** | "
                         f"{fmt_ratio(moved_ratio(g, td))} | {fmt_ratio(moved_ratio(g, l))} | "
                         f"{fmt_ratio(ratio(c, g, m))} |")
    return "\n".join(lines)


def moved_ratio(g, other):
    """tapegrad's W4 forward+backward with the seed moved in against another side's backward(G)."""
    if not g or not other or "moved_ms_median" not in g or "median_ms" not in other:
        return None
    return g["moved_ms_median"] / other["median_ms"]


def program_table(results):
    lines = ["| n | dtype | w | program ms per epoch | benchmark W1f ms | **program / benchmark** | "
             "program command |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if r["impl"] != "program":
            continue
        b = find(results, "tapegrad", "W1f", r["dtype"], n=r["n"], w=r["w"])
        lines.append(f"| {r['n']} | {r['dtype']} | {r['w']:g} | {ms(r)} | {ms(b)} | "
                     f"**{fmt_ratio(ratio(r, b))}** | `{r.get('command', '')}` |")
    return "\n".join(lines)


def clang_table(results):
    """Every tapegrad benchmark that also ran from the clang build: clang / gcc (issue 14)."""
    lines = ["| workload | parameters | dtype | thr | gcc ms | clang ms | **clang / gcc** |",
             "|---|---|---|---|---|---|---|"]
    for c in results:
        if c["impl"] != "tapegrad-clang" or "error" in c:
            continue
        q = {k: c[k] for k in PARAMS if k in c}
        g = find(results, "tapegrad", c["workload"], c["dtype"], c["threads"], **q)
        par = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in q.items())
        fields = [("", "median_ms")] + ([(" fwd", "fwd_ms_median")] if c["workload"] == "W4" else [])
        for suffix, f in fields:
            lines.append(f"| {c['workload']}{suffix} | {par} | {c['dtype']} | {c['threads']} | "
                         f"{ms(g, f)} | {ms(c, f)} | **{fmt_ratio(ratio(c, g, f))}** |")
    return "\n".join(lines)


def w1_table(results):
    """The first comparison's table: W1 at w = 0.8 against n."""
    lines = ["| n | dtype | thr | tapegrad composed ms | torch W1 ms | **composed / torch** | "
             "tapegrad fused ms | torch W1b ms | torch W1 / fused (x) | torch W1b / fused (x) | "
             "fused pairs/s | peak RSS MiB: tg composed / torch W1 / tg fused / torch W1b |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ns = sorted({r["n"] for r in results if r["workload"] in ("W1", "W1f", "W1b")
                 and r.get("w") == 0.8})
    for dt in ("float32", "float64"):
        for th in sorted({r["threads"] for r in results}):
            for n in ns:
                tc = find(results, "tapegrad", "W1", dt, th, n=n, w=0.8)
                tw = find(results, "torch", "W1", dt, th, n=n, w=0.8)
                tf = find(results, "tapegrad", "W1f", dt, th, n=n, w=0.8)
                tb = find(results, "torch", "W1b", dt, th, n=n, w=0.8)
                if not any((tc, tw, tf, tb)):
                    continue
                pairs = f"{n * (n - 1) / (tf['median_ms'] / 1e3):.3g}" if tf else "-"
                lines.append(
                    f"| {n} | {dt} | {th} | {ms(tc)} | {ms(tw)} | **{fmt_ratio(ratio(tc, tw))}** | "
                    f"{ms(tf)} | {ms(tb)} | {fmt_ratio(ratio(tw, tf))} | {fmt_ratio(ratio(tb, tf))} "
                    f"| {pairs} | {mib(tc)} / {mib(tw)} / {mib(tf)} / {mib(tb)} |")
    return "\n".join(lines)


def other_table(results):
    lines = ["| workload | shape | dtype | thr | tapegrad ms | torch ms | **tapegrad / torch** | "
             "peak RSS MiB tg / torch |", "|---|---|---|---|---|---|---|---|"]
    for dt in ("float32", "float64"):
        for n in sorted({r["n"] for r in results if r["workload"] == "W2"}):
            t = find(results, "torch", "W2", dt, n=n)
            for wl, label in (("W2", "W2 predict, models nadaraya_watson()"),
                              ("W2c", "W2 predict, chapter's composed ops")):
                g = find(results, "tapegrad", wl, dt, n=n)
                if g or t:
                    lines.append(f"| {label} | n_test=n_train={n} | {dt} | 2 | {ms(g)} | "
                                 f"{ms(t)} | **{fmt_ratio(ratio(g, t))}** | {mib(g)} / {mib(t)} |")
        for case in ("vec", "mat"):
            g = find(results, "tapegrad", "W3", dt, case=case)
            t = find(results, "torch", "W3", dt, case=case)
            if g or t:
                shape = (g or t)["shape"]
                lines.append(f"| W3 bmm | {shape} | {dt} | 2 | {ms(g)} | {ms(t)} | "
                             f"**{fmt_ratio(ratio(g, t))}** | {mib(g)} / {mib(t)} |")
    return "\n".join(lines)


def nd_table(results):
    """W5: the fused d-D ops' epoch against PyTorch's plain rewrite, with the loss and dL/dw_1
    of both sides at the same w (float64 must agree to 1e-9, float32 to 2e-3)."""
    lines = ["| task | n | w | dtype | tapegrad ms | clang ms | PyTorch ms | **tapegrad / PyTorch** | "
             "peak RSS MiB tg / torch | loss rel. diff | dL/dw1 rel. diff |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    cases = sorted({(r["n"], r["w"]) for r in results if r["workload"] == "W5"})
    for task in ("regression", "classification"):
        for n, w in cases:
            for dt in ("float32", "float64"):
                g = find(results, "tapegrad", "W5", dt, n=n, w=w, task=task)
                c = find(results, "tapegrad-clang", "W5", dt, n=n, w=w, task=task)
                t = find(results, "torch", "W5", dt, n=n, w=w, task=task)
                if not (g or t):
                    continue
                el = eg = "-"
                if g and t and "loss_at_w_init" in g and "loss_at_w_init" in t:
                    rel = lambda a, b: abs(a - b) / abs(b) if b else abs(a - b)
                    el = f"{rel(g['loss_at_w_init'], t['loss_at_w_init']):.1e}"
                    eg = f"{rel(g['grad_at_w_init'], t['grad_at_w_init']):.1e}"
                lines.append(f"| {task} | {n} | {w:g} | {dt} | {ms(g)} | {ms(c)} | {ms(t)} | "
                             f"**{fmt_ratio(ratio(g, t))}** | {mib(g)} / {mib(t)} | {el} | {eg} |")
    return "\n".join(lines)


def baseline_table(results):
    """Issue 8: "nothing gets slower". The first comparison's same-run ratios (tapegrad / PyTorch,
    bench/baseline_issue4.json, taken from docs/performance.md of that run) beside this run's."""
    try:
        with open(os.path.join(HERE, "baseline_issue4.json")) as f:
            base = json.load(f)
    except (OSError, ValueError):
        return "(bench/baseline_issue4.json not found)"
    against = {"W1": "W1", "W1f": "W1b", "W2": "W2", "W2c": "W2", "W3": "W3", "W4": "W4"}
    lines = ["| benchmark | shape | dtype | thr | then tapegrad ms | then PyTorch ms | **then ratio** | "
             "now tapegrad ms | now PyTorch ms | **now ratio** | now / then |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in base["rows"]:
        q = {k: b[k] for k in ("n", "case", "logits") if k in b}
        if b["workload"] in ("W1", "W1f"):
            q["w"] = 0.8
        f = b.get("field", "median_ms")
        g = find(results, "tapegrad", b["workload"], b["dtype"], b["threads"], **q)
        t = find(results, "torch", against[b["workload"]], b["dtype"], b["threads"], **q)
        if not (g and t):
            continue
        then, now = b["tapegrad_ms"] / b["torch_ms"], ratio(g, t, f)
        shape = q.get("n", q.get("case", ""))
        lines.append(f"| {b['bench']} | {shape} | {b['dtype']} | {b['threads']} | {b['tapegrad_ms']:.4g} | "
                     f"{b['torch_ms']:.4g} | **{then:.3g}** | {ms(g, f)} | {ms(t, f)} | "
                     f"**{fmt_ratio(now)}** | {fmt_ratio(now / then)} |")
    return "\n".join(lines)


def raw_table(results):
    lines = ["| impl | malloc | workload | parameters | dtype | thr | median ms | p10-p90 ms | reps | "
             "fwd ms | peak RSS MiB | others' CPU during |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        par = ", ".join(f"{k}={r[k]:g}" if isinstance(r[k], float) else f"{k}={r[k]}"
                        for k in PARAMS if k in r)
        head = f"| {r['impl']} | {r.get('malloc', '')} | {r['workload']} | {par} | {r['dtype']} | " \
               f"{r['threads']} |"
        if "error" in r:
            lines.append(f"{head} ERROR: {r['error'][:80]} | | | | | |")
            continue
        fwd = f"{r['fwd_ms_median']:.4g}" if "fwd_ms_median" in r else ""
        spread = f"{r['p10_ms']:.4g}-{r['p90_ms']:.4g}" if "p10_ms" in r else ""
        lines.append(f"{head} {r['median_ms']:.4g} | {spread} | {r.get('reps', '')} | {fwd} | "
                     f"{mib(r)} | {100 * r.get('others_cpu_during', 0):.0f}%"
                     f"{' †' if noisy(r) else ''} |")
    return "\n".join(lines)


def cross_check(results):
    """Loss and dL/dw at the benchmark's w: tapegrad W1 / W1f and LibTorch W1b against PyTorch's
    W1 (chapter) or W1b on the same data. float64 must agree to 1e-9. In float32 the sums over
    n (n - 1) terms round differently on every side, so a float32 row passes when it is within
    2e-3 of PyTorch or no further from PyTorch's float64 result than 2x PyTorch's own float32 error."""
    lines = ["| n | w | dtype | side | against | loss rel. diff | dL/dw rel. diff | "
             "dL/dw error vs float64: side / PyTorch | ok |", "|---|---|---|---|---|---|---|---|---|"]
    all_ok = True

    def rel(a, b):
        return abs(a - b) / abs(b) if b else abs(a - b)

    for r in results:
        if r["impl"] != "torch" or r["workload"] not in ("W1", "W1b") or "error" in r or \
                r["threads"] != 2 or r.get("malloc") != "tuned":
            continue
        sides = [("tapegrad", "W1"), ("tapegrad", "W1f")] if r["workload"] == "W1" else \
            [("libtorch", "W1b")] + ([] if find(results, "torch", "W1", r["dtype"], n=r["n"], w=r["w"])
                                     else [("tapegrad", "W1f")])
        truth = find(results, "torch", r["workload"], "float64", n=r["n"], w=r["w"])
        for impl, wl in sides:
            g = find(results, impl, wl, r["dtype"], n=r["n"], w=r["w"])
            if not g or "loss_at_w_init" not in g:
                continue
            el = rel(g["loss_at_w_init"], r["loss_at_w_init"])
            eg = rel(g["grad_at_w_init"], r["grad_at_w_init"])
            vs = "-"
            if r["dtype"] == "float64":
                ok = el < 1e-9 and eg < 1e-9
            else:
                ok = el < 2e-3 and eg < 2e-3
                if truth:
                    gt = truth["grad_at_w_init"]
                    es, et = rel(g["grad_at_w_init"], gt), rel(r["grad_at_w_init"], gt)
                    vs = f"{es:.1e} / {et:.1e}"
                    ok = ok or (el < 2e-3 and es <= max(2e-3, 2 * et))
            all_ok &= ok
            side = {"W1": "tapegrad composed", "W1f": "tapegrad fused", "W1b": "LibTorch plain"}[wl]
            lines.append(f"| {r['n']} | {r['w']:g} | {r['dtype']} | {side} | PyTorch {r['workload']} | "
                         f"{el:.1e} | {eg:.1e} | {vs} | {'ok' if ok else 'FAIL'} |")
    return "\n".join(lines), all_ok


def verdicts():
    """(out, line): line(ok, text, *rows) appends one verdict to the list out, flagged † when a
    row behind it was measured while other processes loaded the CPUs."""
    out = []

    def line(ok, text, *rows):
        flag = " († contaminated measurement)" if any(r and noisy(r) for r in rows) else ""
        out.append(f"- {'met' if ok else '**MISSED**'}: {text}{flag}")

    return out, line


def targets_issue13(results):
    """Issue 13: the fused epoch against w, n = 100000, softmax by logit range, the program."""
    out, line = verdicts()
    for dt in ("float32", "float64"):
        rows = sorted((r for r in results if r["impl"] == "tapegrad" and r["workload"] == "W1f"
                       and r.get("n") == 4000 and r["dtype"] == dt and r["threads"] == 2
                       and "error" not in r and r["w"] >= 2), key=lambda r: r["w"])
        if len(rows) >= 2:
            worst = max(rows[i + 1]["median_ms"] / rows[i]["median_ms"] for i in range(len(rows) - 1))
            seq = ", ".join(f"{r['w']:g}: {r['median_ms']:.3g}" for r in rows)
            line(worst <= 1.1, f"fused epoch n=4000 {dt} non-increasing in w from w = 2 (10% noise "
                 f"allowed): largest step up x{worst:.3g} (ms by w: {seq})", *rows)
    g = find(results, "tapegrad", "W1f", "float32", n=4000, w=50)
    t = find(results, "torch", "W1b", "float32", n=4000, w=50)
    x = ratio(t, g)
    if x is not None:
        line(x >= 10, f"fused epoch n=4000 w=50 float32: {x:.3g}x faster than PyTorch's plain "
             f"rewrite (target >= 10x)", g, t)
    for r in results:
        if r["workload"] == "W1f" and r.get("big") and r["impl"] == "tapegrad":
            if "error" in r:
                line(False, f"fused epoch n={r['n']} {r['dtype']}: {r['error']}")
            elif r["dtype"] == "float32":
                line(r["median_ms"] < 500, f"fused epoch n={r['n']} float32 at the trained width "
                     f"w = {r['w']:g}: {r['median_ms'] / 1e3:.3g} s (target < 0.5 s)", r)
    for dt in ("float32", "float64"):
        for lg in LOGITS[1:]:
            g, t = find(results, "tapegrad", "W4", dt, logits=lg), find(results, "torch", "W4", dt, logits=lg)
            for name, x in (("fwd", ratio(g, t, "fwd_ms_median")),
                            ("fwd+bwd, seed moved in", moved_ratio(g, t)),
                            ("fwd+bwd, lvalue seed (copied)", ratio(g, t))):
                if x is not None and dt == "float32":
                    line(x <= 1.0, f"softmax (4000,4000) {dt} U[-{lg}, 0] {name}: tapegrad/PyTorch = "
                         f"{x:.3g} (target <= 1)", g, t)
    for r in results:
        if r["impl"] == "program" and "error" not in r:
            b = find(results, "tapegrad", "W1f", r["dtype"], n=r["n"], w=r["w"])
            x = ratio(r, b)
            if x is not None:
                line(1 / 1.2 <= x <= 1.2, f"program's epoch n={r['n']} {r['dtype']} w={r['w']:g}: "
                     f"{r['median_ms']:.3g} ms vs benchmark W1f {b['median_ms']:.3g} ms, ratio {x:.3g} "
                     f"(target within 1.2x)", r, b)
    return out


def targets_issue14(results):
    """Issue 14: clang within 1.3x of gcc on every benchmark."""
    out, line = verdicts()
    worst = []
    for c in results:
        if c["impl"] == "tapegrad-clang" and "error" not in c:
            q = {k: c[k] for k in PARAMS if k in c}
            g = find(results, "tapegrad", c["workload"], c["dtype"], c["threads"], **q)
            x = ratio(c, g)
            if x is not None:
                worst.append((x, c, g))
    if worst:
        worst.sort(key=lambda e: -e[0])
        bad = [e for e in worst if e[0] > 1.3]
        x, c, g = worst[0]
        par = ", ".join(f"{k}={c[k]}" for k in PARAMS if k in c)
        line(not bad, f"clang/gcc <= 1.3 on every benchmark: {len(bad)} of {len(worst)} above; worst "
             f"{x:.3g} ({c['workload']} {par} {c['dtype']})", c, g)
    return out


def targets_issue4(results):
    """The first comparison's targets (issue #4, issue 8's "nothing gets slower"), at w = 0.8."""
    out, line = verdicts()
    for dt in ("float32", "float64"):
        for n in (1000, 4000):
            g, t = find(results, "tapegrad", "W1", dt, n=n, w=0.8), find(results, "torch", "W1", dt, n=n, w=0.8)
            x = ratio(g, t)
            if x is not None:
                line(x <= 1.0, f"W1 composed n={n} {dt}: tapegrad/torch = {x:.3g} (target <= 1)", g, t)
        for n in sorted({r["n"] for r in results if r["workload"] == "W2"}):
            for wl in ("W2", "W2c"):
                g, t = find(results, "tapegrad", wl, dt, n=n), find(results, "torch", "W2", dt, n=n)
                x = ratio(g, t)
                if x is not None:
                    what = "nadaraya_watson()" if wl == "W2" else "chapter's composed ops"
                    line(x <= 1.0, f"W2 {what} n={n} {dt}: tapegrad/torch = {x:.3g} (target <= 1)", g, t)
        for case in ("vec", "mat"):
            g, t = find(results, "tapegrad", "W3", dt, case=case), find(results, "torch", "W3", dt, case=case)
            x = ratio(g, t)
            if x is not None:
                line(x <= 1.0, f"W3 bmm {case} {dt}: tapegrad/torch = {x:.3g} (target <= 1)", g, t)
        g, t = find(results, "tapegrad", "W4", dt, logits="randn"), find(results, "torch", "W4", dt, logits="randn")
        for name, f in (("fwd", "fwd_ms_median"), ("fwd+bwd", "median_ms")):
            x = ratio(g, t, f)
            if x is not None:
                line(x <= 1.0, f"W4 softmax N(0,1) {name} {dt}: tapegrad/torch = {x:.3g} (target <= 1)", g, t)
        for thr in (1, 2):
            g, t = find(results, "tapegrad", "W1", dt, thr, n=50, w=0.8), find(results, "torch", "W1", dt, thr, n=50, w=0.8)
            x = ratio(g, t)
            if x is not None:
                line(x < 1.0, f"W1 n=50 composed {dt} {thr} thr: tapegrad/torch = {x:.3g} (target < 1)", g, t)
        f = find(results, "tapegrad", "W1f", dt, n=4000, w=0.8)
        if f:
            ps = 4000 * 3999 / (f["median_ms"] / 1e3)
            goal = 2e9 if dt == "float32" else 0.9e9
            line(ps >= goal, f"fused W1 n=4000 w=0.8 {dt}: {ps:.3g} pairs/s (target >= {goal:.2g})", f)
            f1 = find(results, "tapegrad", "W1f", dt, 1, n=4000, w=0.8)
            if f1:
                s = f1["median_ms"] / f["median_ms"]
                line(s >= 1.8, f"fused W1 n=4000 w=0.8 {dt}: 2-thread speedup {s:.3g}x (target >= 1.8x)", f, f1)
    for dt in ("float32", "float64"):
        fs = sorted((r for r in results if r["impl"] == "tapegrad" and r["workload"] == "W1f"
                     and r["dtype"] == dt and "error" not in r), key=lambda r: r["n"])
        if len(fs) >= 2 and fs[-1]["n"] > fs[0]["n"]:
            lo, hi = fs[0], fs[-1]
            per_point = (hi["peak_rss_MiB"] - lo["peak_rss_MiB"]) * 2 ** 20 / (hi["n"] - lo["n"])
            line(per_point < 200,
                 f"fused memory O(n) {dt}: peak RSS {lo['peak_rss_MiB']:.1f} MiB at n={lo['n']} -> "
                 f"{hi['peak_rss_MiB']:.1f} MiB at n={hi['n']}, {per_point:.0f} bytes per extra point")
    return out


def targets(results):
    """The issues' targets, each met or MISSED with the measured number."""
    return "\n".join(targets_issue13(results) + targets_issue14(results) + targets_issue4(results))


def sweep_dat(results, path, n=4000):
    """perf_vs_w.dat: w, then tapegrad fused float32, float64, PyTorch plain float32, float64,
    LibTorch plain float32, float64 (median ms, '?' = not run), n = 4000, 2 threads."""
    cols = [(i, wl, dt) for i, wl in (("tapegrad", "W1f"), ("torch", "W1b"), ("libtorch", "W1b"))
            for dt in ("float32", "float64")]
    ws = sorted({r["w"] for r in results if r["workload"] == "W1f" and r.get("n") == n
                 and r["threads"] == 2 and "error" not in r})
    with open(path, "w") as f:
        f.write(f"# W1 epoch at fixed w, n = {n}, 2 threads: w, median ms of " +
                ", ".join(f"{i} {wl} {dt}" for i, wl, dt in cols) + "\n")
        for w in ws:
            rs = [find(results, i, wl, dt, n=n, w=w) for i, wl, dt in cols]
            f.write(" ".join([f"{w:g}"] + [f"{r['median_ms']:.6g}" if r else "?" for r in rs]) + "\n")


def scaling_dat(results, path, dtype="float32", threads=2):
    cols = [("tapegrad", "W1"), ("torch", "W1"), ("tapegrad", "W1f"), ("torch", "W1b")]
    ns = sorted({r["n"] for r in results if r["workload"] in ("W1", "W1f", "W1b")
                 and r["dtype"] == dtype and r["threads"] == threads and r.get("w") == 0.8})
    with open(path, "w") as f:
        f.write(f"# W1 epoch at w = 0.8, {dtype}, {threads} threads. columns: n, median ms of "
                "tapegrad composed, torch W1, tapegrad fused, torch W1b, then their peak RSS MiB "
                "('?' = not run)\n")
        for n in ns:
            rs = [find(results, i, w, dtype, threads, n=n, w=0.8) for i, w in cols]
            t = [f"{r['median_ms']:.6g}" if r else "?" for r in rs]
            m = [f"{r['peak_rss_MiB']:.6g}" if r else "?" for r in rs]
            f.write(" ".join([str(n)] + t + m) + "\n")


def machine_info(python):
    info = {"platform": platform.platform()}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L2 cache", "L3 cache",
                             "Hypervisor vendor"):
                info[k.strip()] = v.strip()
        with open("/proc/meminfo") as f:
            info["MemTotal"] = f.readline().split(":")[1].strip()
        for cc in ("g++", "clang++"):
            r = subprocess.run([cc, "--version"], capture_output=True, text=True)
            info[cc] = (r.stdout.splitlines() or ["?"])[0]
    except OSError:
        pass
    if python:
        r = subprocess.run([python, "-c", "import torch, numpy; print(torch.__version__, "
                            "numpy.__version__)"], capture_output=True, text=True)
        info["torch"], info["numpy"] = (r.stdout.split() + ["?", "?"])[:2]
    return info


def report(results, info, outdir, stamp):
    xc, xc_ok = cross_check(results)
    sweeps = []
    swept = {r["n"] for r in results if r["workload"] in ("W1f", "W1b") and not r.get("big")
             and r.get("w") != 0.8}
    for n in sorted(swept, reverse=True):
        for dt in ("float32", "float64"):
            t = sweep_table(results, n, dt)
            if t.count("\n") > 1:
                sweeps += [f"#### Fused epoch against w: n = {n}, {dt}, 2 threads (median ms)", t]
    text = "\n\n".join([
        f"Run `{stamp}`. Machine: {info.get('Model name')}, {info.get('CPU(s)')} CPUs, "
        f"{info.get('MemTotal')}; {info.get('g++')}; {info.get('clang++')}; "
        f"torch {info.get('torch', 'n/a')}, numpy {info.get('numpy', 'n/a')}.",
        f"† = other processes used more than {100 * NOISY:.0f}% of the CPUs while this row was "
        "measured (shared machine); treat it with care.",
        "### Targets (2 threads unless stated)",
        targets(results),
        "### The width training reaches (tapegrad_bench --workload fit, float32, fused op)",
        widths_table(results),
        *sweeps,
        "![epoch time against w](perf_vs_w.png)",
        "### Softmax (4000, 4000) along dim 1 by logit range, 2 threads (median ms)",
        softmax_table(results),
        "### The program's own epoch against the benchmark's (n = 4000, w held fixed)",
        program_table(results),
        "### clang / gcc, every tapegrad benchmark of the run",
        clang_table(results),
        "### W1 at w = 0.8 against n (the first comparison; medians, ms; ratio < 1: tapegrad faster)",
        w1_table(results),
        "![W1 scaling](perf_scaling.png)",
        "### W5: d = 2 training epoch, fused d-D ops against PyTorch's plain rewrite "
        "(leave-one-out, per-coordinate w = (w, w), 2 threads, medians, ms)",
        nd_table(results),
        "### W2 prediction, W3 bmm (2 threads, medians, ms)",
        other_table(results),
        "### Against the first comparison (run 20261123-013051): same-run ratios then and now "
        "(now / then > 1: tapegrad lost ground against PyTorch)",
        baseline_table(results),
        "### Cross-check: loss and dL/dw at the benchmark's w (same data)",
        xc + ("" if xc_ok else "\n\n**CROSS-CHECK FAILED**"),
        "### Every process (median, p10-p90, reps, peak RSS)",
        raw_table(results),
    ])
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write(text + "\n")
    return text, xc_ok


BEGIN = "<!-- BEGIN GENERATED by bench/run.py --update-doc: do not edit by hand -->"
END = "<!-- END GENERATED -->"


def update_doc(doc, text, outdir):
    """Replaces the generated block of docs/performance.md with this run's tables and copies the
    plots next to it; the prose outside the markers stays as written."""
    with open(doc) as f:
        old = f.read()
    if BEGIN not in old or END not in old:
        sys.exit(f"{doc}: no {BEGIN} ... {END} block to replace")
    head, rest = old.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    # headings of table.md are ###, one level below the doc's "## Results"
    with open(doc, "w") as f:
        f.write(head + BEGIN + "\n\n" + text.replace("\n### ", "\n### ") + "\n\n" + END + tail)
    import shutil
    for png in ("perf_vs_w.png", "perf_scaling.png"):
        src = os.path.join(outdir, png)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(os.path.dirname(os.path.abspath(doc)), png))
    print(f"# updated {doc} and its plots from {outdir}")


# ----------------------------------------------------------------------------- main
def settings(args):
    if args.quick:
        args.sweep_sizes, args.chapter_sizes, args.sweep_w = [4000], [], [0.8, 5, 50]
        args.logits, args.dtypes = ["randn", "300"], ["float32", "float64"]
        args.sizes, args.predict_sizes, args.classic_dtypes = [50], [1000], ["float32"]
        args.big, args.big_dtypes, args.fit_epochs, args.fit_epochs_big = True, ["float32"], 30, 20
        args.program_epochs = 10
        args.nd_sizes = [1000]
        args.min_time, args.min_reps, args.max_time, args.warmup = 0.2, 3, 3.0, 1
    else:
        args.sweep_sizes, args.chapter_sizes, args.sweep_w = [4000, 1000], [4000, 1000], SWEEP_W
        args.logits, args.dtypes = LOGITS, ["float32", "float64"]
        args.sizes, args.predict_sizes = [50, 1000, 4000, 8000], [1000, 10000]
        args.classic_dtypes = args.dtypes
        args.big, args.big_dtypes, args.fit_epochs, args.fit_epochs_big = True, ["float32"], 100, 60
        args.program_epochs = 30
        args.nd_sizes = [1000, 4000]
        args.min_time, args.min_reps, args.max_time, args.warmup = 0.7, 5, 10.0, 1
    args.big_n = 100000


def available(args, cfg):
    impl = cfg["impl"]
    return {"torch": bool(args.python), "tapegrad": True, "tapegrad-clang": bool(args.bin_clang),
            "libtorch": bool(args.libtorch_bin)}[impl] and \
        (not args.only or cfg["workload"] in args.only)


def run_all(args, info, outdir):
    """Every stage of the run (see the module's docstring); returns the results, also written to
    outdir/results.jsonl as they come."""
    results = []
    with open(os.path.join(outdir, "machine.json"), "w") as f:
        json.dump(info, f, indent=1)
    t_start = time.time()
    jsonl = open(os.path.join(outdir, "results.jsonl"), "w")
    count = [0]

    def log(r):
        results.append(r)
        jsonl.write(json.dumps(r) + "\n")
        jsonl.flush()
        count[0] += 1
        par = " ".join(f"{k}={r[k]:g}" if isinstance(r[k], float) else f"{k}={r[k]}"
                       for k in PARAMS if k in r)
        what = f"{r['impl']:14s} {r['workload']:4s} {par} {r['dtype']} {r['threads']}thr" + \
            ("" if r.get("malloc", "tuned") == "tuned" else " default-malloc")
        if "error" in r:
            print(f"[{count[0]}] {what}: ERROR {r['error']}", flush=True)
        elif r["workload"] == "fit":
            print(f"[{count[0]}] {what}: w reached {r['w_reached']:.5g} in {r['train_seconds']:.3g} s",
                  flush=True)
        else:
            print(f"[{count[0]}] {what}: median {r['median_ms']:.4g} ms ({r.get('reps')} reps), "
                  f"others' CPU {100 * r['others_cpu_during']:.0f}%  [{time.time() - t_start:.0f} s]",
                  flush=True)

    print(f"# results in {outdir}", flush=True)
    widths = find_widths(args, log) if not args.only or "W1f" in args.only else {}
    cfgs = [c for c in (*sweep_configs(args, widths), *softmax_configs(args),
                        *classic_configs(args), *nd_configs(args), *big_configs(args, widths))
            if available(args, c)]
    print(f"# widths {widths}; {len(cfgs)} processes", flush=True)
    for cfg in cfgs:
        log(run_one(args, cfg))
    if args.program and 4000 in widths and (not args.only or "W1f" in args.only):
        for dt in args.dtypes:
            log(run_program(args, 4000, widths[4000], dt, args.program_epochs))
    jsonl.close()
    print(f"# done in {time.time() - t_start:.0f} s", flush=True)
    return results


def plots(args, results, outdir):
    """The data files and, with gnuplot, perf_scaling.png and perf_vs_w.png."""
    scaling_dat(results, os.path.join(outdir, "scaling.dat"), threads=args.plot_threads)
    sweep_dat(results, os.path.join(outdir, "perf_vs_w.dat"))
    for gp, dat, png, label in (
            ("plot_scaling.gp", "scaling.dat", "perf_scaling.png", f"float32, {args.plot_threads} thread(s)"),
            ("plot_vs_w.gp", "perf_vs_w.dat", "perf_vs_w.png", "n = 4000, 2 threads")):
        try:
            subprocess.run(["gnuplot", "-e", f"datafile='{os.path.join(outdir, dat)}'; "
                            f"outfile='{os.path.join(outdir, png)}'; label='{label}'",
                            os.path.join(HERE, gp)], check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"# plot {png} skipped: {e}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path of tapegrad_bench (gcc build)")
    ap.add_argument("--bin-clang", default=None, help="tapegrad_bench built by clang (optional)")
    ap.add_argument("--libtorch-bin", default=None, help="bench/libtorch's libtorch_bench (optional)")
    ap.add_argument("--program", default=None,
                    help="examples' nadaraya_watson (gcc build), for its own per-epoch time")
    ap.add_argument("--python", default=None, help="a Python with torch; omit to skip PyTorch")
    ap.add_argument("--quick", action="store_true", help="fewer sizes, widths and reps (< 5 min)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--idle-wait", type=float, default=5.0,
                    help="max seconds to wait for idle CPUs before each process")
    ap.add_argument("--timeout", type=float, default=600.0, help="per process, seconds")
    ap.add_argument("--plot-threads", type=int, default=2, help="thread count the plots show")
    ap.add_argument("--report-only", help="re-make the report from an existing results.jsonl")
    ap.add_argument("--only", nargs="+", default=None, metavar="WORKLOAD",
                    help="run only these workloads (W1 W1f W1b W2 W2c W3 W4 W5), e.g. after a change")
    ap.add_argument("--update-doc", nargs="?", const=os.path.join(HERE, "..", "docs", "performance.md"),
                    default=None, metavar="DOC",
                    help="after the run, replace DOC's generated block (default docs/performance.md) "
                         "with the tables and copy the plots into docs/ (refused with --quick)")
    args = ap.parse_args()
    if args.update_doc and (args.quick or args.only):
        sys.exit("--update-doc: refused for a --quick or --only run (the docs get one whole run)")
    settings(args)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    if args.report_only:  # the report names the run it comes from
        stamp = os.path.basename(os.path.dirname(os.path.abspath(args.report_only))) or stamp
    outdir = os.path.join(args.out, stamp)
    os.makedirs(outdir, exist_ok=True)
    info = machine_info(args.python)
    results = []
    if args.report_only:
        with open(args.report_only) as f:
            results = [json.loads(line) for line in f if line.strip()]
    else:
        results = run_all(args, info, outdir)
    text, xc_ok = report(results, info, outdir, stamp)
    plots(args, results, outdir)
    print()
    print(text)
    print(f"\n# raw JSON: {os.path.join(outdir, 'results.jsonl')}; tables: table.md; plots: "
          "perf_vs_w.png, perf_scaling.png")
    if args.update_doc:
        update_doc(args.update_doc, text, outdir)
    sys.exit(0 if xc_ok else 1)


if __name__ == "__main__":
    main()
