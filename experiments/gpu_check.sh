#!/usr/bin/env bash
# The device check of issue 11, in under 5 minutes on one GPU: the GPU tests, the clearing
# benchmark (GPU backends against the device memset; numba against its own parallel fill on
# this host), the same runs on every backend (a GPU backend >= 10x numba), and, when a copy
# of the code before issue 11 sits in OLD (default .gpu_old), content mode on mixed before
# and after on this same machine. Figures go to $OUT (default experiments/gpu_out):
# RESULTS-gpu.md (rows for experiments/RESULTS.md, with the device name) and the JSON.
#   usage: OUT=/tmp/x experiments/gpu_check.sh
set -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-experiments/gpu_out}
OLD=${OLD:-.gpu_old}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
status=0
step() { echo "== $1 ($(date +%T))"; }

step device
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import numpy, numba; print('numpy', numpy.__version__, 'numba', numba.__version__)"
$PY -c "import cupy; print('cupy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())" || true
$PY -c "import kernels; from kernels import cuda_backend as c; print('numba-cuda first use:', c.first_use() if c.available() else 'no device')" || true

step "GPU tests"
timeout 100 $PY -m pytest -q -x -p no:cacheprovider -m gpu tests/test_kernels.py tests/test_engine_content.py || status=1

step "clearing benchmark"
timeout 75 $PY experiments/bench_kernels.py --backends numba,cuda,cupy --pool-pages 1048576 \
    --batches 4096,16384,65536,262144 --reps 5 --json "$OUT/bench_kernels.json" || status=1

step "the same runs on every backend"
timeout 90 $PY experiments/cpu_vs_gpu.py --json "$OUT/cpu_vs_gpu.json" || status=1

if [ -d "$OLD" ]; then
    step "content mode on mixed before issue 11 ($OLD), same events"
    (cd "$OLD" && PYTHONPATH=$PWD timeout 50 $PY experiments/cpu_vs_gpu.py --workload mixed \
        --pages 262144 --events 200000) || status=1
fi

step "rows"
$PY experiments/bench_all.py --from "$OUT" --out "$OUT/RESULTS-gpu.md" && cat "$OUT/RESULTS-gpu.md"
step "done, status $status"
exit $status
