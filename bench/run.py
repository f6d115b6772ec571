#!/usr/bin/env python3
"""Driver of the tapegrad vs PyTorch comparison (docs/performance.md).  Normally started by
`bash bench/run.sh [--quick]`, which builds tapegrad_bench and finds a Python with torch.

Every configuration runs in a fresh process (tapegrad_bench or torch_bench.py --worker) with
OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = threads; the PyTorch worker also calls
torch.set_num_threads(threads).  Processes run one at a time, tapegrad and PyTorch alternating
configuration by configuration, so that a slow drift of the machine (other jobs, thermals)
affects both sides alike.  Before each process the driver waits (bounded) for the CPUs to be idle
and records how busy they were, because this machine may be shared.

Output, in bench/results/<timestamp>[-quick]/:
  results.jsonl   one JSON object per process (raw numbers: median/p10/p90/min ms, reps,
                  peak RSS, RSS after set-up, losses for the cross-check, threads seen)
  table.md        the markdown tables, cross-check and targets printed at the end
  scaling.dat     W1 time and peak memory against n (float32, 2 threads) for the plot
  perf_scaling.png  drawn by bench/plot_scaling.gp with gnuplot, if gnuplot is installed
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
def build_configs(args):
    """Ordered (impl, workload, params) triples.  The processes of one comparison (same size,
    dtype and threads) run back to back, tapegrad first, so both sides see the same machine."""
    cfgs = []
    dtypes, threads = args.dtypes, args.threads
    big = 100000
    for dt in dtypes:
        for th in threads:
            for n in args.sizes:
                cfgs += [("tapegrad", "W1", dict(n=n)), ("torch", "W1", dict(n=n)),
                         ("tapegrad", "W1f", dict(n=n)), ("torch", "W1b", dict(n=n))]
            for n in args.fused_only_sizes:
                cfgs += [("tapegrad", "W1f", dict(n=n))]
            for n in args.predict_sizes:
                cfgs += [("tapegrad", "W2", dict(n=n)), ("torch", "W2", dict(n=n))]
                if th == max(threads):  # the chapter's composition: only where the target is
                    cfgs += [("tapegrad", "W2c", dict(n=n))]
            for case in ("vec", "mat"):
                cfgs += [("tapegrad", "W3", dict(case=case)), ("torch", "W3", dict(case=case))]
            cfgs += [("tapegrad", "W4", {}), ("torch", "W4", {})]
            cfgs = [(i, w, dict(p, dtype=dt, threads=th)) for i, w, p in cfgs]
            yield from cfgs
            cfgs = []
    # The 1e10-pair epoch: tapegrad only (PyTorch would need (n, n) matrices of 40-80 GB),
    # one repetition, no warm-up.
    if args.big:
        for dt in dtypes:
            yield ("tapegrad", "W1f", dict(n=big, dtype=dt, threads=max(threads), big=True))


def policy(args, impl, wl, p):
    pol = dict(min_time=args.min_time, min_reps=args.min_reps, max_reps=2000,
               max_time=args.max_time, warmup=args.warmup)
    if p.get("big"):
        pol.update(min_reps=1, max_reps=1, warmup=0, min_time=0)
    return pol


# ----------------------------------------------------------------------------- running
def cpu_busy(interval=0.5):
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


def run_one(args, impl, wl, p):
    pol = policy(args, impl, wl, p)
    env = dict(os.environ)
    t = str(p["threads"])
    env.update(OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t)
    if not args.no_malloc_tuning:
        # Both sides allocate fresh (n, n) buffers in every op. glibc serves big blocks with mmap
        # and returns them with munmap, so every epoch page-faults its whole working set again
        # (1 GB and 265k faults per epoch at n = 4000), and on this VM a fault costs ~13 us:
        # the timings measured the hypervisor, not the arithmetic. Keeping freed memory in the
        # heap (same setting for tapegrad and PyTorch) removes that; --no-malloc-tuning shows it.
        env.update(MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_=str(64 * 2 ** 30),
                   MALLOC_TOP_PAD_=str(64 * 2 ** 20))
    if impl == "tapegrad":
        cmd = [args.bin, "--workload", wl, "--dtype", p["dtype"]]
        if "n" in p:
            cmd += ["--n", str(p["n"])]
        if "case" in p:
            cmd += ["--case", p["case"]]
        for k, v in pol.items():
            cmd += ["--" + k.replace("_", "-"), str(v)]
    else:
        cfg = dict(workload=wl, dtype=p["dtype"], threads=p["threads"], **pol)
        for k in ("n", "case"):
            if k in p:
                cfg[k] = p[k]
        cmd = [args.python, os.path.join(HERE, "torch_bench.py"), "--worker", json.dumps(cfg)]
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
    res.update(impl=impl, workload=wl, dtype=p["dtype"], threads=p["threads"],
               malloc="default" if args.no_malloc_tuning else "tuned")
    for k in ("n", "case"):
        if k in p:
            res[k] = p[k]
    res.update(wall_s=round(time.time() - t0, 2), cpu_busy_before=round(busy, 3),
               idle_wait_s=round(waited, 1))
    return res


# ----------------------------------------------------------------------------- reporting
def key(r):
    return (r["workload"], r.get("n"), r.get("case"), r["dtype"], r["threads"])


def find(results, impl, wl, dtype, threads, n=None, case=None):
    for r in results:
        if (r["impl"], r["workload"], r["dtype"], r["threads"], r.get("n"), r.get("case")) == \
                (impl, wl, dtype, threads, n, case) and "error" not in r:
            return r
    return None


NOISY = 0.2  # other processes used more than this share of the CPUs during the measurement


def noisy(r):
    return r.get("others_cpu_during", 0) > NOISY


def ms(r):
    return (f"{r['median_ms']:.4g}" + (" †" if noisy(r) else "")) if r else "-"


def mib(r):
    return f"{r['peak_rss_MiB']:.0f}" if r else "-"


def ratio(a, b):
    return a["median_ms"] / b["median_ms"] if a and b else None


def fmt_ratio(x, digits=3):
    return f"{x:.{digits}g}" if x is not None else "-"


def w1_table(results):
    lines = ["| n | dtype | thr | tapegrad composed ms | torch W1 ms | **composed / torch** | "
             "tapegrad fused ms | torch W1b ms | torch W1 / fused (x) | torch W1b / fused (x) | "
             "fused pairs/s | peak RSS MiB: tg composed / torch W1 / tg fused / torch W1b |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ns = sorted({r["n"] for r in results if r["workload"] in ("W1", "W1f", "W1b")})
    for dt in ("float32", "float64"):
        for th in sorted({r["threads"] for r in results}):
            for n in ns:
                tc = find(results, "tapegrad", "W1", dt, th, n)
                tw = find(results, "torch", "W1", dt, th, n)
                tf = find(results, "tapegrad", "W1f", dt, th, n)
                tb = find(results, "torch", "W1b", dt, th, n)
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
        for th in sorted({r["threads"] for r in results}):
            for n in sorted({r["n"] for r in results if r["workload"] == "W2"}):
                t = find(results, "torch", "W2", dt, th, n)
                for wl, label in (("W2", "W2 predict, models nadaraya_watson()"),
                                  ("W2c", "W2 predict, chapter's composed ops")):
                    g = find(results, "tapegrad", wl, dt, th, n)
                    if g or t:
                        lines.append(f"| {label} | n_test=n_train={n} | {dt} | {th} | {ms(g)} | "
                                     f"{ms(t)} | **{fmt_ratio(ratio(g, t))}** | {mib(g)} / {mib(t)} |")
            for case in ("vec", "mat"):
                g = find(results, "tapegrad", "W3", dt, th, case=case)
                t = find(results, "torch", "W3", dt, th, case=case)
                if g or t:
                    shape = (g or t)["shape"]
                    lines.append(f"| W3 bmm | {shape} | {dt} | {th} | {ms(g)} | {ms(t)} | "
                                 f"**{fmt_ratio(ratio(g, t))}** | {mib(g)} / {mib(t)} |")
            g = find(results, "tapegrad", "W4", dt, th)
            t = find(results, "torch", "W4", dt, th)
            if g or t:
                gf = f"{g['fwd_ms_median']:.4g}" if g else "-"
                tf = f"{t['fwd_ms_median']:.4g}" if t else "-"
                rf = fmt_ratio(g["fwd_ms_median"] / t["fwd_ms_median"]) if g and t else "-"
                lines.append(f"| W4 softmax fwd | (4000,4000) dim=1 | {dt} | {th} | {gf} | {tf} | "
                             f"**{rf}** | {mib(g)} / {mib(t)} |")
                lines.append(f"| W4 softmax fwd+bwd | (4000,4000) dim=1 | {dt} | {th} | {ms(g)} | "
                             f"{ms(t)} | **{fmt_ratio(ratio(g, t))}** | {mib(g)} / {mib(t)} |")
    return "\n".join(lines)


def raw_table(results):
    lines = ["| impl | workload | shape | dtype | thr | median ms | p10-p90 ms | reps | fwd ms | "
             "peak RSS MiB | RSS after set-up MiB | others' CPU during |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['impl']} | {r['workload']} | {r.get('n', r.get('case', ''))} | "
                         f"{r['dtype']} | {r['threads']} | ERROR: {r['error'][:80]} | | | | | | |")
            continue
        fwd = f"{r['fwd_ms_median']:.4g}" if "fwd_ms_median" in r else ""
        lines.append(f"| {r['impl']} | {r['workload']} | {r['shape']} | {r['dtype']} | "
                     f"{r['threads']} | {r['median_ms']:.4g} | {r['p10_ms']:.4g}-{r['p90_ms']:.4g} | "
                     f"{r['reps']} | {fwd} | {r['peak_rss_MiB']:.0f} | "
                     f"{r.get('rss_after_setup_MiB', float('nan')):.0f} | "
                     f"{100 * r.get('others_cpu_during', r['cpu_busy_before']):.0f}%"
                     f"{' †' if noisy(r) else ''} |")
    return "\n".join(lines)


def cross_check(results):
    """tapegrad's W1 and W1f loss and dL/dw at w_init against PyTorch's W1 on the same data.
    float64 must agree to 1e-9.  In float32 the sums over n (n - 1) terms round differently
    on the two sides, so the float32 rows also show each side's error against the float64 result
    (the truth, to float32 precision); a float32 row passes within 2e-3 of torch."""
    lines = ["| n | dtype | thr | tapegrad | loss rel. diff | dL/dw rel. diff | "
             "dL/dw error vs float64: tapegrad / torch | ok |", "|---|---|---|---|---|---|---|---|"]
    all_ok = True
    for r in results:
        if r["impl"] != "torch" or r["workload"] != "W1" or "error" in r:
            continue
        truth = find(results, "torch", "W1", "float64", r["threads"], r["n"])
        for wl in ("W1", "W1f"):
            g = find(results, "tapegrad", wl, r["dtype"], r["threads"], r["n"])
            if not g:
                continue
            el = abs(g["loss_at_w_init"] - r["loss_at_w_init"]) / abs(r["loss_at_w_init"])
            eg = abs(g["grad_at_w_init"] - r["grad_at_w_init"]) / abs(r["grad_at_w_init"])
            tol = 1e-9 if r["dtype"] == "float64" else 2e-3
            ok = el < tol and eg < tol
            all_ok &= ok
            vs = "-"
            if r["dtype"] == "float32" and truth:
                gt = truth["grad_at_w_init"]
                vs = (f"{abs(g['grad_at_w_init'] - gt) / abs(gt):.1e} / "
                      f"{abs(r['grad_at_w_init'] - gt) / abs(gt):.1e}")
            lines.append(f"| {r['n']} | {r['dtype']} | {r['threads']} | "
                         f"{'composed' if wl == 'W1' else 'fused'} | {el:.1e} | {eg:.1e} | {vs} | "
                         f"{'ok' if ok else 'FAIL'} |")
    return "\n".join(lines), all_ok


def targets(results):
    """The issue's targets, each met or MISSED with the measured number."""
    out = []

    def line(ok, text, *rows):
        # † when a row behind the verdict was measured while other processes loaded the CPUs
        flag = " († contaminated measurement)" if any(r and noisy(r) for r in rows) else ""
        out.append(f"- {'met' if ok else '**MISSED**'}: {text}{flag}")

    th = 2
    for dt in ("float32", "float64"):
        for n in (1000, 4000):
            g, t = find(results, "tapegrad", "W1", dt, th, n), find(results, "torch", "W1", dt, th, n)
            x = ratio(g, t)
            if x is not None:
                line(x <= 1.0, f"W1 composed n={n} {dt} 2 thr: tapegrad/torch = {x:.3g} (target <= 1)", g, t)
        for n in sorted({r["n"] for r in results if r["workload"] == "W2"}):
            for wl in ("W2", "W2c"):
                g, t = find(results, "tapegrad", wl, dt, th, n), find(results, "torch", "W2", dt, th, n)
                x = ratio(g, t)
                if x is not None:
                    what = "nadaraya_watson()" if wl == "W2" else "chapter's composed ops"
                    line(x <= 1.0, f"W2 {what} n={n} {dt} 2 thr: tapegrad/torch = {x:.3g} (target <= 1)", g, t)
        for case in ("vec", "mat"):
            g, t = find(results, "tapegrad", "W3", dt, th, case=case), find(results, "torch", "W3", dt, th, case=case)
            x = ratio(g, t)
            if x is not None:
                line(x <= 1.0, f"W3 bmm {case} {dt} 2 thr: tapegrad/torch = {x:.3g} (target <= 1)", g, t)
        g, t = find(results, "tapegrad", "W4", dt, th), find(results, "torch", "W4", dt, th)
        if g and t:
            x = g["fwd_ms_median"] / t["fwd_ms_median"]
            line(x <= 1.0, f"W4 softmax fwd {dt} 2 thr: tapegrad/torch = {x:.3g} (target <= 1)", g, t)
            x = ratio(g, t)
            line(x <= 1.0, f"W4 softmax fwd+bwd {dt} 2 thr: tapegrad/torch = {x:.3g} (target <= 1)", g, t)
    for dt in ("float32", "float64"):
        for thr in sorted({r["threads"] for r in results}):
            g, t = find(results, "tapegrad", "W1", dt, thr, 50), find(results, "torch", "W1", dt, thr, 50)
            x = ratio(g, t)
            if x is not None:
                line(x < 1.0, f"W1 n=50 composed {dt} {thr} thr: tapegrad/torch = {x:.3g} (target < 1)", g, t)
    n = 4000
    f = find(results, "tapegrad", "W1f", "float32", th, n)
    if f:
        t = find(results, "torch", "W1", "float32", th, n)
        x = ratio(t, f)
        if x is not None:
            line(x >= 50, f"fused W1 n=4000 float32 2 thr vs torch chapter W1: {x:.3g}x faster (target >= 50x)", f, t)
        t = find(results, "torch", "W1b", "float32", th, n)
        x = ratio(t, f)
        if x is not None:
            line(x >= 25, f"fused W1 n=4000 float32 2 thr vs torch W1b: {x:.3g}x faster (target >= 25x)", f, t)
    for dt, goal in (("float32", 2e9), ("float64", 0.9e9)):
        f = find(results, "tapegrad", "W1f", dt, th, n)
        if f:
            ps = n * (n - 1) / (f["median_ms"] / 1e3)
            line(ps >= goal, f"fused W1 n=4000 {dt} 2 thr: {ps:.3g} pairs/s (target >= {goal:.2g})", f)
        f1 = find(results, "tapegrad", "W1f", dt, 1, n)
        if f and f1:
            s = f1["median_ms"] / f["median_ms"]
            line(s >= 1.8, f"fused W1 n=4000 {dt}: 2-thread speedup {s:.3g}x (target >= 1.8x)", f, f1)
    for dt in ("float32", "float64"):
        fs = sorted((r for r in results if r["impl"] == "tapegrad" and r["workload"] == "W1f"
                     and r["dtype"] == dt and "error" not in r), key=lambda r: r["n"])
        if len(fs) >= 2:
            lo, hi = fs[0], fs[-1]
            per_point = (hi["peak_rss_MiB"] - lo["peak_rss_MiB"]) * 2 ** 20 / (hi["n"] - lo["n"])
            line(per_point < 200,
                 f"fused memory O(n) {dt}: peak RSS {lo['peak_rss_MiB']:.1f} MiB at n={lo['n']} -> "
                 f"{hi['peak_rss_MiB']:.1f} MiB at n={hi['n']}, {per_point:.0f} bytes per extra point "
                 f"(an (n, n) matrix would need {8 * hi['n'] ** 2 / 2 ** 30:.0f} GiB in float64)")
    for dt in ("float32", "float64"):
        big = [r for r in results if r["impl"] == "tapegrad" and r["workload"] == "W1f"
               and r["dtype"] == dt and r.get("n") == 100000]
        for r in big:
            if "error" in r:
                line(False, f"fused W1 n=100000 {dt}: {r['error']}")
            else:
                line(True, f"fused W1 n=100000 {dt} {r['threads']} thr completes: "
                           f"{r['median_ms'] / 1e3:.3g} s, {1e10 / (r['median_ms'] / 1e3):.3g} pairs/s, "
                           f"peak RSS {r['peak_rss_MiB']:.1f} MiB", r)
    return "\n".join(out)


