#!/usr/bin/env bash
# Session 18 on one GPU: session 13's run.sh (the whole CUDA build and every test but the four
# longest CPU-only ones, 12 at a time) on the current tree. Everything in $OUT/r13.tgz.
#   bash bench/results/2026-12-07_session18/run.sh
set -uo pipefail
bash bench/results/2026-12-07_session13/run.sh
