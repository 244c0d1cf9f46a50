#!/usr/bin/env bash
# Session 12, second call: f64_load_probe.py in 8 processes at once (2 OpenMP threads each, as
# CTest runs python.ops beside other tests), 4 forwards each. Everything in $OUT/r12f.tgz.
#   bash bench/results/2026-12-07_session12/run_f64.sh
set -uo pipefail
source bench/device_common.sh r12f
cmake --build build -j "$(nproc)" --target longnet_ops > $R/build.txt 2>&1
echo "build rc=$?" >> $R/times.txt; t build
for i in 1 2 3 4 5 6 7 8; do
  OMP_NUM_THREADS=2 timeout 100 python3 bench/results/2026-12-07_session12/f64_load_probe.py \
    build/liblongnet_ops.so 4 > $R/probe_$i.log 2>&1 &
done
wait; t probe
cat $R/times.txt; grep -h -v ": ok" $R/probe_*.log | head -40; cat $R/probe_*.log | grep -c ": ok"
