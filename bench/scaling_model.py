#!/usr/bin/env python3
"""Step-time model of sequence-parallel dilated attention and training (docs/scaling.md).

  python3 bench/scaling_model.py --check     measured vs predicted for every recorded point;
                                             exit status 1 if a claimed point is off by > 10%
  python3 bench/scaling_model.py --predict   8, 64 and 512 GPUs on 8-GPU hosts

The model is compute per rank (FLOPs at rates measured on one GPU), plus a fixed cost per
dense problem of a spanning branch, plus the collectives' bytes (counted as
parallel/sequence_parallel_attention.cpp and parallel/grad_sync.cpp move them) over a
latency + bandwidth ring model. Standard library only; reads bench/results/.
"""
import argparse
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
TOLERANCE = 0.10

# ---------------------------------------------------------------------------------------------
# Assumptions (not measured in bench/results; docs/scaling.md section 2 says why each).
# NCCL's own ring cost model, Simple protocol (NVIDIA/nccl src/graph/tuning.cc, baseLat and
# hwLat): a ring collective costs a base latency plus one hop latency per step.
A_BASE = 8.4e-6          # s per collective
A_NVL = 3.4e-6           # s per ring step over NVLink (inside a host)
A_NET = 9.6e-6           # s per ring step over the network (between hosts)
HOST_GPUS = 8            # GPUs per host
NIC_BYTES = 400e9 / 8    # 400 Gb/s per GPU between hosts
NET_EFF = 0.9            # share of the NIC line rate a ring reaches
RESERVE_GIB = 4.0        # CUDA context, NCCL buffers, allocator slack: not in the benchmarks' peak
STATE_BYTES_PER_PARAM = 16  # fp32 parameter, fp32 gradient, AdamW's two fp32 moments
GRAD_BUCKET = 32 << 20      # elements per all-reduce bucket (parallel/grad_sync.h)

GIB = float(1 << 30)
MIB = float(1 << 20)


def path(rel):
    return os.path.join(RESULTS, rel)


def load_json(rel):
    with open(path(rel)) as f:
        return json.load(f)


def load_jsonl(rel):
    with open(path(rel)) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_text(rel):
    with open(path(rel)) as f:
        return f.read()


def mean(xs):
    return sum(xs) / len(xs)


def steps_mean(rows, first=5, last=30):
    """Mean step_ms of steps first..last (docs/performance.md's convention)."""
    st = [r for r in rows if "step_ms" in r]
    hi = min(last, max(r["step"] for r in st))
    return mean([r["step_ms"] for r in st if first <= r["step"] <= hi]), hi


def log_steps_mean(text, first=5, last=30):
    ms = {int(m.group(1)): float(m.group(2))
          for m in re.finditer(r"step (\d+)/\d+ \|.*?\| (\d+) ms/step", text)}
    hi = min(last, max(ms))
    return mean([v for s, v in ms.items() if first <= s <= hi]), hi


def profile_split(text, steps=(2, 3)):
    """Forward and backward ms per micro-step and the per-step rest, from --profile lines."""
    fwd, bwd, rest = [], [], []
    for m in re.finditer(r"profile step (\d+): (.*)", text):
        if int(m.group(1)) not in steps:
            continue
        parts = dict()
        for name, ms in re.findall(r"([a-z +-]+?) (\d+) ms", m.group(2)):
            parts.setdefault(name.strip(", "), []).append(float(ms))
        fwd += parts["forward"]
        bwd += parts["backward"]
        rest.append(sum(parts["all-reduce + norm"]) + sum(parts["optimizer"]))
    return mean(fwd), mean(bwd), mean(rest)


def ints(s):
    return [int(x) for x in str(s).split(",")]


# ---------------------------------------------------------------------------------------------
# Counting (docs/design.md section 6, core/dilated_plan.cpp dilated_forward_flops).

def branch_flops(B, N, H, D, w, r, causal):
    """Forward FLOPs of one branch over the whole sequence."""
    w = min(w, N)
    f = 4.0 * B * H * D * (N / w) * (w / r) ** 2
    return f / 2 if causal else f


def split(N, sp, w, r):
    """Branches of a rank holding L = N / sp tokens: (local, spanning), as split_branches()."""
    L = N // sp
    local, span = [], []
    for wi, ri in zip(w, r):
        wi = min(wi, N)
        (local if wi <= L else span).append((wi, ri))
    return L, local, span


def spanning_units(N, sp, w, r, H, causal):
    """Dense problems (+1 merge group) per offset class that the slowest rank runs for the
    spanning branches: class_calls() gives rank `me` its own rows plus every other rank's
    (only the earlier ones under is_causal) for min(r, H) classes; the last rank runs g
    problems either way, and the benchmarks report the slowest rank."""
    L, local, span = split(N, sp, w, r)
    total = 0
    for wi, ri in span:
        g = wi // L
        calls = g  # own + (g-1) others, or own + the g-1 earlier ones on the last rank if causal
        total += min(ri, H) * (calls + 1)
    return total


