#!/usr/bin/env python3
"""A synthetic tiktoken ranks file of cl100k_base's size, for speed runs where the real file
cannot be had: exactly 100,256 ranks (longnet then gives cl100k's special ids, vocabulary
100,277). Ranks 0..255 are the 256 bytes; the others are random strings over a text-like
alphabet (letters, digits, space, punctuation, a few UTF-8 letters), each added together with
its prefixes so that byte-pair merges can reach most of them. Deterministic for a seed; standard
library only.

usage: synthetic_ranks.py OUT.tiktoken [--ranks 100256] [--seed 1]
"""
import argparse
import base64
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--ranks", type=int, default=100256)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    alphabet = (letters * 6 + letters.upper() + "0123456789" * 2 + " " * 20 + "_.,;:(){}[]<>=+-*/#\n\t"
                + "éàüß")
    order = list(range(256))
    rng.shuffle(order)
    ranks = {bytes([b]): r for r, b in enumerate(order)}
    while len(ranks) < a.ranks:
        n = min(2 + int(rng.expovariate(0.35)), 24)
        word = "".join(rng.choice(alphabet) for _ in range(n)).encode("utf-8")
        for k in range(2, len(word) + 1):
            if len(ranks) >= a.ranks:
                break
            ranks.setdefault(word[:k], len(ranks))
    with open(a.out, "wb") as f:
        for tok, r in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(base64.b64encode(tok) + b" " + str(r).encode() + b"\n")
    print(f"{a.out}: {len(ranks)} ranks")


if __name__ == "__main__":
    main()
