#!/usr/bin/env python3
"""Driver of the tapegrad vs PyTorch / LibTorch comparison (docs/performance.md).  Normally
started by `bash bench/run.sh [--quick] [--update-doc]`, which builds tapegrad_bench (gcc and clang),
libtorch_bench and nadaraya_watson, and finds a Python with torch; the report (tables, targets,
cross-check, the docs' generated parts) is bench/report.py's.

Stages, in order:
  1. widths: tapegrad_bench --workload fit trains w at each benchmark n (the width training reaches);
  2. W1f against w (0.8 ... 200 and the trained width), each width with tapegrad (gcc, clang),
     PyTorch's plain rewrite (W1b; also with glibc's default malloc at some widths), LibTorch's,
     and PyTorch's chapter formulation (W1) back to back;
  3. W4 softmax by logit range (N(0, 1), U[-1, 0], U[-30, 0], U[-300, 0]), every side;
  4. the composed-ops workloads at w = 0.8 (W1 composed against n, W2, W3, 1 thread);
  5. W5: a d = 2 epoch through the fused d-D ops (regression, cross-entropy) against PyTorch;
  6. n = 100000: one fused epoch at the trained width;
  7. examples' nadaraya_watson: its own epochs at the trained width (3 runs per dtype, each just
     after a W1f process at the same width: its median epoch against that W1f's, and its first
     epochs against its median).
  8. examples' nadaraya_watson classifying n = 5000 points of 2 and of 1000 classes, --epochs 0,
     figures included (3 runs each): the class count's cost.
Every configuration runs in a fresh process with OMP_NUM_THREADS = OPENBLAS_NUM_THREADS =
MKL_NUM_THREADS = threads, one at a time.  Before each process the driver waits (bounded) for idle
CPUs and records how busy they were, because this machine may be shared.

Output, in bench/results/<timestamp>[-quick]/:
  results.jsonl   one JSON object per process (raw numbers: median/p10/p90/min ms, reps,
                  peak RSS, losses for the cross-check, threads seen, others' CPU share)
  table.md        the markdown tables, targets and cross-check printed at the end
  perf_vs_w.dat, scaling.dat and the plots perf_vs_w.png, perf_scaling.png (gnuplot)
  machine.json    the machine (CPU model, cores, vector ISA, memory, compilers, libraries)
With --update-doc, the headline replaces the generated block of docs/performance.md, the tables
rewrite its appendix docs/performance_detail.md, and the plots are copied into docs/.
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

from report import (LOGITS, PARAMS, SWEEP_W, detail, headline, scaling_dat, sweep_dat,
                    update_doc)

HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------------------- configurations
# The widths of the W1f sweep (report.SWEEP_W) run from the chapter's w_init 0.8 to attention so
# sharp that almost every weight underflows; "trained" (the width training reaches) is added per n.


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
    """The composed-ops workloads at w = 0.8 (W1 against n, W2, W3), 2 threads, minus what the
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
    """W5: one d = 2 training epoch through the fused d-D ops, regression and the
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
        # Both sides allocate fresh (n, n) buffers in every op; glibc would serve them with mmap
        # and return them with munmap, so every epoch would page-fault its whole working set
        # again and time the hypervisor, not the arithmetic (docs/performance.md, "Memory and the
        # allocator"). Freed memory stays in the heap, the same for every side, as
        # examples/nadaraya_watson sets it with mallopt; malloc "default" rows run with glibc's
        # defaults: PyTorch as `python3` ships.
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


def run_timed(args, cmd):
    """Runs a program (2 threads, the tuned allocator) once the CPUs are idle: the completed
    process, its wall time in s, and the row's fields on the machine's load."""
    busy, waited = wait_idle(args.idle_wait)
    t0 = time.time()
    b0, c0 = cpu_jiffies()[0], children_cpu_s()
    r = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(2, "tuned"),
                       timeout=args.timeout)
    wall = time.time() - t0
    other = ((cpu_jiffies()[0] - b0) / os.sysconf("SC_CLK_TCK") - (children_cpu_s() - c0)) / \
        (wall * os.cpu_count())
    return r, wall, dict(others_cpu_during=round(max(0.0, other), 3),
                         cpu_busy_before=round(busy, 3), wall_s=round(wall, 2))


def run_program(args, n, w, dtype, epochs, run):
    """examples/nadaraya_watson's own training loop at width w held fixed (--lr 0), --impl fused,
    in the default environment (no OpenMP binding variables added): its epoch_seconds from
    training.json. median_ms is their median, as the benchmark takes the median of its
    repetitions; first5_ms the mean of the first 5, where threads that start on one core show."""
    import tempfile
    with tempfile.TemporaryDirectory() as out:
        cmd = [args.program, "--n-train", str(n), "--epochs", str(epochs), "--lr", "0",
               "--w-init", repr(w), "--impl", "fused", "--dtype", dtype, "--threads", "2",
               "--no-plots", "--out", out]
        r, _, load = run_timed(args, cmd)
        res = dict(impl="program", workload="W1f", n=n, w=w, dtype=dtype, threads=2,
                   malloc="tuned", run=run, command=" ".join(cmd[:-2] + ["--out", "DIR"]), **load)
        try:
            with open(os.path.join(out, "training.json")) as f:
                j = json.load(f)
            e = [1e3 * x for x in j["epoch_seconds"]]
            res.update(median_ms=1e3 * j["epoch_seconds_median"], epoch_ms=[round(x, 4) for x in e],
                       first5_ms=sum(e[:5]) / len(e[:5]), epochs=len(e), shape=f"n={n}", reps=len(e))
        except (OSError, KeyError, ValueError, ZeroDivisionError):
            res["error"] = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    return res


CLASSES_N = 5000  # the classification program's points (run_program_classes)


def run_program_classes(args, classes, run):
    """examples/nadaraya_watson --task classification --epochs 0 --dtype float64 on CLASSES_N
    points of d = 1 (x uniform in [0, 5), the same for every class count; label i % classes),
    figures included, as a user runs it: the whole process's wall time (median_ms). Class count
    should cost O(n C) on top of O(n^2), not O(n^2 C)."""
    import random
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "train.csv"), os.path.join(tmp, "out")
        rng = random.Random(20)
        with open(data, "w") as f:
            f.write("x,y\n" + "".join(f"{5 * rng.random():.9g},{i % classes}\n"
                                        for i in range(CLASSES_N)))
        cmd = [args.program, "--task", "classification", "--epochs", "0", "--dtype", "float64",
               "--threads", "2", "--quiet", "--train", data, "--out", out]
        r, wall, load = run_timed(args, cmd)
        res = dict(impl="program-classes", workload="classes", n=CLASSES_N, classes=classes,
                   dtype="float64", threads=2, malloc="tuned", run=run,
                   median_ms=round(1e3 * wall, 1), reps=1,
                   figures=os.path.exists(os.path.join(out, "probabilities_parametric.png")),
                   command=" ".join(cmd[:-4] + ["--train", "CSV", "--out", "DIR"]), **load)
        if r.returncode != 0:
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
    FIT_LR_BIG: its loss is so flat in w that 25 / n would move w by about 1e-3 an epoch and
    "the width training reaches" would be only the start; with lr 10 it settles within the
    epochs given (the appendix's widths table shows the loss of the first and last epoch)."""
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


