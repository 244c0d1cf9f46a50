"""A small byte-level BPE trainer and writer of `.tiktoken` ranks files, shared by
tests/test_tokenizer_reference.py and bench/data_build_bench.py (the real cl100k_base ranks file
cannot be downloaded here, so both build one of their own)."""
import base64
import collections

# cl100k_base's pattern as tiktoken ships it (tiktoken_ext/openai_public.py).
CL100K_PAT = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
              r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
SPECIALS = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
            "<|endofprompt|>"]


def bpe_train(text, merges, pat, rng, extras=()):
    """Byte-level BPE as tiktoken's are trained: ranks 0..255 are the single bytes (shuffled, as
    cl100k's are not in byte order), then each merge of the most frequent adjacent pair within
    the pattern's pieces gets the next rank; then each of `extras` (strings) not yet a token."""
    import regex
    counts = collections.Counter(regex.findall(pat, text))
    order = list(range(256))
    rng.shuffle(order)
    ranks = {bytes([b]): r for r, b in enumerate(order)}
    seqs = [[bytes([b]) for b in w.encode("utf-8")] for w in counts]
    weight = list(counts.values())
    pairs, where = collections.Counter(), collections.defaultdict(set)
    for i, s in enumerate(seqs):
        for p in zip(s, s[1:]):
            pairs[p] += weight[i]
            where[p].add(i)
    for _ in range(merges):
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merged = best[0] + best[1]
        if merged not in ranks:
            ranks[merged] = len(ranks)
        for i in where.pop(best, ()):
            s = seqs[i]
            for p in zip(s, s[1:]):
                pairs[p] -= weight[i]
                if pairs[p] <= 0:
                    del pairs[p]
            out, k = [], 0
            while k < len(s):
                if k + 1 < len(s) and (s[k], s[k + 1]) == best:
                    out.append(merged)
                    k += 2
                else:
                    out.append(s[k])
                    k += 1
            seqs[i] = out
            for p in zip(out, out[1:]):
                pairs[p] += weight[i]
                where[p].add(i)
        pairs.pop(best, None)
    for extra in extras:
        b = extra.encode("utf-8")
        if b not in ranks:
            ranks[b] = len(ranks)
    return ranks


def write_tiktoken(path, ranks):
    with open(path, "wb") as f:
        for tok, r in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(base64.b64encode(tok) + b" " + str(r).encode() + b"\n")
