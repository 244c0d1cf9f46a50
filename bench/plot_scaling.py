"""Plots a `longnet bench scaling` results file as the paper's Figure 5: forward time against
sequence length (log-log), dilated versus dense attention, one line per results file.

    python3 bench/plot_scaling.py OUT.png RESULTS.json [RESULTS.json ...]
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    out, files = sys.argv[1], sys.argv[2:]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for path in files:
        with open(path) as f:
            res = json.load(f)
        world = res.get("world_size", 1)
        total = res["rows"][0]["total_tokens"] if res["rows"] else 0
        setting = (f"{world} GPU{'s' if world > 1 else ''}, 2^{total.bit_length() - 1} tokens, "
                   f"{res.get('schedule', '')} schedule")
        for attn, style in (("dilated", "o-"), ("dense", "s--")):
            pts = [(r["seq_len"], r["forward_ms"]) for r in res["rows"]
                   if r["attention"] == attn and r.get("forward_ms") is not None]
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.plot(xs, ys, style, label=f"{attn} ({setting})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("forward time (ms)")
    ax.set_title(f"Forward time at a fixed number of tokens per step ({res.get('device', '')})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print("wrote", out)


if __name__ == "__main__":
    main()