# ---------------------------------------------------------------------------------------------
# Collectives: bytes as the code moves them, time by a ring model.

def hosts(g):
    return max(1, math.ceil(g / HOST_GPUS))


def ring_latency(g, per_rank_steps=1):
    """NCCL ring: base + one hop per step; g consecutive ranks on ceil(g/8) hosts."""
    if g <= 1:
        return 0.0
    h = hosts(g)
    return A_BASE + per_rank_steps * ((g - h) * A_NVL + (h - 1) * A_NET)


def ring_bw(g, c, pessimistic=False):
    """Bus bandwidth of a ring over g consecutive ranks. Inside a host: the measured
    MB-size all-gather rate. Across hosts a ring leaves each host through all 8 NICs
    (rail-aligned channels), so the host's 8 x 400 Gb/s bound it; pessimistic: one NIC."""
    if hosts(g) == 1:
        return c["beta"]
    net = NET_EFF * NIC_BYTES * (1 if pessimistic else HOST_GPUS)
    return min(c["beta"], net)


def t_all_gather(block_bytes, g, c, pessimistic=False):
    """All-gather of one block per rank: (g-1) blocks on the wire per rank."""
    if g <= 1:
        return 0.0
    return ring_latency(g) + (g - 1) * block_bytes / ring_bw(g, c, pessimistic)


def t_reduce_scatter(buffer_bytes, g, c, pessimistic=False):
    """Reduce-scatter of a g-block buffer: (g-1)/g of it on the wire per rank."""
    if g <= 1:
        return 0.0
    return ring_latency(g) + (g - 1) / g * buffer_bytes / ring_bw(g, c, pessimistic)


def t_all_reduce(nbytes, n, c, buckets=1, pessimistic=False):
    if n <= 1:
        return 0.0
    return buckets * ring_latency(n, 2) + 2 * (n - 1) / n * nbytes / ring_bw(n, c, pessimistic)


