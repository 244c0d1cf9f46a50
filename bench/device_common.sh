# Sourced by the device run scripts (bench/results/*/run.sh) as `source bench/device_common.sh
# NAME`: collects everything in /tmp/NAME, archived to $OUT/NAME.tgz by `t STAGE` (which also
# records the stage's time in times.txt) and on exit; records the card and the commit (with
# uncommitted changes listed); configures the CUDA build (Release, Ninja) into build/.
# Defines R, T0, save and t. Keep NCCL's NVLink multicast off (the machines' notes).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/$1
rm -rf "$R" && mkdir -p "$R"
T0=$SECONDS
save() { tar -C /tmp -czf "$OUT/$(basename "$R").tgz" "$(basename "$R")"; }
trap save EXIT
trap 'save; exit 143' TERM
t() { echo "$1 at $((SECONDS - T0)) s" >> "$R/times.txt"; save; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$R/gpu.txt" 2>&1
git log -1 --format='%H %s' > "$R/commit.txt" 2>&1
git status --short >> "$R/commit.txt" 2>&1
export CC=/usr/bin/gcc CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++ PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGNET_CUDA=ON \
  -DLONGNET_PYTHON="$(command -v python3)" \
  -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
  > "$R/configure.log" 2>&1
