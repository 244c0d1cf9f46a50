#!/usr/bin/env python3
"""Plots `longnet eval --json` results: loss against context length.

    launch/plot_eval.py eval.json eval.png

One line: bits per byte (or per token) of the same scored tokens for every context length, on a
log2 x axis; a dashed line marks the training context. Exits 3 when matplotlib is missing.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="JSON written by longnet eval --json")
    ap.add_argument("png", help="output image")
    a = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_eval: matplotlib is not installed in this python (%s); "
              "pip install matplotlib" % sys.executable, file=sys.stderr)
        return 3
    with open(a.results, encoding="utf-8") as f:
        res = json.load(f)
    rows = sorted(res["rows"], key=lambda r: r["context_len"])
    key = "bits_per_byte" if "bits_per_byte" in rows[0] else "bits_per_token"
    x = [r["context_len"] for r in rows]
    y = [r[key] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, y, marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel(key.replace("_", " "))
    trained = res.get("trained_context")
    if trained:
        ax.axvline(trained, linestyle="--", color="grey", label="training context")
        ax.legend()
    ax.set_title("the final %s tokens of %s windows" % (res.get("score_tokens"), res.get("windows")))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.png, dpi=120)
    print("plot_eval: wrote %s" % a.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
