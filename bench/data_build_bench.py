#!/usr/bin/env python3
"""`longnet data build` throughput against Python tiktoken on the same corpus, same ranks file.

The real cl100k_base ranks file cannot be downloaded here, so a byte-level BPE ranks file is
trained first (as tests/test_tokenizer_reference.py does: ranks 0..255 the bytes, then the most
frequent merges within cl100k's pre-tokenizer pieces) and both sides use it with cl100k's
pattern. The corpus: UTF-8 text files (C/C++ headers) copied into one directory, each a document.
Measured in one run, one after the other:
  longnet   `longnet data build --tokenizer tiktoken:RANKS --source CORPUS --out DIR
             --val-fraction 0 --workers W` for W = 1, 2 (wall time of the whole command: listing,
             reading, tokenizing, writing shards and manifest)
  tiktoken  Encoding.encode_ordinary over the documents (one thread; reading not timed), and
             encode_ordinary_batch with num_threads = 2
and checks that both give the same number of ids (longnet adds one end-of-text id between
documents). Writes result.json into OUT_DIR.

usage: data_build_bench.py LONGNET_BINARY OUT_DIR [--mb 48] [--merges 8000] [--work DIR]
"""
import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from bpe_ranks import CL100K_PAT, SPECIALS, bpe_train, write_tiktoken  # noqa: E402