def machine_info(python):
    """The machine the run measures: lscpu's CPU model, counts and caches, the vector ISA, memory,
    compilers, torch and numpy, and any OpenMP / tapegrad variable set in the environment."""
    info = {"platform": platform.platform()}
    wanted = ("Model name", "Vendor ID", "CPU family", "Model", "CPU(s)", "Core(s) per socket",
              "Socket(s)", "Thread(s) per core", "L2 cache", "L3 cache", "Hypervisor vendor")
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in wanted:
                info[k.strip()] = v.strip()
            elif k.strip() == "Flags":
                flags = v.split()
                info["vector ISA"] = "AVX-512" if "avx512f" in flags else \
                    "AVX2" if "avx2" in flags else "no AVX2"
        with open("/proc/meminfo") as f:
            info["MemTotal"] = f.readline().split(":")[1].strip()
        for cc in ("g++", "clang++"):
            r = subprocess.run([cc, "--version"], capture_output=True, text=True)
            info[cc] = (r.stdout.splitlines() or ["?"])[0]
    except OSError:
        pass
    info["environment"] = {k: v for k, v in os.environ.items()
                           if k.startswith(("OMP_", "GOMP_", "KMP_", "TAPEGRAD_"))}
    if python:
        r = subprocess.run([python, "-c", "import torch, numpy; print(torch.__version__, "
                            "numpy.__version__)"], capture_output=True, text=True)
        info["torch"], info["numpy"] = (r.stdout.split() + ["?", "?"])[:2]
    return info


