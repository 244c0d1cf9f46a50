#!/usr/bin/env python3
"""Every numeric flag of every command at the edges: 0, -1, 1, 2^31, 2^53 + 1, 2^63 - 1, 2^63,
a denormal, an overflowing float, NaN, -inf, a list with an empty item, the empty string.

Each run (on the CPU, small inputs) must end cleanly within seconds: status 0, or status 1 with
one "error:" line; never a signal, an uncaught exception, an internal assertion or a hang. The
numeric flags are read from each command's --help (those whose default is a number or a list of
numbers), so a flag added later is covered without editing this file.

    flag_edges.py LONGNET SOURCE_ROOT WORK_DIR
"""

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys

EDGES = ["0", "-1", "1", "2147483648", "9007199254740993", "9223372036854775807",
         "9223372036854775808", "1e-320", "1e309", "nan", "-inf", "1,,2", ""]
# What a clean refusal never contains.
CRASH_SIGNS = ["terminate called", "Exception raised from", "INTERNAL ASSERT", "Segmentation fault",
               "core dumped", "Aborted", "what():"]
TIMEOUT_S = 30
# Runs that legitimately go on for as long as asked (a huge count of tokens or timed steps).
LONG_RUNS = {("generate", "max-new-tokens"), ("bench generate", "steps"),
             ("bench generate", "warmup"), ("bench attention", "repeats"),
             ("bench attention", "warmup")}


def main():
    binary, root, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    config = os.path.join(root, "tests", "train_small.yaml")
    source = os.path.join(root, "core")
    data = os.path.join(work, "ds")
    subprocess.run([binary, "data", "build", "--tokenizer", "bytes", "--source", source, "--out",
                    data, "--no-progress"], check=True, capture_output=True)
    model = ["--config", config, "--random-init", "--device", "cpu"]
    # Small valid runs; the flag under test replaces its value here or is appended.
    base = {
        "generate": model + ["--prompt", "int x", "--max-new-tokens", "3"],
        "eval": model + ["--data", data, "--context-lens", "32,64", "--batches", "1"],
        "bench generate": model + ["--dtype", "float32", "--prompt-lens", "200", "--batches", "1",
                                   "--steps", "2", "--warmup", "1"],
        "check generate": ["--config", config, "--seq-len", "150"],
        "check attention": ["--seq-len", "64", "--segments", "16,32", "--rates", "1,2", "--heads",
                            "2", "--head-dim", "8"],
        "bench attention": ["--device", "cpu", "--dtype", "float32", "--seq-lens", "64", "--tokens",
                            "64", "--heads", "2", "--head-dims", "8", "--segments", "16,32",
                            "--rates", "1,2", "--warmup", "0", "--repeats", "1"],
        "data build": ["--tokenizer", "bytes", "--source", source, "--no-progress"],
        "tokenizer train": ["--source", source, "--vocab-size", "600"],
    }
    outputs = {"data build": "data_out", "tokenizer train": "tok.model"}

    jobs = []
    for command, args in base.items():
        usage = subprocess.run([binary] + command.split() + ["--help"], capture_output=True,
                               text=True).stdout
        flags = re.findall(r"^  --([a-z0-9-]+) \(default (-?[0-9][0-9.e,]*)\)", usage, re.M)
        if not flags:
            sys.exit(f"flag_edges: no numeric flags found in `longnet {command} --help`")
        for flag, _ in flags:
            for value in EDGES:
                jobs.append((command, flag, value, args))

    def run(job):
        command, flag, value, args = job
        args = list(args)
        if "--" + flag in args:
            args[args.index("--" + flag) + 1] = value
        else:
            args += ["--" + flag, value]
        tag = f"{command}-{flag}-{len(value)}-{abs(hash(value)) % 10**8}"
        if command in outputs:  # a fresh output per run (runs go two at a time)
            out = os.path.join(work, tag + "-" + outputs[command])
            args += ["--out", out]
        line = f"longnet {command} --{flag} {value!r}"
        try:
            p = subprocess.run([binary] + command.split() + args, capture_output=True, text=True,
                               errors="replace", timeout=TIMEOUT_S, cwd=work)
        except subprocess.TimeoutExpired:
            if (command, flag) in LONG_RUNS:
                return None, f"ok (runs as long as asked): {line}"
            return f"{line}: still running after {TIMEOUT_S} s", None
        text = p.stdout + p.stderr
        crash = [s for s in CRASH_SIGNS if s in text]
        if p.returncode not in (0, 1) or crash:
            return f"{line}: status {p.returncode} {crash}\n{text[-1500:]}", None
        if p.returncode == 1 and "error:" not in text:
            return f"{line}: status 1 without an error line\n{text[-800:]}", None
        first_error = next((l for l in text.splitlines() if "error:" in l), "ran")
        return None, f"ok: {line}: {first_error[:150]}"

    failures, refused = [], 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for failure, ok in pool.map(run, jobs):
            if failure:
                failures.append(failure)
                print("FAIL: " + failure, flush=True)
            else:
                refused += "error:" in ok
                print(ok, flush=True)
    if failures:
        sys.exit(f"flag edges: {len(failures)} of {len(jobs)} runs did not end cleanly")
    print(f"flag edges: all {len(jobs)} runs ended cleanly ({refused} refused, "
          f"{len(jobs) - refused} ran)")


if __name__ == "__main__":
    main()
