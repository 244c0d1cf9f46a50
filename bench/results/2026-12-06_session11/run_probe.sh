#!/usr/bin/env bash
# Session 11, second call: python.ops' sporadic CPU float64 failure on GPU machines. Builds the
# op library only, records the CPU (lscpu) and torch's build, runs ops_f64_probe.py (the op and
# the test's reference against a BLAS-free float64 reference; the primitives against elementwise
# sums) and tests/test_ops.py three times. Everything in $OUT/r11p.tgz.
#   bash bench/results/2026-12-06_session11/run_probe.sh
set -uo pipefail
R=/tmp/r11p; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r11p.tgz r11p; }
trap save EXIT
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; save; }
lscpu > $R/lscpu.txt 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt 2>&1
python3 -c 'import torch;print(torch.__config__.show())' > $R/torch_config.txt 2>&1
export CC=/usr/bin/gcc CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++ PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGNET_CUDA=ON \
  -DLONGNET_PYTHON="$(command -v python3)" \
  -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
  > $R/configure.log 2>&1
cmake --build build -j "$(nproc)" --target longnet_ops > $R/build.txt 2>&1
echo "build rc=$?" >> $R/times.txt; t build
timeout 120 python3 bench/results/2026-12-06_session11/ops_f64_probe.py build/liblongnet_ops.so \
  > $R/probe.log 2>&1
echo "rc=$?" >> $R/probe.log; t probe
for i in 1 2 3; do
  timeout 120 python3 tests/test_ops.py build/liblongnet_ops.so > $R/test_ops_$i.log 2>&1
  echo "rc=$?" >> $R/test_ops_$i.log; t "test_ops $i"
done
grep -E "Model name|Vendor|^CPU\(s\)|Flags" $R/lscpu.txt | cut -c1-200
cat $R/times.txt $R/probe.log
for i in 1 2 3; do tail -3 $R/test_ops_$i.log; done
