"""What launch/plot_metrics.py and launch/metrics_to_tensorboard.py share: finding a run's
metrics file, reading its rows, and restarting with the project's python when a package is
missing."""
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python3")


def reexec_with_project_python(script, message):
    """Called when an import failed: runs `script` again with .venv's python (with the same
    arguments) unless this already is that python; then exits with `message`."""
    in_venv = os.path.realpath(sys.prefix) == os.path.realpath(os.path.join(ROOT, ".venv"))
    # Once only: a .venv whose python is not a virtual environment (a link to the system's)
    # would otherwise restart the script forever.
    if os.path.exists(VENV_PYTHON) and not in_venv and not os.environ.get("LONGNET_REEXEC"):
        os.environ["LONGNET_REEXEC"] = "1"
        os.execv(VENV_PYTHON, [VENV_PYTHON, os.path.abspath(script)] + sys.argv[1:])
    sys.exit(message)


def metrics_path(arg):
    """A run folder's metrics.jsonl, or `arg` itself when it is a file."""
    return os.path.join(arg, "metrics.jsonl") if os.path.isdir(arg) else arg


def read_rows(path, tool):
    """The rows of a metrics file that are JSON objects with a numeric step; malformed lines are
    counted and reported on stderr as `tool: skipped ...`."""
    rows, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            step = row.get("step") if isinstance(row, dict) else None
            if isinstance(step, (int, float)) and not isinstance(step, bool) and \
                    math.isfinite(step) and abs(step) < 2**62:
                rows.append(row)
            else:
                bad += 1
    if bad:
        print(f"{tool}: skipped {bad} malformed line(s) in {path}", file=sys.stderr)
    return rows


def number(row, key):
    """row[key] when it is a finite number (not a bool), else None."""
    v = row.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None