# ----------------------------------------------------------------------------- main
def settings(args):
    """The sizes, widths and repetitions of a full run or a --quick one."""
    if args.quick:
        args.sweep_sizes, args.chapter_sizes, args.sweep_w = [4000], [], [0.8, 5, 50]
        args.logits, args.dtypes = ["randn", "300"], ["float32", "float64"]
        args.sizes, args.predict_sizes, args.classic_dtypes = [50], [1000], ["float32"]
        args.big, args.big_dtypes, args.fit_epochs, args.fit_epochs_big = True, ["float32"], 30, 20
        args.program_epochs, args.program_runs = 10, 3
        args.nd_sizes = [1000]
        args.min_time, args.min_reps, args.max_time, args.warmup = 0.2, 3, 3.0, 1
    else:
        args.sweep_sizes, args.chapter_sizes, args.sweep_w = [4000, 1000], [4000, 1000], SWEEP_W
        args.logits, args.dtypes = LOGITS, ["float32", "float64"]
        args.sizes, args.predict_sizes = [50, 1000, 4000, 8000], [1000, 10000]
        args.classic_dtypes = args.dtypes
        args.big, args.big_dtypes, args.fit_epochs, args.fit_epochs_big = True, ["float32"], 100, 60
        args.program_epochs, args.program_runs = 30, 3
        args.nd_sizes = [1000, 4000]
        args.min_time, args.min_reps, args.max_time, args.warmup = 0.7, 5, 10.0, 1
    args.big_n = 100000


def available(args, cfg):
    impl = cfg["impl"]
    return {"torch": bool(args.python), "tapegrad": True, "tapegrad-clang": bool(args.bin_clang),
            "libtorch": bool(args.libtorch_bin)}[impl] and \
        (not args.only or cfg["workload"] in args.only)


def progress_line(r, count, t_start):
    """One line per finished process, as the run goes."""
    par = " ".join(f"{k}={r[k]:g}" if isinstance(r[k], float) else f"{k}={r[k]}"
                   for k in PARAMS if k in r)
    what = f"{r['impl']:14s} {r['workload']:4s} {par} {r['dtype']} {r['threads']}thr" + \
        ("" if r.get("malloc", "tuned") == "tuned" else " default-malloc")
    if "error" in r:
        return f"[{count}] {what}: ERROR {r['error']}"
    if r["workload"] == "fit":
        return f"[{count}] {what}: w reached {r['w_reached']:.5g} in {r['train_seconds']:.3g} s"
    return (f"[{count}] {what}: median {r['median_ms']:.4g} ms ({r.get('reps')} reps), "
            f"others' CPU {100 * r['others_cpu_during']:.0f}%  [{time.time() - t_start:.0f} s]")


