#!/usr/bin/env python3
"""Plots `longnet eval --json` results: loss against context length.

    launch/plot_eval.py eval.json eval.png

One line: bits per byte (or per token) of the same scored tokens for every context length, on a
log2 x axis; a dashed line marks the training context. The image is written beside its path and
renamed over it (a link there is replaced, not followed), so a failed write leaves the old one.
Exits 3 when matplotlib is missing, 1 (one line on stderr) on any other failure.
"""
import argparse
import json
import os
import sys
import tempfile


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
    try:
        draw(plt, a.results, a.png)
    except Exception as e:  # one line, not a traceback: the caller reports it
        print("plot_eval: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print("plot_eval: wrote %s" % a.png)
    return 0


def draw(plt, results, png):
    with open(results, encoding="utf-8") as f:
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
    folder, name = os.path.split(os.path.abspath(png))
    ext = os.path.splitext(name)[1]
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp" + ext, dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as a plain open would make it (mkstemp makes 0600)
        with os.fdopen(fd, "wb") as out:
            fig.savefig(out, dpi=120, format=ext[1:].lower())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, png)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    sys.exit(main())
