#!/usr/bin/env python3
"""TensorBoard event files from a run's metrics (JSON Lines written by `longnet train`).

    launch/metrics_to_tensorboard.py runs/tiny            # writes runs/tiny/tensorboard/
    tensorboard --logdir runs/tiny/tensorboard

The argument is a run folder (log.dir; its metrics.jsonl is read) or a metrics file. Every
numeric field of a row becomes a scalar at the row's step, timed by the row's "time" field
(UTC) where it has one: train/loss, train/lr, train/grad_norm, train/tokens_per_s,
train/step_ms, train/mfu, train/peak_gib, val/loss, val/bpb. Event files are written by the
tensorboard package's writer (through torch.utils.tensorboard). The output directory is
replaced: run it again after more steps to bring it up to date. Started by a python without
the packages, it starts itself again with the checkout's .venv/bin/python3.
"""
import argparse
import calendar
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metrics_common import (metrics_path, number, read_rows,  # noqa: E402
                            reexec_with_project_python)

TAGS = {"loss": "train/loss", "lr": "train/lr", "grad_norm": "train/grad_norm",
        "tokens_per_s": "train/tokens_per_s", "step_ms": "train/step_ms", "mfu": "train/mfu",
        "peak_gib": "train/peak_gib", "val_loss": "val/loss", "val_bpb": "val/bpb",
        "val_bits_per_token": "val/bits_per_token"}


def summary_writer():
    try:
        import tensorboard  # noqa: F401  (torch's writer needs the package)
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter
    except ImportError:
        reexec_with_project_python(__file__, "metrics_to_tensorboard: needs torch and tensorboard; run launch/setup.sh (it "
                 "installs them into .venv) or `python3 -m pip install tensorboard`")


def walltime(row):
    t = row.get("time")
    if isinstance(t, str):
        try:
            return float(calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ")))
        except ValueError:
            pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run folder (log.dir) or a metrics.jsonl file")
    ap.add_argument("--out", help="event file directory (default <run folder>/tensorboard)")
    a = ap.parse_args()
    path = metrics_path(a.run)
    if not os.path.isfile(path):
        sys.exit(f"metrics_to_tensorboard: no metrics file at {path}")
    out = a.out or os.path.join(os.path.dirname(path) or ".", "tensorboard")
    SummaryWriter = summary_writer()
    # Read first: nothing is replaced for a file that holds no metrics.
    rows = read_rows(path, "metrics_to_tensorboard")
    values = [(tag, v, int(row["step"]), walltime(row)) for row in rows
              for key, tag in TAGS.items() if (v := number(row, key)) is not None]
    if not values:
        sys.exit(f"metrics_to_tensorboard: {path} holds no metrics rows (JSON lines with a step "
                 f"and {', '.join(TAGS)}); nothing written")
    # An earlier export is replaced: a folder of event files only. Anything else is not ours.
    if os.path.islink(out) or (os.path.exists(out) and not os.path.isdir(out)):
        sys.exit(f"metrics_to_tensorboard: --out {out} exists and is not a folder of event "
                 f"files; give another --out")
    if os.path.isdir(out):
        others = [n for n in os.listdir(out) if not n.startswith("events.out.tfevents.")]
        if others:
            sys.exit(f"metrics_to_tensorboard: --out {out} holds files other than TensorBoard "
                     f"event files ({', '.join(sorted(others)[:3])}...); it is not replaced: "
                     f"give an empty or new folder")
        shutil.rmtree(out)
    try:
        writer = SummaryWriter(log_dir=out)
    except OSError as e:
        sys.exit(f"metrics_to_tensorboard: cannot write {out}: {e.strerror}")
    for tag, v, step, wt in values:
        writer.add_scalar(tag, v, step, walltime=wt)
    scalars = len(values)
    writer.close()
    print(f"metrics_to_tensorboard: {scalars} scalars from {path} -> {out} "
          f"(tensorboard --logdir {out})")


if __name__ == "__main__":
    main()