def exchange_bytes(N, sp, w, r, B, H, D, elem):
    """Per rank and per spanning branch: the all-gather block (2, B, ceil(L/r), H, D) in the
    input dtype, and the reduce-scatter buffer (g, 2, B, ceil(L/r), H, D) in float32
    (pack_rows, SequenceParallelAttention::backward). bytes_sent() adds block + buffer."""
    L, local, span = split(N, sp, w, r)
    out = []
    for wi, ri in span:
        g = wi // L
        n_loc = -(-L // ri)
        block = 2 * B * n_loc * H * D * elem
        buf = g * 2 * B * n_loc * H * D * 4
        out.append((g, block, buf))
    return out


# ---------------------------------------------------------------------------------------------
# Figure 5 (`longnet bench scaling`, forward, not causal) and the attention benchmark.

def rate_fig5(rows, c):
    """TFLOP/s of the 4 x 8 fp16 forward for dense problems of `rows` rows: the two measured
    levels, interpolated in log2(rows) between 2048 and 8192 rows, flat outside."""
    lo, hi = c["R2048"], c["R8192"]
    x = (math.log2(max(rows, 1)) - 11) / 2
    x = min(1.0, max(0.0, x))
    return lo + (hi - lo) * x


def fig5_forward(N, sp, B_rank, H, D, w, r, c, parts=False):
    L, local, span = split(N, sp, w, r)
    t_local = 0.0
    for wi, ri in local:
        t_local += branch_flops(B_rank, L, H, D, wi, ri, False) / rate_fig5(wi / ri, c)
    t_span = 0.0
    for wi, ri in span:
        f = branch_flops(B_rank, wi, H, D, wi, ri, False) * (N // wi) / sp
        t_span += f / rate_fig5(wi / ri, c)
    t_calls = spanning_units(N, sp, w, r, H, False) * c["c_f"]
    t_ag = sum(t_all_gather(b, g, c) for g, b, _ in exchange_bytes(N, sp, w, r, B_rank, H, D, 2))
    exposed = max(0.0, t_ag - t_local)
    total = t_local + t_span + t_calls + exposed
    if parts:
        return total, dict(local=t_local, span=t_span, calls=t_calls, ag=t_ag, exposed=exposed)
    return total


def weak_schedule(N, L, first=2048):
    """`bench attention --weak-scaling-first F`: segments {F, L, N}, rates w / F."""
    w = [first, L, N]
    return w, [x // first for x in w]


def weak_attention(P, T1_f, T1_fb, c, L=1 << 20, H=12, D=64, pessimistic=False):
    """Weak-scaling benchmark at P ranks from its P = 1 times: the work per rank is the same by
    construction, so what changes is the spanning branch's problems and collectives."""
    N = P * L
    w, r = weak_schedule(N, L)
    if P == 1:
        return T1_f, T1_fb, dict(units=0, ag=0.0, rs=0.0)
    u = spanning_units(N, P, w, r, H, True)
    ex = exchange_bytes(N, P, w, r, 1, H, D, 2)
    t_ag = sum(t_all_gather(b, g, c, pessimistic) for g, b, _ in ex)
    t_rs = sum(t_reduce_scatter(buf, g, c, pessimistic) for g, _, buf in ex)
    # The all-gather overlaps the local branches (all but a negligible part of T1_f); the
    # reduce-scatter is waited for right after the spanning problems, so it is exposed.
    exposed_ag = max(0.0, t_ag - T1_f)
    tf = T1_f + u * c["c_f"] + exposed_ag
    tfb = T1_fb + u * c["c_fb"] + t_rs + exposed_ag
    return tf, tfb, dict(units=u, ag=t_ag, rs=t_rs)


# ---------------------------------------------------------------------------------------------
# Training: per-token time of base.yaml on one GPU, recompute for checkpointing, collectives.

N_PARAMS = 85_541_632     # base.yaml / long_1m.yaml (the training logs' "85541632 parameters")
LAYERS, D_MODEL, HEADS = 12, 768, 12
LONG_W = [2048, 4096, 8192, 16384, 32768]
LONG_R = [1, 2, 4, 6, 12]


def train_step(tokens_rank, P, inp, c, ckpt=True, extra_branch=False, pessimistic=False):
    """One optimizer step of a rank holding tokens_rank tokens of one sequence split over P
    sequence-parallel ranks (B = 1, no accumulation). extra_branch adds a branch (N, N/2048)."""
    t = inp["t_tok"] * tokens_rank * (1 + (inp["f_fwd"] if ckpt else 0.0)) + inp["t_rest"]
    grads = 4 * N_PARAMS  # fp32 gradients of the fp32 master weights
    buckets = -(-N_PARAMS // GRAD_BUCKET)
    t_ar = t_all_reduce(grads, P, c, buckets, pessimistic)
    extra = dict(ar=t_ar, calls=0.0, rs=0.0, ag_exposed=0.0)
    if extra_branch and P > 1:
        N = tokens_rank * P
        w, r = LONG_W + [N], LONG_R + [N // 2048]
        u = spanning_units(N, P, w, r, HEADS, True)
        ex = exchange_bytes(N, P, w, r, 1, HEADS, D_MODEL // HEADS, 2)
        t_ag = sum(t_all_gather(b, g, c, pessimistic) for g, b, _ in ex)
        t_rs = sum(t_reduce_scatter(buf, g, c, pessimistic) for g, _, buf in ex)
        # Per layer: forward and recompute (c_f each) and backward (c_fb - c_f). The all-gather
        # overlaps the layer's local attention forward (its FLOPs at the measured forward rate
        # of the weak-scaling benchmark at P = 1); the reduce-scatter is exposed.
        L, local, _ = split(N, P, w, r)
        f_local = sum(branch_flops(1, L, HEADS, D_MODEL // HEADS, wi, ri, True) for wi, ri in local)
        t_local = f_local / c["R_attn"]
        fwd_passes = 2 if ckpt else 1
        extra["calls"] = LAYERS * u * (c["c_f"] + c["c_fb"] if ckpt else c["c_fb"])
        extra["rs"] = LAYERS * t_rs
        extra["ag_exposed"] = LAYERS * fwd_passes * max(0.0, t_ag - t_local)
        extra["ag"], extra["t_local"] = t_ag, t_local
    return t + t_ar + extra["calls"] + extra["rs"] + extra["ag_exposed"], extra


def train_inputs(base_rel, profile_rel, profile_steps=(2, 3), tokens=524288):
    rows = load_jsonl(base_rel)
    step, hi = steps_mean(rows)
    fwd, bwd, rest = profile_split(read_text(profile_rel), profile_steps)
    return dict(step=step, fwd=fwd, bwd=bwd, t_rest=rest * 1e-3, f_fwd=fwd / (fwd + bwd),
                t_tok=(step - rest) * 1e-3 / tokens, peak=max(r.get("peak_gib", 0) for r in rows),
                hi=hi)


# ---------------------------------------------------------------------------------------------
# Sources and fits.

F1 = "2026-11-27_h200_scaling/scaling_1gpu_h200.json"
F2 = "2026-11-27_h200_scaling/scaling_2gpu_paper_h200.json"
F4 = "2026-11-27_h200x4/scaling_4gpu_paper_h200.json"
WEAK = {
    "c06ecdf": "2026-11-27_h200x4/weak_scaling_p{}_h200.json",
    "ff6a866": "2026-11-27_h200x4_ff6a866/weak_scaling_p{}_h200.json",
    "20f7a3c": "2026-11-27_h200_final/weak_scaling_p{}_h200.json",
}
WEAK_PS = {"c06ecdf": (1, 2, 4), "ff6a866": (1, 2, 4), "20f7a3c": (1, 2)}
FIT_RUN = "c06ecdf"


def weak_rows():
    out = {}
    for run, pat in WEAK.items():
        for P in WEAK_PS[run]:
            rel = pat.format(P)
            j = load_json(rel)
            out[(run, P)] = (rel, j, j["rows"][0])
    return out


def row_flops(row):
    """Forward FLOPs per rank of a data-parallel `bench scaling` row."""
    return sum(branch_flops(row["batch_per_rank"], row["seq_len"], row["heads"], row["head_dim"],
                            wi, ri, False)
               for wi, ri in zip(ints(row["segments"]), ints(row["rates"])))


def fit():
    """The fitted constants, each from one stated point."""
    c = {}
    weak = weak_rows()
    # beta: all-gather of the weak-scaling benchmark's spanning branch, P = 4, c06ecdf
    rel, j, row = weak[(FIT_RUN, 4)]
    g, block = 4, row["allgather_bytes_per_rank_branch2"]
    c["beta"] = (g - 1) * block / (row["allgather_ms_branch2"] * 1e-3 - ring_latency(g))
    c["beta_src"] = rel
    # c_f, c_fb: the P = 2 weak-scaling point of c06ecdf over its P = 1 point
    _, _, r1 = weak[(FIT_RUN, 1)]
    rel2, _, r2 = weak[(FIT_RUN, 2)]
    L, H, D = r1["seq_len"], r2["heads"], r2["head_dim"]
    N = 2 * L
    w, r = weak_schedule(N, L)
    u = spanning_units(N, 2, w, r, H, True)
    ex = exchange_bytes(N, 2, w, r, 1, H, D, 2)
    t_rs = sum(t_reduce_scatter(buf, gg, c) for gg, _, buf in ex)
    c["c_f"] = (r2["forward_ms"] - r1["forward_ms"]) * 1e-3 / u
    c["c_fb"] = ((r2["forward_backward_ms"] - r1["forward_backward_ms"]) * 1e-3 - t_rs) / u
    c["c_src"] = rel2
    # R_attn (only to test whether a training all-gather hides): the P = 1 forward rate
    c["R_attn"] = r1["forward_tflops"] * 1e12
    # R2048: Figure 5's 4-GPU run at N = 2^20 (data parallel: every rank alone)
    row = [x for x in load_json(F4)["rows"] if x["seq_len"] == 1 << 20][0]
    c["R2048"] = row_flops(row) / (row["forward_ms"] * 1e-3)
    # R8192: Figure 5's one-GPU reference schedule at N = 16384 (8192-row problems only)
    row = [x for x in load_json(F1)["rows"]
           if x["seq_len"] == 16384 and x["attention"] == "dilated"][0]
    c["R8192"] = row_flops(row) / (row["forward_ms"] * 1e-3)
    return c


# One-GPU training inputs per commit: base.yaml's metrics (4 x 32K per forward, 4 accumulated)
# and the log holding its --profile lines.
TRAIN_INPUTS = {
    "6ae418d": ("2026-11-27_h200x4_6ae418d/train_base_32k_h200.jsonl",
                "2026-11-27_h200x4_6ae418d/logs/train_base.log"),
    "80c1f02": ("2026-11-27_h200_80c1f02/train_base_32k_h200.jsonl",
                "2026-11-27_h200_80c1f02/logs/train_base.log"),
}


# ---------------------------------------------------------------------------------------------
# --check

class Table:
    def __init__(self):
        self.rows = []

    def add(self, group, point, src, commit, card, measured, predicted, role, unit="ms"):
        err = (predicted - measured) / measured if measured else 0.0
        self.rows.append(dict(group=group, point=point, src=src, commit=commit, card=card,
                              measured=measured, predicted=predicted, err=err, role=role,
                              unit=unit))


def fmt_val(v, unit):
    if unit == "ms":
        return "%.3f" % v if v < 100 else "%.1f" % v
    if unit == "us":
        return "%.1f" % v
    return "%d" % v


def card_of(j):
    n = j.get("world_size", 1)
    return "%d x %s" % (n, j.get("device", "?").replace("NVIDIA ", ""))


def check(args):
    c = fit()
    t = Table()
    weak = weak_rows()
    comm_share, over = [], []

    # 1. Bytes each rank sends (exact counts from the code's shapes).
    for (run, P), (rel, j, row) in sorted(weak.items()):
        if P == 1:
            continue
        N, L = row["seq_len"], row["seq_len"] // P
        w, r = ints(row["segments"]), ints(row["rates"])
        ex = exchange_bytes(N, P, w, r, row["batch"], row["heads"], row["head_dim"], 2)
        t.add("bytes", "weak P=%d all-gather block" % P, rel, j["commit"], card_of(j),
              row["allgather_bytes_per_rank_branch2"], sum(b for _, b, _ in ex), "exact", "B")
        t.add("bytes", "weak P=%d bytes_sent per step" % P, rel, j["commit"], card_of(j),
              row["bytes_sent_per_rank_per_step"], sum(b + f for _, b, f in ex), "exact", "B")
    for rel, commit, card in (("2026-11-27_h200x4_6ae418d/logs/summary.txt", "6ae418d", "4 x H200"),
                              ("2026-11-27_h200x2_80c1f02/summary.txt", "80c1f02", "2 x H200")):
        text = read_text(rel)
        m = re.search(r"\[check_span\].*?-np (\d+) .*?--seq-len (\d+) --heads (\d+)"
                      r" --head-dim (\d+) --segments ([\d,]+) --rates ([\d,]+)"
                      r".*?bytes sent per rank: (\d+)", text, re.S)
        P, N, H, D = (int(m.group(i)) for i in (1, 2, 3, 4))
        ex = exchange_bytes(N, P, ints(m.group(5)), ints(m.group(6)), 1, H, D, 2)
        t.add("bytes", "check attention P=%d (spanning)" % P, rel, commit, card,
              int(m.group(7)), sum(b + f for _, b, f in ex), "exact", "B")

    # 2. All-gather time of the spanning branch (the benchmark's own measurement).
    for (run, P), (rel, j, row) in sorted(weak.items()):
        if P == 1:
            continue
        pred = t_all_gather(row["allgather_bytes_per_rank_branch2"], P, c)
        role = "fit" if (run, P) == (FIT_RUN, 4) else "held out"
        mb = row["allgather_bytes_per_rank_branch2"] / 1e6
        t.add("all-gather", "weak P=%d, %.2f MB per rank" % (P, mb), rel, j["commit"],
              card_of(j), row["allgather_ms_branch2"] * 1e3, pred * 1e6, role, "us")

    # 3. Weak scaling, 12 x 64 bf16 causal, 2^20 tokens per GPU.
    for (run, P), (rel, j, row) in sorted(weak.items()):
        if P == 1:
            continue
        _, _, r1 = weak[(run, 1)]
        tf, tfb, d = weak_attention(P, r1["forward_ms"] * 1e-3, r1["forward_backward_ms"] * 1e-3, c)
        role = "fit" if (run, P) == (FIT_RUN, 2) else "held out"
        comm_share.append((d["rs"] / tfb, "weak scaling %s P=%d forward+backward" % (run, P)))
        over.append((run, P, (row["forward_ms"] - r1["forward_ms"]) * 1e3 / d["units"],
                     ((row["forward_backward_ms"] - r1["forward_backward_ms"]) * 1e-3 - d["rs"])
                     * 1e6 / d["units"], d["units"]))
        t.add("weak scaling", "P=%d forward" % P, rel, j["commit"], card_of(j),
              row["forward_ms"], tf * 1e3, role)
        t.add("weak scaling", "P=%d forward+backward" % P, rel, j["commit"], card_of(j),
              row["forward_backward_ms"], tfb * 1e3, role)

    # 4. Figure 5.
    for rel in (F1, F2, F4):
        j = load_json(rel)
        for row in j["rows"]:
            if row["forward_ms"] != row["forward_ms"]:  # NaN: not timed
                continue
            N, sp = row["seq_len"], row["sequence_parallel"]
            if row["attention"] == "dense":
                w, r = [N], [1]
            else:
                w, r = ints(row["segments"]), ints(row["rates"])
            pred = fig5_forward(N, sp, row["batch_per_rank"], row["heads"], row["head_dim"],
                                w, r, c)
            role = "held out"
            if rel == F4 and N == 1 << 20:
                role = "fit"
            if rel == F1 and N == 16384 and row["attention"] == "dilated":
                role = "fit"
            name = "N=2^%d %s dp%d sp%d" % (round(math.log2(N)), row["attention"],
                                            row["data_parallel"], sp)
            t.add("figure 5 (%d GPU)" % j["world_size"], name, rel, j["commit"], card_of(j),
                  row["forward_ms"], pred * 1e3, role)

    # 5. Training (one sequence per step, sequence parallel, activation checkpointing).
    inp = {k: train_inputs(*v) for k, v in TRAIN_INPUTS.items()}
    rel = "2026-11-27_h200x4_6ae418d/train_long_1m_sp4_h200.jsonl"
    meas, hi = steps_mean(load_jsonl(rel))
    pred, e = train_step(262144, 4, inp["6ae418d"], c)
    comm_share.append((e["ar"] / pred, "training 6ae418d, sp 4"))
    t.add("training", "long_1m, N=1M, sp 4 (5-%d)" % hi, rel, "6ae418d", "4 x H200",
          meas, pred * 1e3, "held out")
    rel = "2026-11-27_h200x2_80c1f02/train_sp2.log"
    meas, hi = log_steps_mean(read_text(rel))
    pred, e = train_step(262144, 2, inp["80c1f02"], c)
    comm_share.append((e["ar"] / pred, "training 80c1f02, sp 2"))
    t.add("training", "long_1m, N=524288, sp 2 (log, 5-%d)" % hi, rel, "80c1f02",
          "2 x H200", meas, pred * 1e3, "held out")
    # Not claimed: b6e02f8 has no forward/backward profile of its own (fd3be04's is used).
    b4, hi_b = steps_mean(load_jsonl("2026-11-27_h200_training/train_base_32k_b4_h200.jsonl"))
    pf, pb, prest = profile_split(read_text("2026-11-27_h200_fd3be04/profile_base.log"))
    old = dict(t_tok=(b4 - prest) * 1e-3 / 131072, f_fwd=pf / (pf + pb), t_rest=prest * 1e-3)
    for rel, tok in (("2026-11-27_h200_training/train_long_1m_sp2_h200.jsonl", 524288),
                     ("2026-11-27_h200_training/train_long_524288_sp2_h200.jsonl", 262144)):
        meas, hi = steps_mean(load_jsonl(rel))
        pred, _ = train_step(tok, 2, old, c)
        name = "long_1m, N=%s, sp 2 (5-%d)" % ("1M" if tok == 524288 else "524288", hi)
        t.add("training", name, rel, "b6e02f8", "2 x H200", meas, pred * 1e3, "not claimed")
    # The same with b6e02f8's one-sequence base.yaml run as the per-token input instead.
    b1, _ = steps_mean(load_jsonl("2026-11-27_h200_training/train_base_32k_b1_h200.jsonl"))
    old_b1 = dict(old, t_tok=(b1 - prest) * 1e-3 / 32768)
    meas, hi = steps_mean(load_jsonl(rel))
    pred, _ = train_step(262144, 2, old_b1, c)
    t.add("training", "the same, 1-sequence base input", rel, "b6e02f8", "2 x H200", meas,
          pred * 1e3, "not claimed")

    # Print.
    print("scaling model check (docs/scaling.md); tolerance %.0f%% on claimed points"
          % (TOLERANCE * 100))
    print("fitted constants:")
    print("  beta  = %6.1f GB/s   ring bus bandwidth of MB-size collectives in a host (fit: %s,"
          " P=4 all-gather)" % (c["beta"] / 1e9, c["beta_src"]))
    print("  c_f   = %6.1f us     per spanning unit (a dense problem or a class's merge), forward"
          " (fit: %s, P=2 - P=1)" % (c["c_f"] * 1e6, c["c_src"]))
    print("  c_fb  = %6.1f us     the same, forward + backward" % (c["c_fb"] * 1e6))
    print("  R2048 = %6.2f TFLOP/s  4 x 8 fp16 forward, 2048-row problems (fit: %s, N=2^20)"
          % (c["R2048"] / 1e12, F4))
    print("  R8192 = %6.2f TFLOP/s  4 x 8 fp16 forward, 8192-row problems (fit: %s, N=2^14)"
          % (c["R8192"] / 1e12, F1))
    print("measured inputs (one GPU, same commit): weak-scaling P=1 times; base.yaml per token:")
    for k, v in inp.items():
        print("  %s: base.yaml step %.1f ms (steps 5-%d) for 524,288 tokens, profile forward %.1f /"
              " backward %.1f ms per micro-step (forward share %.3f), per-step rest %.1f ms"
              % (k, v["step"], v["hi"], v["fwd"], v["bwd"], v["f_fwd"], v["t_rest"] * 1e3))
    print()
    hdr = "  %-36s %-8s %-9s %12s %12s %7s  %-11s %s"
    print(hdr % ("point", "commit", "card", "measured", "predicted", "error", "role",
                 "file (under bench/results/)"))
    bad = []
    group = None
    for row in t.rows:
        if row["group"] != group:
            group = row["group"]
            print("[%s]" % group)
        unit = row["unit"]
        role = row["role"]
        if role in ("held out", "exact") and abs(row["err"]) > TOLERANCE:
            role += " FAIL"
            bad.append(row)
        print(hdr % (row["point"][:36], row["commit"], row["card"],
                     fmt_val(row["measured"], unit) + " " + unit,
                     fmt_val(row["predicted"], unit) + " " + unit,
                     "%+.1f%%" % (100 * row["err"]), role, row["src"]))
    if args.markdown:
        print()
        print("| group | point | measured | predicted | error | role | commit, card |"
              " file (bench/results/) |")
        print("| --- | --- | ---: | ---: | ---: | --- | --- | --- |")
        for row in t.rows:
            u = row["unit"]
            print("| %s | %s | %s %s | %s %s | %+.1f%% | %s | %s, %s | `%s` |" % (
                row["group"], row["point"], fmt_val(row["measured"], u), u,
                fmt_val(row["predicted"], u), u, 100 * row["err"], row["role"], row["commit"],
                row["card"], row["src"]))
    print()
    print("cost per spanning unit implied by each weak-scaling point ((T(P) - T(1)) / units;"
          " model: c_f %.1f us, c_fb %.1f us):" % (c["c_f"] * 1e6, c["c_fb"] * 1e6))
    for run, P, cf, cfb, u in over:
        print("  %s P=%d: %4d units, forward %.1f us, forward+backward %.1f us (less the"
              " reduce-scatter)" % (run, P, u, cf, cfb))
    share, where = max(comm_share)
    print("largest modelled exposed communication in a measured point: %.2f%% of the step (%s);"
          " Figure 5: 0 (all-gathers hidden behind the local branches)" % (100 * share, where))
    claimed = [r for r in t.rows if r["role"] in ("held out", "exact")]
    worst = max(claimed, key=lambda r: abs(r["err"]))
    print()
    print("%d points: %d fit, %d held out, %d exact counts, %d not claimed; worst claimed error"
          " %+.1f%% (%s, %s)" % (len(t.rows), sum(r["role"] == "fit" for r in t.rows),
                                  sum(r["role"] == "held out" for r in t.rows),
                                  sum(r["role"] == "exact" for r in t.rows),
                                  sum(r["role"] == "not claimed" for r in t.rows),
                                  100 * worst["err"], worst["group"], worst["point"]))
    print("not modelled: train_long_1m_sp4_h100.jsonl (21b029a, H100: no one-H100 input),"
          " 2026-11-27_h200x4/train_long_1m_sp4_h200.jsonl (0e9702b: no one-GPU run of that"
          " commit), 2026-11-27_h200_run1 weak scaling (400882f: repeats dropped, not comparable)")
    if bad:
        print("FAIL: %d claimed point(s) off by more than %.0f%%" % (len(bad), TOLERANCE * 100))
        return 1
    print("PASS")
    return 0


# ---------------------------------------------------------------------------------------------
# --predict

def usable_bytes():
    text = read_text("2026-12-04_h200_features/run1/gpu.txt")
    mib = int(re.search(r"H200, (\d+) MiB", text).group(1))
    return mib * MIB - RESERVE_GIB * GIB, mib


def predict(args):
    c = fit()
    Ps = (1, 8, 64, 512)
    pess = args.pessimistic
    print("scaling model predictions (docs/scaling.md); 8-GPU hosts, NVLink inside a host,"
          " 400 Gb/s per GPU between hosts%s"
          % (" (one NIC per ring: pessimistic)" if pess else ""))
    print("constants: beta %.1f GB/s, c_f %.1f us, c_fb %.1f us, R2048 %.2f and R8192 %.2f TFLOP/s;"
          " ring latency %.1f us + %.1f us per NVLink step + %.1f us per network step"
          % (c["beta"] / 1e9, c["c_f"] * 1e6, c["c_fb"] * 1e6, c["R2048"] / 1e12, c["R8192"] / 1e12,
             A_BASE * 1e6, A_NVL * 1e6, A_NET * 1e6))

    # 1. Attention benchmark, weak scaling.
    _, _, r1 = weak_rows()[(FIT_RUN, 1)]
    T1f, T1fb = r1["forward_ms"] * 1e-3, r1["forward_backward_ms"] * 1e-3
    print()
    print("1. Attention weak scaling: `bench attention --weak-scaling-first 2048`, 12 x 64 bf16"
          " causal, 2^20 tokens per GPU, segments {2048, 2^20, N}, one sequence over P GPUs;"
          " P=1 measured (%s)" % WEAK[FIT_RUN].format(1))
    print("   %5s %6s %10s %10s %8s %12s %8s %9s %9s %9s" % (
        "GPUs", "hosts", "N", "fwd ms", "vs 1", "fwd+bwd ms", "vs 1", "units", "AG us", "RS us"))
    for P in Ps:
        tf, tfb, d = weak_attention(P, T1f, T1fb, c, pessimistic=pess)
        print("   %5d %6d %10s %10.2f %7.2fx %12.2f %7.2fx %9d %9.1f %9.1f" % (
            P, hosts(P), "2^%d" % (20 + round(math.log2(P))), tf * 1e3, tf / T1f, tfb * 1e3,
            tfb / T1fb, d["units"], d["ag"] * 1e6, d["rs"] * 1e6))

    # 1b. Figure 5 setting, weak: 2^28 tokens per GPU, one sequence over P GPUs.
    print()
    print("   Figure-5 setting (`bench scaling --schedule paper`, 4 x 8 fp16 forward, not causal),"
          " 2^28 tokens per GPU, one sequence over all GPUs (segments {2048, 2^28, N}):")
    print("   %5s %12s %12s %8s %10s %10s"
          % ("GPUs", "N", "forward ms", "vs 1", "calls ms", "AG us"))
    base = None
    for P in Ps:
        L = 1 << 28
        N = P * L
        w = sorted(set([2048, L, N]))
        r = [max(1, x // 2048) for x in w]
        tot, parts = fig5_forward(N, P, 1, 4, 8, w, r, c, parts=True)
        base = base or tot
        print("   %5d %12s %12.1f %7.3fx %10.2f %10.1f"
              % (P, "2^%d" % round(math.log2(N)), tot * 1e3, tot / base, parts["calls"] * 1e3,
                 parts["ag"] * 1e6))

    # 2. Training, weak scaling.
    inp = train_inputs(*TRAIN_INPUTS["6ae418d"])
    print()
    print("2. Training weak scaling: long_1m.yaml's model (85.5M parameters, activation"
          " checkpointing, bf16), 262,144 tokens per GPU, one sequence over P GPUs; per-token time"
          " from base.yaml on one H200 at 6ae418d (%s)" % TRAIN_INPUTS["6ae418d"][0])
    print("   A: long_1m's segments (<= 32,768: every branch local); B: plus a branch (N, N/2048)"
          " spanning all P GPUs")
    print("   %5s %12s %11s %8s %10s %11s %8s %12s" % (
        "GPUs", "N", "A step ms", "vs 1", "AR ms", "B step ms", "vs 1", "B calls ms"))
    a1 = b1 = None
    for P in Ps:
        ta, ea = train_step(262144, P, inp, c, pessimistic=pess)
        tb, eb = train_step(262144, P, inp, c, extra_branch=True, pessimistic=pess)
        a1, b1 = a1 or ta, b1 or tb
        print("   %5d %12s %11.1f %7.3fx %10.2f %11.1f %7.2fx %12.1f" % (
            P, format(262144 * P, ","), ta * 1e3, ta / a1, ea["ar"] * 1e3, tb * 1e3, tb / b1,
            eb["calls"] * 1e3))
    # B at the largest P: is the all-gather hidden, and below which length per GPU is it not?
    per_tok = eb["t_local"] / 262144
    print("   B at %d GPUs: per layer an all-gather of %.0f us (hidden behind %.2f ms of local"
          " attention forward) and an exposed reduce-scatter of %.0f us; the all-gather is no"
          " longer hidden below about %s tokens per GPU" % (
              Ps[-1], eb["ag"] * 1e6, eb["t_local"] * 1e3, eb["rs"] / LAYERS * 1e6,
              format(int(round(eb["ag"] / per_tok, -3)), ",")))

    # 3. Largest single sequence.
    usable, mib = usable_bytes()
    j4 = load_json(F4)
    row = [x for x in j4["rows"] if x["seq_len"] == 1 << 30][0]
    L_meas = row["seq_len"] // row["sequence_parallel"]
    per_tok_f5 = 4 * 4 * 8 * 2 + 4 * 4  # q, k, v, out fp16 (4 x 8) + lse fp32 per head
    fixed_f5 = row["peak_gib"] * GIB - per_tok_f5 * L_meas
    L5 = int((usable - fixed_f5) // per_tok_f5) // 2048 * 2048
    print()
    print("3. Largest single sequence. Memory per GPU: %d MiB"
          " (2026-12-04_h200_features/run1/gpu.txt)"
          " less %.0f GiB reserve = %.1f GiB" % (mib, RESERVE_GIB, usable / GIB))
    print("   Figure-5 setting: %d B per token (q, k, v, out fp16, lse fp32) + %.2f GiB (chunk"
          " workspace: measured peak %.2f GiB at 2^28 tokens per GPU, %s)"
          % (per_tok_f5, fixed_f5 / GIB, row["peak_gib"], F4))
    print("   -> at most %s tokens per GPU (a multiple of 2048; 2^29 would need %.1f GiB)"
          % (format(L5, ","), (per_tok_f5 * (1 << 29) + fixed_f5) / GIB))
    print("   %5s %18s %14s %12s" % ("GPUs", "N (tokens)", "forward ms", "calls ms"))
    for P in Ps:
        N = P * L5
        w = sorted(set([2048, L5, N]))
        r = [max(1, x // 2048) for x in w]
        tot, parts = fig5_forward(N, P, 1, 4, 8, w, r, c, parts=True)
        print("   %5d %18s %14.1f %12.2f" % (P, format(N, ","), tot * 1e3, parts["calls"] * 1e3))

    tr = "2026-11-27_h200x4_6ae418d/train_long_1m_sp4_h200.jsonl"
    peak = max(r.get("peak_gib", 0) for r in load_jsonl(tr))
    state = STATE_BYTES_PER_PARAM * N_PARAMS
    per_tok_tr = (peak * GIB - state) / 262144
    Lt = int((usable - state) // per_tok_tr) // 32768 * 32768
    print("   Training (long_1m model, checkpointing): %.1f KB per token (measured peak %.2f GiB at"
          " 262,144 tokens per GPU, %s, less %.2f GiB of parameters, gradients and AdamW state)"
          % (per_tok_tr / 1e3, peak, tr, state / GIB))
    print("   -> at most %s tokens per GPU (a multiple of 32,768)" % format(Lt, ","))
    print("   %5s %18s %14s" % ("GPUs", "N (tokens)", "step ms (A)"))
    for P in Ps:
        ta, _ = train_step(Lt, P, inp, c, pessimistic=pess)
        print("   %5d %18s %14.1f" % (P, format(P * Lt, ","), ta * 1e3))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="measured vs predicted; non-zero exit on a miss")
    ap.add_argument("--predict", action="store_true", help="8, 64 and 512 GPUs")
    ap.add_argument("--markdown", action="store_true", help="with --check: also a Markdown table")
    ap.add_argument("--pessimistic", action="store_true",
                    help="with --predict: rings between hosts limited to one NIC (50 GB/s)")
    args = ap.parse_args()
    if not (args.check or args.predict):
        ap.print_help()
        return 2
    rc = 0
    if args.check:
        rc = check(args)
    if args.predict:
        if args.check:
            print()
        rc = max(rc, predict(args))
    return rc


if __name__ == "__main__":
    sys.exit(main())