def corpus(dst, mb):
    """UTF-8 header files of /usr/include, sorted by path, copied until `mb` MB."""
    texts, total = [], 0
    os.makedirs(dst, exist_ok=True)
    for root, dirs, files in os.walk("/usr/include"):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            if os.path.islink(p) or not name.endswith((".h", ".hpp", ".hh")):
                continue
            try:
                t = open(p, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            if not t or "\0" in t or len(t) > 1 << 20:
                continue
            with open(os.path.join(dst, f"{len(texts):06d}.h"), "w", encoding="utf-8") as f:
                f.write(t)
            texts.append(t)
            total += len(t.encode())
            if total >= mb * 1e6:
                return texts
    return texts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("longnet")
    ap.add_argument("out_dir")
    ap.add_argument("--mb", type=float, default=48)
    ap.add_argument("--merges", type=int, default=8000)
    ap.add_argument("--work", default="/tmp/longnet_data_build_bench")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    import tiktoken
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    src = os.path.join(a.work, "corpus")
    t0 = time.time()
    texts = corpus(src, a.mb)
    text_bytes = sum(len(t.encode()) for t in texts)
    rng = random.Random(20)
    train_text = "".join(texts[::7])[:3_000_000]
    ranks = bpe_train(train_text, a.merges, CL100K_PAT, rng)
    ranks_path = os.path.join(a.work, "bench.tiktoken")
    write_tiktoken(ranks_path, ranks)
    print(f"corpus: {len(texts)} files, {text_bytes / 1e6:.1f} MB; ranks file: {len(ranks)} ranks "
          f"({time.time() - t0:.0f} s to prepare)", flush=True)
    n = len(ranks)
    enc = tiktoken.Encoding("bench", pat_str=CL100K_PAT, mergeable_ranks=ranks,
                            special_tokens={s: n + i for i, s in enumerate(SPECIALS)})

    results = {"longnet": [], "tiktoken": []}
    load_start = open("/proc/loadavg").read().split()[:3]
    for repeat in range(a.repeats):
        ids_longnet = None
        for workers in (1, 2):
            out = os.path.join(a.work, f"ds_w{workers}")
            shutil.rmtree(out, ignore_errors=True)
            cmd = [a.longnet, "data", "build", "--tokenizer", "tiktoken:" + ranks_path, "--source",
                   src, "--out", out, "--val-fraction", "0", "--workers", str(workers),
                   "--no-progress"]
            t = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t
            if r.returncode != 0:
                sys.exit(f"longnet data build failed: {r.stderr}")
            m = json.load(open(os.path.join(out, "manifest.json")))
            ids_longnet = m["splits"]["train"]["tokens"]
            # The build's own time (its summary line): the command less the process start, which
            # loads LibTorch's shared libraries.
            inner = float(re.search(r"MB of text in ([0-9.]+) s", r.stdout).group(1))
            results["longnet"].append({"repeat": repeat, "workers": workers, "seconds": dt,
                                       "mb_per_s": text_bytes / 1e6 / dt,
                                       "mb_per_s_per_core": text_bytes / 1e6 / dt / workers,
                                       "build_seconds": inner,
                                       "build_mb_per_s": text_bytes / 1e6 / inner,
                                       "tokens": ids_longnet, "summary": r.stdout.strip()})
            print(f"longnet data build, {workers} worker(s): {dt:.2f} s wall, "
                  f"{text_bytes / 1e6 / dt:.2f} MB/s ({inner:.2f} s, "
                  f"{text_bytes / 1e6 / inner:.2f} MB/s without the process start)", flush=True)
        t = time.perf_counter()
        encoded = [enc.encode_ordinary(x) for x in texts]
        dt = time.perf_counter() - t
        ids = sum(len(x) for x in encoded)
        results["tiktoken"].append({"repeat": repeat, "threads": 1, "seconds": dt,
                                    "mb_per_s": text_bytes / 1e6 / dt,
                                    "mb_per_s_per_core": text_bytes / 1e6 / dt, "tokens": ids})
        print(f"tiktoken encode_ordinary, 1 thread: {dt:.2f} s, {text_bytes / 1e6 / dt:.2f} MB/s",
              flush=True)
        t = time.perf_counter()
        ids2 = sum(len(x) for x in enc.encode_ordinary_batch(texts, num_threads=2))
        dt = time.perf_counter() - t
        results["tiktoken"].append({"repeat": repeat, "threads": 2, "seconds": dt,
                                    "mb_per_s": text_bytes / 1e6 / dt,
                                    "mb_per_s_per_core": text_bytes / 1e6 / dt / 2, "tokens": ids2})
        print(f"tiktoken encode_ordinary_batch, 2 threads: {dt:.2f} s, "
              f"{text_bytes / 1e6 / dt:.2f} MB/s", flush=True)
    # The ids themselves: the shards' tokens = the documents' ids joined by the end-of-text id.
    import array
    got = array.array("H" if m["token_bytes"] == 2 else "I")
    for shard in m["splits"]["train"]["shards"]:
        got.frombytes(open(os.path.join(out, shard["file"]), "rb").read()[64:])
    want = array.array(got.typecode)
    for i, x in enumerate(encoded):
        if i:
            want.append(m["tokenizer"]["eot_id"])
        want.extend(x)
    same = got == want and ids == ids2
    print(f"ids: longnet's {len(got)} = tiktoken's {ids} + {len(texts) - 1} end-of-text, "
          f"id for id: {same}")
    def fastest(rows, key):
        out = {}
        for r in rows:
            if r[key] not in out or r["seconds"] < out[r[key]]["seconds"]:
                out[r[key]] = r
        return list(out.values())
    best = {"longnet": fastest(results["longnet"], "workers"),
            "tiktoken": fastest(results["tiktoken"], "threads")}
    for r in best["longnet"]:
        print(f"best longnet, {r['workers']} worker(s): {r['mb_per_s']:.2f} MB/s wall, "
              f"{r['build_mb_per_s']:.2f} MB/s without the process start")
    for r in best["tiktoken"]:
        print(f"best tiktoken, {r['threads']} thread(s): {r['mb_per_s']:.2f} MB/s")
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    load = open("/proc/loadavg").read().split()[:3]
    doc = {
        "what": "longnet data build vs Python tiktoken, same corpus and ranks file",
        "date": time.strftime("%Y-%m-%d"), "commit": commit,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "loadavg_at_start": load_start, "loadavg_at_end": load,
                    "note": "2 cores shared with other work (loadavg above)"},
        "tiktoken_version": tiktoken.__version__,
        "corpus": {"files": len(texts), "text_bytes": text_bytes, "source": "/usr/include headers"},
        "ranks": {"count": n, "merges": n - 256, "pattern": "cl100k_base"},
        "same_ids": same, "results": results, "best": best,
        "command": " ".join(sys.argv),
    }
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "result.json"), "w") as f:
        json.dump(doc, f, indent=2)
    print("wrote " + os.path.join(a.out_dir, "result.json"))
    if not same:
        sys.exit("FAIL: the id counts differ")


if __name__ == "__main__":
    main()
