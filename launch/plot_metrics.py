#!/usr/bin/env python3
"""Plots training runs from their metrics (JSON Lines written by `longnet train`).

    launch/plot_metrics.py runs/tiny                      # writes runs/tiny/metrics.png
    launch/plot_metrics.py runs/a runs/b --out ab.png     # two runs on the same axes

Each argument is a run folder (log.dir; its metrics.jsonl is read) or a metrics file. Top panel:
training loss (raw, faint, and smoothed by an exponential moving average, --smooth) and
validation loss, both in nats per token on one axis; bottom panel: the learning rate. Malformed
lines (the last may be half-written while the run goes on) are skipped; JSON null (a NaN or
infinite value in the run) shows as a gap. Runs with the project's python: started by a python
without matplotlib, it starts itself again with the checkout's .venv/bin/python3.
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metrics_common import (metrics_path, number, read_rows,  # noqa: E402
                            reexec_with_project_python)


def import_pyplot():
    """matplotlib.pyplot with a file backend; re-executes with the project's python without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        reexec_with_project_python(__file__, "plot_metrics: matplotlib is missing; run launch/setup.sh (it installs it into "
                 ".venv) or `python3 -m pip install matplotlib`")


def series(rows, key):
    """([steps], [values]) of the rows that have key; null, and anything but a finite number
    (a string, inf), -> NaN (a gap)."""
    steps, values = [], []
    for r in rows:
        if key in r:
            steps.append(r["step"])
            v = number(r, key)
            values.append(math.nan if v is None else v)
    return steps, values


def ema(values, weight):
    """Exponential moving average with bias correction (TensorBoard's smoothing); NaN passes."""
    out, avg, n = [], 0.0, 0
    for v in values:
        if math.isnan(v):
            out.append(math.nan)
            continue
        n += 1
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** n) if weight > 0 else v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders (log.dir) or metrics.jsonl files")
    ap.add_argument("--out", help="image (.png, .svg, .pdf); default <first run>/metrics.png")
    ap.add_argument("--smooth", type=float, default=0.9,
                    help="EMA weight for the training loss, in [0, 1) (0: none; default 0.9)")
    a = ap.parse_args()
    plt = import_pyplot()  # first: it may restart this script with the project's python
    if not 0 <= a.smooth < 1:
        sys.exit(f"plot_metrics: --smooth {a.smooth} is outside [0, 1)")
    paths = [metrics_path(r) for r in a.runs]
    for p in paths:
        if not os.path.isfile(p):
            sys.exit(f"plot_metrics: no metrics file at {p} (give a run folder or a .jsonl file)")
    runs = [(p, read_rows(p, "plot_metrics")) for p in paths]
    if not any(series(rows, "loss")[0] or series(rows, "val_loss")[0] for _, rows in runs):
        sys.exit("plot_metrics: no `loss` or `val_loss` values in " + ", ".join(paths))
    for p, rows in runs:
        if not any(not math.isnan(v) for key in ("loss", "val_loss") for v in series(rows, key)[1]):
            print(f"plot_metrics: warning: {p} holds no loss or val_loss values; it is left out",
                  file=sys.stderr)
    out = a.out or os.path.join(os.path.dirname(paths[0]) or ".", "metrics.png")
    if os.path.splitext(out)[1].lower() not in (".png", ".svg", ".pdf"):
        sys.exit(f"plot_metrics: --out {out}: give an image file name ending in .png, .svg or .pdf")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        sys.exit(f"plot_metrics: --out {out}: its folder does not exist")

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6.5),
                                      gridspec_kw={"height_ratios": [3, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (path, rows) in enumerate(runs):
        c = colors[i % len(colors)]
        # (a run's folder name, and the file's when that is not metrics.jsonl: metrics.1.jsonl
        # is the earlier run of the same folder)
        base = os.path.basename(path)
        name = os.path.basename(os.path.dirname(os.path.abspath(path))) + \
            ("" if base == "metrics.jsonl" else "/" + base) if len(runs) > 1 else ""
        tag = f" ({name})" if name else ""
        steps, loss = series(rows, "loss")
        if steps:
            if a.smooth > 0:
                top.plot(steps, loss, lw=0.8, color=c, alpha=0.25)
            # (markers where a point stands alone: one row, or between skipped steps)
            top.plot(steps, ema(loss, a.smooth), lw=1.5, color=c, label="training" + tag,
                     marker="o" if len(steps) == 1 else None, ms=3)
        steps, val = series(rows, "val_loss")
        if steps:
            top.plot(steps, val, "o--", ms=4, lw=1, color=c, label="validation" + tag)
        steps, lr = series(rows, "lr")
        if steps:
            bottom.plot(steps, lr, lw=1.2, color=c)
    top.set_ylabel("loss (nats per token)")
    top.set_title(", ".join(a.runs) + (f"   (training loss smoothed, EMA {a.smooth})"
                                       if a.smooth > 0 else ""), fontsize=9)
    top.legend(loc="upper right", fontsize=8)
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("step")
    bottom.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=120)
    except OSError as e:
        sys.exit(f"plot_metrics: cannot write {out}: {e.strerror}")
    print(f"plot_metrics: wrote {out}")


if __name__ == "__main__":
    main()
