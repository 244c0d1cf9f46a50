#!/usr/bin/env python3
"""A synthetic longnet dataset (train/dataset_manifest.h) of random token ids, for speed runs on
a machine whose longnet build lacks a tokenizer (tiktoken needs PCRE2): shards of uint32 ids
drawn from a Zipf-like law over the vocabulary, documents of random length separated by the
end-of-text id, and a manifest that names the tokenizer by kind and the SHA-256 of its file, as
`longnet data build` would, so that training checks data.tokenizer against it without the
tokenizer's library. Standard library only.

usage: synthetic_dataset.py RANKS.tiktoken OUT_DIR [--tokens 200000000] [--val-tokens 2000000]
                            [--shard-tokens 67108864] [--seed 1]
"""
import argparse
import array
import hashlib
import json
import os
import random
import zlib

VOCAB, EOT = 100277, 100257  # cl100k_base's (a ranks file of 100,256 ranks)


def shard(path, ids, split, index):
    body = ids.tobytes()
    header = bytearray(64)
    header[0:8] = b"LNSHARD1"
    header[8:12] = (1).to_bytes(4, "little")
    header[12:16] = (4).to_bytes(4, "little")
    header[16:20] = VOCAB.to_bytes(4, "little")
    header[20:24] = (64).to_bytes(4, "little")
    header[24:32] = len(ids).to_bytes(8, "little")
    header[32:36] = split.to_bytes(4, "little")
    header[36:40] = index.to_bytes(4, "little")
    with open(path + ".tmp", "wb") as f:
        f.write(header)
        f.write(body)
    os.replace(path + ".tmp", path)
    return {"file": os.path.basename(path), "tokens": len(ids), "bytes": 64 + len(body),
            "crc32": "%08x" % zlib.crc32(body),
            "end": {"file": 0, "unit": 0, "index": 0, "doc": 0, "token": 0},
            "corpus_prefix": ""}


def split_tokens(rng, total, shard_tokens, out, name, split):
    # Zipf-like ids from a table of 1M draws (drawing each id in Python would take minutes).
    table = array.array("I", (min(VOCAB - 1, int(rng.paretovariate(1.1)) - 1) if rng.random() < .9
                              else rng.randrange(VOCAB) for _ in range(1 << 20)))
    shards, made = [], 0
    while made < total:
        n = min(shard_tokens, total - made)
        ids = array.array("I")
        while len(ids) < n:
            start = rng.randrange(len(table) - 5000)
            ids.extend(table[start:start + rng.randrange(200, 5000)])
            ids.append(EOT)
        del ids[n:]
        shards.append(shard(os.path.join(out, f"{name}_{len(shards):06d}.bin"), ids, split,
                            len(shards)))
        made += n
    return {"tokens": total, "shards": shards}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ranks")
    ap.add_argument("out")
    ap.add_argument("--tokens", type=int, default=200_000_000)
    ap.add_argument("--val-tokens", type=int, default=2_000_000)
    ap.add_argument("--shard-tokens", type=int, default=1 << 26)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    sha = hashlib.sha256(open(a.ranks, "rb").read()).hexdigest()
    m = {"format": "longnet-dataset", "version": 1, "complete": True,
         "tokenizer": {"kind": "tiktoken", "spec": "tiktoken:" + os.path.abspath(a.ranks),
                       "hash": "tiktoken:" + sha, "vocab_size": VOCAB, "eot_id": EOT},
         "token_bytes": 4, "shard_tokens": a.shard_tokens, "val_fraction": 0.01,
         "jsonl_field": "text", "sources": ["synthetic"],
         "corpus": {"files": 0, "fingerprint": "synthetic", "documents": 0, "units": 0},
         "splits": {"train": split_tokens(rng, a.tokens, a.shard_tokens, a.out, "train", 0),
                    "val": split_tokens(rng, a.val_tokens, a.shard_tokens, a.out, "val", 1)}}
    with open(os.path.join(a.out, "manifest.json.tmp"), "w") as f:
        json.dump(m, f, indent=1)
    os.replace(os.path.join(a.out, "manifest.json.tmp"), os.path.join(a.out, "manifest.json"))
    print(f"{a.out}: {a.tokens} training and {a.val_tokens} validation tokens (synthetic ids)")


if __name__ == "__main__":
    main()
