#!/usr/bin/env python3
"""Plots a training run's metrics file (JSON Lines written by the `longnet` trainer).

    launch/plot_metrics.py runs/default/metrics.jsonl runs/default/loss.png

Top panel: training loss (key `loss`, nats per token) against `step`; bottom panel: validation
bits per byte (key `val_bpb`). Lines without a key are skipped, and so are malformed lines
(the last one may be half-written while the run goes on). JSON null (a NaN or infinite value
in the run) shows as a gap.
"""
import argparse
import json
import math
import sys


def read_series(path):
    """Returns {key: ([steps], [values])} for `loss` and `val_bpb`."""
    series = {"loss": ([], []), "val_bpb": ([], [])}
    bad = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if not isinstance(row, dict) or "step" not in row:
                bad += 1
                continue
            for key, (steps, values) in series.items():
                if key in row:
                    value = row[key]
                    steps.append(row["step"])
                    values.append(math.nan if value is None else float(value))
    if bad:
        print(f"plot_metrics: skipped {bad} malformed line(s) in {path}", file=sys.stderr)
    return series


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", help="metrics.jsonl written by the trainer")
    parser.add_argument("out", help="image to write (.png, .svg, .pdf)")
    args = parser.parse_args()

    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_metrics: matplotlib is missing; install it with "
                 "`.venv/bin/python3 -m pip install matplotlib`")

    series = read_series(args.metrics)
    if not series["loss"][0] and not series["val_bpb"][0]:
        sys.exit(f"plot_metrics: {args.metrics} has no `loss` or `val_bpb` values")

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    steps, values = series["loss"]
    top.plot(steps, values, lw=1, color="tab:blue", label="training loss")
    top.set_ylabel("loss (nats / token)")
    top.set_title(args.metrics)
    steps, values = series["val_bpb"]
    bottom.plot(steps, values, marker="o", ms=3, lw=1, color="tab:orange",
                label="validation")
    bottom.set_ylabel("validation bits / byte")
    bottom.set_xlabel("step")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        if ax.lines and len(ax.lines[0].get_xdata()):
            ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"plot_metrics: wrote {args.out}")


if __name__ == "__main__":
    main()
