"""The report of a benchmark run (bench/run.py): the tables, the targets met or missed, the
cross-check of the sides' losses and gradients, the plots' data files, and the rewrite of
docs/performance.md's generated block and of its appendix docs/performance_detail.md.

Every function reads the list of results (one dict per process, as in results.jsonl); none runs
anything, so `python3 bench/run.py --report-only results.jsonl` re-makes a report from saved data.
"""
import os

PARAMS = ("n", "w", "case", "logits", "lr", "epochs", "task", "classes")  # a configuration's parameters
SWEEP_W = [0.8, 2, 5, 10, 20, 50, 200]  # the widths of the W1f sweep ("trained" added per n)
LOGITS = ["randn", "1", "30", "300"]  # W4: N(0, 1) and uniform in [-R, 0]

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
    lines = ["| w | tapegrad fused ms | its exps alone ms | tapegrad clang ms | PyTorch plain ms | "
             "LibTorch plain ms | PyTorch chapter ms | **tapegrad / PyTorch plain** | "
             "tapegrad / PyTorch plain, as shipped | tapegrad / LibTorch | clang / gcc |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in ws:
        tg = find(results, "tapegrad", "W1f", dt, n=n, w=w)
        cl = find(results, "tapegrad-clang", "W1f", dt, n=n, w=w)
        tb = find(results, "torch", "W1b", dt, n=n, w=w)
        tbd = find(results, "torch", "W1b", dt, malloc="default", n=n, w=w)
        lb = find(results, "libtorch", "W1b", dt, n=n, w=w)
        tw = find(results, "torch", "W1", dt, n=n, w=w)
        if not any((tg, tb)):
            continue
        lines.append(f"| {w_label(w, widths, n)} | {ms(tg)} | {ms(tg, 'exp_floor_ms')} | {ms(cl)} | "
                     f"{ms(tb)} | {ms(lb)} | "
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
    return "\n".join(lines)


def program_table(results):
    """examples' nadaraya_watson at a fixed w, each run: its median epoch beside the benchmark's
    W1f, and the mean of its first epochs against its median (threads that start slowly show
    there, not in a median)."""
    lines = ["| n | dtype | w | run | program median epoch ms | benchmark W1f ms | "
             "**program / benchmark** | first 5 epochs, mean ms | **first 5 / median** | "
             "first epochs ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["impl"] != "program":
            continue
        b = beside_program(results, r)
        first = ", ".join(f"{x:.3g}" for x in r.get("epoch_ms", [])[:8])
        lines.append(f"| {r['n']} | {r['dtype']} | {r['w']:g} | {r.get('run', 1)} | {ms(r)} | "
                     f"{ms(b)} | **{fmt_ratio(ratio(r, b))}** | {ms(r, 'first5_ms')} | "
                     f"**{fmt_ratio(start_ratio(r))}** | {first} |")
    return "\n".join(lines) + "\n\nThe command of each row: `" + \
        "`, `".join(sorted({r.get("command", "") for r in results if r["impl"] == "program"})) + "`"


def beside_program(results, r):
    """The W1f process run just before program run r (same n, w, dtype), else the sweep's."""
    return find(results, "tapegrad", "W1f", r["dtype"], n=r["n"], w=r["w"], beside="program",
                run=r.get("run", 1)) or find(results, "tapegrad", "W1f", r["dtype"], n=r["n"],
                                             w=r["w"])


def start_ratio(r):
    """The program's mean first-5-epoch time over its median epoch (None when not recorded)."""
    return r["first5_ms"] / r["median_ms"] if r and "first5_ms" in r and r.get("median_ms") else None


def class_runs(results, classes):
    return [r for r in results if r["impl"] == "program-classes" and r.get("classes") == classes
            and "error" not in r]


def classes_table(results):
    """The classification program at 2 and 1000 classes, each run: the whole process's time."""
    lines = ["| classes | run | wall ms | figures drawn |", "|---|---|---|---|"]
    for c in (2, 1000):
        for r in class_runs(results, c):
            lines.append(f"| {c} | {r['run']} | {ms(r)} | {'yes' if r.get('figures') else 'no'} |")
    commands = sorted({r["command"] for r in results if r["impl"] == "program-classes"})
    return "\n".join(lines) + ("\n\nThe command: `" + "`, `".join(commands) + "`" if commands else "")


def targets_classes(results):
    """Classes cost O(n C), not O(n^2 C): the classification program at 1000 classes takes at most
    3x its time at 2 (the medians of its runs)."""
    out, line = verdicts()
    few, many = class_runs(results, 2), class_runs(results, 1000)
    if few and many:
        a = sorted(r["median_ms"] for r in few)[len(few) // 2]
        b = sorted(r["median_ms"] for r in many)[len(many) // 2]
        line(b <= 3 * a, f"classification program n = {few[0]['n']} float64 --epochs 0: 1000 "
             f"classes {b:.4g} ms, 2 classes {a:.4g} ms, ratio {b / a:.3g} (target <= 3)",
             *few, *many)
    return out


def clang_table(results):
    """Every tapegrad benchmark that also ran from the clang build: clang / gcc."""
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
    if len(lines) == 2:
        return "No pair of rows of this run holds both sides' loss and dL/dw at the same w.", True
    return "\n".join(lines), all_ok


def verdicts():
    """(out, line): line(ok, text, *rows) appends one verdict to the list out, flagged † when a
    row behind it was measured while other processes loaded the CPUs."""
    out = []

    def line(ok, text, *rows):
        flag = " († contaminated measurement)" if any(r and noisy(r) for r in rows) else ""
        out.append(f"- {'met' if ok else '**MISSED**'}: {text}{flag}")

    return out, line


def targets_sharp_attention(results):
    """Sharper attention must not cost more: the fused epoch at n = 4000 never gets slower as w
    grows (from w = 2, 10% noise allowed) and beats PyTorch's plain rewrite 10x at w = 50; the
    n = 100000 epoch at the trained width takes under 0.5 s; softmax, forward and forward +
    backward(G) with the caller's G, costs no more than PyTorch's and LibTorch's at every logit
    range, sharp (underflowing) ones included."""
    out, line = verdicts()
    for dt in ("float32", "float64"):
        rows = sorted((r for r in results if r["impl"] == "tapegrad" and r["workload"] == "W1f"
                       and r.get("n") == 4000 and r["dtype"] == dt and r["threads"] == 2
                       and "error" not in r and r["w"] >= 2 and "beside" not in r),
                      key=lambda r: r["w"])
        if len(rows) >= 2:
            worst = max(rows[i + 1]["median_ms"] / rows[i]["median_ms"] for i in range(len(rows) - 1))
            seq = ", ".join(f"{r['w']:g}: {r['median_ms']:.3g}" for r in rows)
            line(worst <= 1.1, f"fused epoch n=4000 {dt} non-increasing in w from w = 2 (10% noise "
                 f"allowed): largest step up x{worst:.3g} (ms by w: {seq})", *rows)
    for w in sorted({50, widths_of(results).get(4000, 50)}):
        g = find(results, "tapegrad", "W1f", "float32", n=4000, w=w)
        t = find(results, "torch", "W1b", "float32", malloc="default", n=4000, w=w)
        x = ratio(t, g)
        if x is not None:
            line(x >= 25, f"fused epoch n=4000 w={w:g} float32: {x:.3g}x faster than PyTorch's "
                 f"plain rewrite as shipped (target >= 25x)", g, t)
    for r in results:
        if r["workload"] == "W1f" and r.get("big") and r["impl"] == "tapegrad":
            if "error" in r:
                line(False, f"fused epoch n={r['n']} {r['dtype']}: {r['error']}")
            elif r["dtype"] == "float32":
                line(r["median_ms"] < 500, f"fused epoch n={r['n']} float32 at the trained width "
                     f"w = {r['w']:g}: {r['median_ms'] / 1e3:.3g} s (target < 0.5 s)", r)
    for lg in LOGITS:
        g = find(results, "tapegrad", "W4", "float32", logits=lg)
        label = "N(0, 1)" if lg == "randn" else f"U[-{lg}, 0]"
        for side, name in (("torch", "PyTorch"), ("libtorch", "LibTorch")):
            o = find(results, side, "W4", "float32", logits=lg)
            for what, field in (("fwd", "fwd_ms_median"), ("fwd+bwd, lvalue seed", "median_ms")):
                x = ratio(g, o, field)
                if x is not None:
                    line(x <= 1.0, f"softmax (4000,4000) float32 {label} {what}: tapegrad/{name} "
                         f"= {x:.3g} (target <= 1)", g, o)
    return out


START_RATIO = 1.5  # the program's first 5 epochs may take at most this times its median epoch


def targets_program(results):
    """The chapter's program runs the fused epoch as fast as the benchmark does (its median epoch
    within 1.2x of the W1f process run just before it at the same w, the median over runs), and from its first epoch on (the mean of its first 5
    epochs at most START_RATIO times its median, in every run: threads placed from the start)."""
    out, line = verdicts()
    for dt in ("float32", "float64"):
        pairs = [(r, beside_program(results, r)) for r in results
                 if r["impl"] == "program" and r["dtype"] == dt and "error" not in r]
        pairs = [(r, b) for r, b in pairs if ratio(r, b) is not None]
        if pairs:
            xs = sorted(ratio(r, b) for r, b in pairs)
            x = xs[len(xs) // 2]
            r = pairs[0][0]
            line(1 / 1.2 <= x <= 1.2, f"program's epoch n={r['n']} {dt} w={r['w']:g}: median "
                 f"epoch / the benchmark's W1f run just before it {', '.join(f'{y:.3g}' for y in xs)}"
                 f" in {len(xs)} run(s), median {x:.3g} (target within 1.2x)",
                 *[q for pair in pairs for q in pair])
    for dt in ("float32", "float64"):
        runs = [r for r in results if r["impl"] == "program" and r["dtype"] == dt
                and start_ratio(r) is not None]
        if runs:
            xs = [start_ratio(r) for r in runs]
            line(max(xs) <= START_RATIO, f"program's first 5 epochs n={runs[0]['n']} {dt} "
                 f"w={runs[0]['w']:g}: mean / median epoch {', '.join(f'{x:.3g}' for x in xs)} in "
                 f"{len(xs)} run(s) (target <= {START_RATIO} in every run)", *runs)
    return out


def targets_clang(results):
    """tapegrad built by clang within 1.3x of the gcc build on every benchmark."""
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


def targets_against_pytorch(results):
    """tapegrad at most PyTorch's time at w = 0.8: the chapter's composed ops (W1, n = 50 on 1 and
    2 threads, 1000, 4000), prediction (W2), bmm (W3) and softmax (W4) over N(0, 1) logits."""
    out, line = verdicts()

    def check(what, g, t, field="median_ms", strict=False):
        x = ratio(g, t, field)
        if x is not None:
            line(x < 1.0 if strict else x <= 1.0,
                 f"{what}: tapegrad/torch = {x:.3g} (target {'<' if strict else '<='} 1)", g, t)

    for dt in ("float32", "float64"):
        for n in (1000, 4000):
            check(f"W1 composed n={n} {dt}", find(results, "tapegrad", "W1", dt, n=n, w=0.8),
                  find(results, "torch", "W1", dt, n=n, w=0.8))
        for n in sorted({r["n"] for r in results if r["workload"] == "W2"}):
            t = find(results, "torch", "W2", dt, n=n)
            check(f"W2 nadaraya_watson() n={n} {dt}", find(results, "tapegrad", "W2", dt, n=n), t)
            check(f"W2 chapter's composed ops n={n} {dt}", find(results, "tapegrad", "W2c", dt, n=n), t)
        for case in ("vec", "mat"):
            check(f"W3 bmm {case} {dt}", find(results, "tapegrad", "W3", dt, case=case),
                  find(results, "torch", "W3", dt, case=case))
        g, t = find(results, "tapegrad", "W4", dt, logits="randn"), \
            find(results, "torch", "W4", dt, logits="randn")
        check(f"W4 softmax N(0,1) fwd {dt}", g, t, "fwd_ms_median")
        check(f"W4 softmax N(0,1) fwd+bwd {dt}", g, t)
        for thr in (1, 2):
            check(f"W1 n=50 composed {dt} {thr} thr", find(results, "tapegrad", "W1", dt, thr, n=50, w=0.8),
                  find(results, "torch", "W1", dt, thr, n=50, w=0.8), strict=True)
    return out


def targets_fused_op(results):
    """The fused op's throughput at n = 4000, w = 0.8 (pairs per second; 2 threads at least 1.8x
    one) and its memory, O(n): the peak RSS grows by under 200 bytes per extra point."""
    out, line = verdicts()
    for dt in ("float32", "float64"):
        f = find(results, "tapegrad", "W1f", dt, n=4000, w=0.8)
        if f:
            ps = 4000 * 3999 / (f["median_ms"] / 1e3)
            goal = 2e9 if dt == "float32" else 0.9e9
            line(ps >= goal, f"fused W1 n=4000 w=0.8 {dt}: {ps:.3g} pairs/s (target >= {goal:.2g})", f)
            if dt == "float32" and "exp_floor_ms" in f:
                fl = f["exp_floor_ms"]
                line(f["median_ms"] <= 4.2, f"fused W1 n=4000 w=0.8 float32: {f['median_ms']:.3g} ms "
                     f"(target <= 4.2 ms, or the floor: its exps alone take {fl:.3g} ms, the epoch "
                     f"{f['median_ms'] / fl:.3g}x that)", f)
            f1 = find(results, "tapegrad", "W1f", dt, 1, n=4000, w=0.8)
            apart = f" (separate processes: {f1['median_ms'] / f['median_ms']:.3g}x)" if f1 else ""
            if "interleaved_2thread_ms" in f:  # 1 and 2 threads alternating in one process
                s = f["interleaved_1thread_ms"] / f["interleaved_2thread_ms"]
                line(s >= 1.8, f"fused W1 n=4000 w=0.8 {dt}: 2-thread speedup {s:.3g}x, epochs on "
                     f"1 and 2 threads alternating in one process{apart} (target >= 1.8x)", f)
            elif f1:
                s = f1["median_ms"] / f["median_ms"]
                line(s >= 1.8, f"fused W1 n=4000 w=0.8 {dt}: 2-thread speedup {s:.3g}x "
                     "(target >= 1.8x)", f, f1)
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
    """Every target, each met or MISSED with the measured number."""
    return (targets_sharp_attention(results) + targets_program(results) + targets_clang(results)
            + targets_against_pytorch(results) + targets_fused_op(results)
            + targets_classes(results))


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




# The headline: (what, tapegrad's workload, the PyTorch / LibTorch workload, parameters, field).
# PyTorch's and LibTorch's side of a fused epoch is their best plain rewrite (W1b, W5).
HEADLINE = [
    ("Fused training epoch, n = 4000, w = 0.8 (flat attention)", "W1f", "W1b", dict(n=4000, w=0.8)),
    ("Fused training epoch, n = 4000, the trained w", "W1f", "W1b", dict(n=4000, w="trained")),
    ("Fused training epoch, n = 4000, w = 50 (sharp attention)", "W1f", "W1b", dict(n=4000, w=50)),
    ("Chapter's composed ops, training epoch, n = 4000", "W1", "W1", dict(n=4000, w=0.8)),
    ("d = 2 fused epoch, regression, n = 4000, w = 1", "W5", "W5",
     dict(n=4000, w=1.0, task="regression")),
    ("d = 2 fused epoch, cross-entropy, n = 4000, w = 1", "W5", "W5",
     dict(n=4000, w=1.0, task="classification")),
    ("Softmax (4000, 4000), forward", "W4", "W4", dict(logits="randn"), "fwd_ms_median"),
    ("Softmax (4000, 4000), forward + backward", "W4", "W4", dict(logits="randn")),
    ("Prediction, n_query = n_train = 10000", "W2", "W2", dict(n=10000)),
    ("bmm (64, 128, 128) x (64, 128, 128)", "W3", "W3", dict(case="mat")),
]


def headline_table(results):
    """The main workloads in one table: tapegrad's time and its ratio to PyTorch and LibTorch,
    2 threads, median ms, both dtypes; rows a run did not measure are left out."""
    widths = widths_of(results)
    lines = ["| workload | dtype | tapegrad ms | PyTorch ms | LibTorch ms | **tapegrad / PyTorch** | "
             "tapegrad / LibTorch |", "|---|---|---|---|---|---|---|"]
    for what, wl, other, q, *field in HEADLINE:
        f = field[0] if field else "median_ms"
        q = dict(q, w=widths.get(q["n"])) if q.get("w") == "trained" else q
        for dt in ("float32", "float64"):
            g = find(results, "tapegrad", wl, dt, **q) if q.get("w", 0) is not None else None
            if not g:
                continue
            t, lt = find(results, "torch", other, dt, **q), find(results, "libtorch", other, dt, **q)
            label = what.replace("the trained w", f"w = {q['w']:g} (trained)") if "w" in q else what
            lines.append(f"| {label} | {dt} | {ms(g, f)} | {ms(t, f)} | {ms(lt, f)} | "
                         f"**{fmt_ratio(ratio(g, t, f))}** | {fmt_ratio(ratio(g, lt, f))} |")
    for r in results:
        if r["workload"] == "W1f" and r.get("big") and r["impl"] == "tapegrad" and "error" not in r:
            lines.append(f"| Fused training epoch, n = {r['n']}, w = {r['w']:g} (trained) | "
                         f"{r['dtype']} | {ms(r)} | - | - | - | - |")
    return "\n".join(lines)


def start_summary(results):
    """One sentence on the program's first epochs against its median epoch, per dtype."""
    parts = []
    for dt in ("float32", "float64"):
        xs = [start_ratio(r) for r in results if r["impl"] == "program" and r["dtype"] == dt
              and start_ratio(r) is not None]
        if xs:
            parts.append(f"{dt} {', '.join(f'{x:.2f}' for x in xs)}")
    if not parts:
        return ""
    return ("The program's start (`nadaraya_watson --impl fused`, n = 4000, w held at the trained "
            "width): the mean of its first 5 epochs over its median epoch, each run: "
            + "; ".join(parts) + ".")


def against_table(results, before, label):
    """Same-run ratios tapegrad / PyTorch of an earlier run (`--against`) beside this run's, for
    every tapegrad row both runs measured: a ratio above the earlier one means tapegrad lost ground.
    Ratios, not times, are compared across runs: both sides of a ratio saw the same machine."""
    other = {"W1": "W1", "W1f": "W1b", "W2": "W2", "W2c": "W2", "W3": "W3", "W4": "W4", "W5": "W5"}
    lines = [f"| workload | parameters | dtype | thr | {label} ratio | **this run's ratio** | "
             "this / earlier |", "|---|---|---|---|---|---|---|"]
    for g in results:
        if g["impl"] != "tapegrad" or g["workload"] not in other or "error" in g:
            continue
        q = {k: g[k] for k in PARAMS if k in g}
        args = (other[g["workload"]], g["dtype"], g["threads"])
        now = ratio(g, find(results, "torch", *args, **q))
        then = ratio(find(before, "tapegrad", g["workload"], *args[1:], **q),
                     find(before, "torch", *args, **q))
        if now is None or then is None:
            continue
        par = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in q.items())
        lines.append(f"| {g['workload']} | {par} | {g['dtype']} | {g['threads']} | {then:.3g} | "
                     f"**{now:.3g}** | {now / then:.3g} |")
    return "\n".join(lines)


def machine_line(info):
    """The machine in one line: CPU model, cores, vector width, memory, compilers, libraries."""
    cpu = info.get("Model name", "unknown CPU")
    if "CPU family" in info:
        cpu += f" ({info.get('Vendor ID', '')} family {info['CPU family']} model {info.get('Model')})"
    cores = f"{info.get('CPU(s)', '?')} CPUs"
    if "Core(s) per socket" in info:
        sockets = int(info.get("Socket(s)", "1") or 1)
        cores += f" = {int(info['Core(s) per socket']) * sockets} cores x " \
                 f"{info.get('Thread(s) per core', '?')} thread(s) per core"
    extra = [x for x in (info.get("vector ISA"), info.get("Hypervisor vendor")) if x]
    mem = info.get("MemTotal", "?")
    if mem.endswith(" kB"):
        mem = f"{int(mem.split()[0]) / 2 ** 20:.1f} GiB"
    return (f"{cpu}, {cores}{''.join(', ' + x for x in extra)}; {mem} RAM; "
            f"{info.get('g++', 'g++ ?')}; {info.get('clang++', 'no clang')}; "
            f"torch {info.get('torch', 'n/a')}, numpy {info.get('numpy', 'n/a')}")


def sweep_sections(results):
    out = []
    swept = {r["n"] for r in results if r["workload"] in ("W1f", "W1b") and not r.get("big")
             and r.get("w") != 0.8}
    for n in sorted(swept, reverse=True):
        for dt in ("float32", "float64"):
            t = sweep_table(results, n, dt)
            if t.count("\n") > 1:
                out += [f"### Fused epoch against w: n = {n}, {dt}, 2 threads (median ms)", t]
    return out


def headline(results, info, stamp):
    """The generated block of docs/performance.md: the run, the machine, the headline table, the
    program's start and the targets missed."""
    ts = targets(results)
    missed = [t for t in ts if "**MISSED**" in t]
    return "\n\n".join(x for x in [
        f"Run `{stamp}` on {machine_line(info)}. 2 threads, median ms; ratio < 1: tapegrad faster. "
        "† = other processes used more than "
        f"{100 * NOISY:.0f}% of the CPUs while a row was measured.",
        headline_table(results),
        start_summary(results),
        f"Targets: {len(ts) - len(missed)} of {len(ts)} met (all of them, with the measured "
        "numbers, in the [appendix](performance_detail.md#targets))" + (":" if missed else "."),
        "\n".join(missed),
    ] if x)


def detail(results, info, stamp, against=None):
    """docs/performance_detail.md's body: every table of the run; (text, cross-check ok)."""
    xc, xc_ok = cross_check(results)
    comparison = []
    if against:
        before, label = against
        comparison = [f"## Against run {label}: same-run ratios tapegrad / PyTorch",
                      against_table(results, before, label)]
    text = "\n\n".join([
        f"Run `{stamp}` on {machine_line(info)}.",
        f"† = other processes used more than {100 * NOISY:.0f}% of the CPUs while this row was "
        "measured (shared machine); treat it with care.",
        "## Targets", "2 threads unless stated.", targets_text(results),
        "## The width training reaches (tapegrad_bench --workload fit, float32, fused op)",
        widths_table(results),
        "## The fused epoch against w", *sweep_sections(results),
        "![epoch time against w](perf_vs_w.png)",
        "## Softmax (4000, 4000) along dim 1 by logit range, 2 threads (median ms)",
        softmax_table(results),
        "## The program's own epochs (n = 4000, w held fixed)", program_table(results),
        "## The classification program against the class count (d = 1, n = 5000, float64, "
        "--epochs 0, figures included; one process each)", classes_table(results),
        "## clang / gcc, every tapegrad benchmark of the run", clang_table(results),
        "## W1 at w = 0.8 against n (medians, ms; ratio < 1: tapegrad faster)", w1_table(results),
        "![W1 scaling](perf_scaling.png)",
        "## W5: d = 2 training epoch, fused d-D ops against PyTorch's plain rewrite "
        "(leave-one-out, per-coordinate w = (w, w), 2 threads, medians, ms)", nd_table(results),
        "## W2 prediction, W3 bmm (2 threads, medians, ms)", other_table(results),
        *comparison,
        "## Cross-check: loss and dL/dw at the benchmark's w (same data)",
        xc + ("" if xc_ok else "\n\n**CROSS-CHECK FAILED**"),
        "## Every process (median, p10-p90, reps, peak RSS)", raw_table(results),
    ])
    return text, xc_ok


def targets_text(results):
    return "\n".join(targets(results))


BEGIN = "<!-- BEGIN GENERATED by bash bench/run.sh --update-doc: do not edit by hand -->"
END = "<!-- END GENERATED -->"
DETAIL_HEAD = """# Performance in detail: every table of one run

<!-- Generated by `bash bench/run.sh --update-doc` (bench/report.py): do not edit by hand. -->

The appendix of [performance.md](performance.md), which says what each workload measures and how
to read these tables."""


def update_doc(doc, head_text, detail_text, outdir):
    """Replaces the generated block of docs/performance.md with head_text, rewrites its appendix
    docs/performance_detail.md from detail_text, and copies the plots beside them; the prose
    outside the markers stays as written."""
    import shutil
    import sys
    with open(doc) as f:
        old = f.read()
    if BEGIN not in old or END not in old:
        sys.exit(f"{doc}: no {BEGIN} ... {END} block to replace")
    before, rest = old.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    with open(doc, "w") as f:
        f.write(before + BEGIN + "\n\n" + head_text + "\n\n" + END + after)
    docs = os.path.dirname(os.path.abspath(doc))
    with open(os.path.join(docs, "performance_detail.md"), "w") as f:
        f.write(DETAIL_HEAD + "\n\n" + detail_text + "\n")
    for png in ("perf_vs_w.png", "perf_scaling.png"):
        src = os.path.join(outdir, png)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(docs, png))
    print(f"# updated {doc}, performance_detail.md and the plots from {outdir}")