def scaling_dat(results, path, dtype="float32", threads=2):
    cols = [("tapegrad", "W1"), ("torch", "W1"), ("tapegrad", "W1f"), ("torch", "W1b")]
    ns = sorted({r["n"] for r in results if r["workload"] in ("W1", "W1f", "W1b")
                 and r["dtype"] == dtype and r["threads"] == threads})
    with open(path, "w") as f:
        f.write(f"# W1 epoch, {dtype}, {threads} threads. columns: n, median ms of tapegrad composed, "
                "torch W1, tapegrad fused, torch W1b, then their peak RSS MiB ('?' = not run)\n")
        for n in ns:
            rs = [find(results, i, w, dtype, threads, n) for i, w in cols]
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
    except OSError:
        pass
    if python:
        r = subprocess.run([python, "-c", "import torch, numpy; print(torch.__version__, "
                            "numpy.__version__)"], capture_output=True, text=True)
        info["torch"], info["numpy"] = (r.stdout.split() + ["?", "?"])[:2]
    return info


def report(results, info, outdir):
    xc, xc_ok = cross_check(results)
    text = "\n\n".join([
        f"Machine: {info.get('Model name')}, {info.get('CPU(s)')} CPUs, {info.get('MemTotal')}, "
        f"torch {info.get('torch', 'n/a')}, numpy {info.get('numpy', 'n/a')}",
        f"† = other processes used more than {100 * NOISY:.0f}% of the CPUs while this row was "
        "measured (shared machine); treat it with care.",
        "### W1: one training epoch (medians, ms; ratio < 1 means tapegrad faster)",
        w1_table(results),
        "### W2 prediction, W3 bmm, W4 softmax (medians, ms)",
        other_table(results),
        "### Targets (2 threads unless stated)",
        targets(results),
        "### Cross-check: loss and dL/dw at w_init, tapegrad vs PyTorch W1 (same data)",
        xc + ("" if xc_ok else "\n\n**CROSS-CHECK FAILED**"),
        "### Every process (median, p10-p90, reps, peak RSS)",
        raw_table(results),
    ])
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write(text + "\n")
    return text, xc_ok


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path of tapegrad_bench")
    ap.add_argument("--python", default=None, help="a Python with torch; omit to skip PyTorch")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and reps (a few minutes)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--idle-wait", type=float, default=5.0,
                    help="max seconds to wait for idle CPUs before each process")
    ap.add_argument("--timeout", type=float, default=1200.0, help="per process, seconds")
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="run workers with glibc's default malloc settings (see run_one)")
    ap.add_argument("--plot-threads", type=int, default=2, help="thread count the plot shows")
    ap.add_argument("--report-only", help="re-make the report from an existing results.jsonl")
    ap.add_argument("--only", nargs="+", default=None, metavar="WORKLOAD",
                    help="run only these workloads (W1 W1f W1b W2 W2c W3 W4), e.g. after a change")
    args = ap.parse_args()

    if args.quick:
        args.sizes, args.fused_only_sizes, args.predict_sizes = [50, 1000], [4000], [1000]
        args.dtypes, args.threads, args.big = ["float32", "float64"], [1, 2], False
        args.min_time, args.min_reps, args.max_time, args.warmup = 0.3, 3, 5.0, 1
    else:
        args.sizes, args.fused_only_sizes, args.predict_sizes = [50, 1000, 4000, 8000], [], [1000, 10000]
        args.dtypes, args.threads, args.big = ["float32", "float64"], [1, 2], True
        args.min_time, args.min_reps, args.max_time, args.warmup = 1.5, 5, 20.0, 1

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    outdir = os.path.join(args.out, stamp)
    os.makedirs(outdir, exist_ok=True)
    info = machine_info(args.python)
    results = []
    if args.report_only:
        with open(args.report_only) as f:
            results = [json.loads(line) for line in f if line.strip()]
    else:
        cfgs = [c for c in build_configs(args) if (args.python or c[0] == "tapegrad")
                and (not args.only or c[1] in args.only)]
        print(f"# {len(cfgs)} processes, results in {outdir}", flush=True)
        with open(os.path.join(outdir, "machine.json"), "w") as f:
            json.dump(info, f, indent=1)
        t_start = time.time()
        with open(os.path.join(outdir, "results.jsonl"), "w") as f:
            for i, (impl, wl, p) in enumerate(cfgs, 1):
                r = run_one(args, impl, wl, p)
                results.append(r)
                f.write(json.dumps(r) + "\n")
                f.flush()
                what = f"{impl:8s} {wl:4s} {p.get('n', p.get('case', '')):>6} {p['dtype']} {p['threads']}thr"
                if "error" in r:
                    print(f"[{i}/{len(cfgs)}] {what}: ERROR {r['error']}", flush=True)
                else:
                    print(f"[{i}/{len(cfgs)}] {what}: median {r['median_ms']:.4g} ms "
                          f"(p10 {r['p10_ms']:.4g}, p90 {r['p90_ms']:.4g}, {r['reps']} reps), "
                          f"peak {r['peak_rss_MiB']:.0f} MiB, others' CPU {100 * r['others_cpu_during']:.0f}%",
                          flush=True)
        print(f"# done in {time.time() - t_start:.0f} s", flush=True)
    text, xc_ok = report(results, info, outdir)
    scaling_dat(results, os.path.join(outdir, "scaling.dat"), threads=args.plot_threads)
    try:
        subprocess.run(["gnuplot", "-e", f"datafile='{os.path.join(outdir, 'scaling.dat')}'; "
                        f"outfile='{os.path.join(outdir, 'perf_scaling.png')}'; "
                        f"label='float32, {args.plot_threads} thread(s)'",
                        os.path.join(HERE, "plot_scaling.gp")], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"# plot skipped: {e}", file=sys.stderr)
    print()
    print(text)
    print(f"\n# raw JSON: {os.path.join(outdir, 'results.jsonl')}; tables: table.md; plot: perf_scaling.png")
    sys.exit(0 if xc_ok else 1)


if __name__ == "__main__":
    main()