def run_all(args, info, outdir):
    """Every stage of the run (see the module's docstring); returns the results, also written to
    outdir/results.jsonl as they come."""
    results = []
    with open(os.path.join(outdir, "machine.json"), "w") as f:
        json.dump(info, f, indent=1)
    t_start = time.time()
    jsonl = open(os.path.join(outdir, "results.jsonl"), "w")

    def log(r):
        results.append(r)
        jsonl.write(json.dumps(r) + "\n")
        jsonl.flush()
        print(progress_line(r, len(results), t_start), flush=True)

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
            for run in range(1, args.program_runs + 1):
                # the benchmark's epoch at the same w just before, so that the two are compared
                # back to back (a shared host's speed drifts over a run)
                log(run_one(args, C("tapegrad", "W1f", n=4000, dtype=dt, w=widths[4000],
                                    beside="program", run=run)))
                log(run_program(args, 4000, widths[4000], dt, args.program_epochs, run))
    if args.program and (not args.only or "classes" in args.only):
        for run in range(1, args.program_runs + 1):
            for classes in (2, 1000):
                log(run_program_classes(args, classes, run))
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
        with open(os.path.join(outdir, dat)) as f:
            if sum(1 for line in f if not line.startswith("#")) < 2:
                continue  # a partial run (--only) measured too few points for this plot
        try:
            subprocess.run(["gnuplot", "-e", f"datafile='{os.path.join(outdir, dat)}'; "
                            f"outfile='{os.path.join(outdir, png)}'; label='{label}'",
                            os.path.join(HERE, gp)], check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"# plot {png} skipped: {e}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit code 2 (bench/run.sh checks the
    arguments this way before it builds anything)."""

    def error(self, message):
        sys.stderr.write(f"bench/run.py: {message} (see bash bench/run.sh --help)\n")
        sys.exit(2)


def parser():
    ap = Parser(prog="bench/run.py", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", help="path of tapegrad_bench (gcc build); needed unless --report-only")
    ap.add_argument("--bin-clang", default=None, help="tapegrad_bench built by clang (optional)")
    ap.add_argument("--libtorch-bin", default=None, help="bench/libtorch's libtorch_bench (optional)")
    ap.add_argument("--program", default=None,
                    help="examples' nadaraya_watson (gcc build), for its own epochs")
    ap.add_argument("--python", default=None, help="a Python with torch; omit to skip PyTorch")
    ap.add_argument("--quick", action="store_true", help="fewer sizes, widths and reps (< 5 min)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--idle-wait", type=float, default=5.0,
                    help="max seconds to wait for idle CPUs before each process")
    ap.add_argument("--timeout", type=float, default=600.0, help="per process, seconds")
    ap.add_argument("--plot-threads", type=int, default=2, help="thread count the plots show")
    ap.add_argument("--report-only", metavar="RESULTS_JSONL",
                    help="re-make the report from an existing results.jsonl (no run)")
    ap.add_argument("--against", metavar="RESULTS_JSONL",
                    help="an earlier run's results.jsonl: its tapegrad / PyTorch ratios beside "
                         "this run's, row by row (did anything lose ground?)")
    ap.add_argument("--only", nargs="+", default=None, metavar="WORKLOAD",
                    choices=["W1", "W1f", "W1b", "W2", "W2c", "W3", "W4", "W5", "classes"],
                    help="run only these workloads (W1 W1f W1b W2 W2c W3 W4 W5, and classes: the "
                         "classification program at 2 and 1000 classes), e.g. after a change")
    ap.add_argument("--update-doc", nargs="?", const=os.path.join(HERE, "..", "docs", "performance.md"),
                    default=None, metavar="DOC",
                    help="after the run, rewrite DOC's generated block (default docs/performance.md), "
                         "its appendix performance_detail.md and the plots (refused with --quick or "
                         "--only)")
    ap.add_argument("--check-args", action="store_true",
                    help="only check the arguments (exit 0, or 2 with one line) and stop")
    return ap


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = parser()
    args = ap.parse_args()
    if args.update_doc and (args.quick or args.only):
        ap.error("--update-doc is refused for a --quick or --only run (the docs get one whole run)")
    if not args.bin and not args.report_only and not args.check_args:
        ap.error("--bin (tapegrad_bench) is needed unless --report-only")
    for path in (args.report_only, args.against):
        if path and not os.path.isfile(path):
            ap.error(f"no such results file: {path}")
    if args.check_args:
        sys.exit(0)
    settings(args)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    if args.report_only:  # the report names the run it comes from, and its machine
        src = os.path.dirname(os.path.abspath(args.report_only))
        stamp = os.path.basename(src) or stamp
    outdir = os.path.join(args.out, stamp)
    os.makedirs(outdir, exist_ok=True)
    if args.report_only:
        results = read_jsonl(args.report_only)
        machine = os.path.join(src, "machine.json")
        info = json.load(open(machine)) if os.path.isfile(machine) else machine_info(args.python)
    else:
        info = machine_info(args.python)
        results = run_all(args, info, outdir)
    against = (read_jsonl(args.against), os.path.basename(os.path.dirname(
        os.path.abspath(args.against)))) if args.against else None
    head = headline(results, info, stamp)
    text, xc_ok = detail(results, info, stamp, against)
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write(head + "\n\n" + text + "\n")
    plots(args, results, outdir)
    print("\n" + head + "\n\n" + text)
    print(f"\n# raw JSON: {os.path.join(outdir, 'results.jsonl')}; tables: table.md; plots: "
          "perf_vs_w.png, perf_scaling.png")
    if args.update_doc:
        update_doc(args.update_doc, head, text, outdir)
    sys.exit(0 if xc_ok else 1)


if __name__ == "__main__":
    main()
