#!/usr/bin/env bash
# The device check of issue 11, in under 5 minutes on one GPU: the GPU tests, the clearing
# benchmark (GPU backends against the device memset; numba against its own parallel fill on
# this host), where a 16K-page batch's host time goes, the same runs on the numba and GPU
# backends (a GPU backend >= 10x numba; beside them metadata mode, the GPU backends' host work
# alone and the allocator's calls alone, the bounds on this host), CuPy content mode with the
# compiled submitter for every batch against for clears only, the pipelined run (the page
# allocator's half on a second host thread) against the serial one, and, when a copy of the code
# before issue 11 sits in OLD (default .gpu_old), content mode on mixed before and after on
# this same machine (and on the code in PREV, another such copy, when given). Figures go to
# $OUT (default experiments/gpu_out): RESULTS-gpu.md (rows for experiments/RESULTS.md, with the
# device name) and the JSON.
# It took 2 min 45 s on an H100 (2026-11-27), the first numba compiles (and those of the old
# copies) included, before session 10 added the best of three runs a backend in
# cpu_vs_gpu.py and the A/B of the compiled submitter for every batch (not yet run on a GPU:
# about 3.5 min expected).
#   usage: OUT=/tmp/x experiments/gpu_check.sh
#   the old code: mkdir .gpu_old && git archive 178edfc | tar -x -C .gpu_old (an ignored
#   folder: the device tool carries it when named in carry)
set -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-experiments/gpu_out}
OLD=${OLD:-.gpu_old}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
status=0
step() { echo "== $1 ($(date +%T))"; }
CONTENT_RATE='
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload
ev = make_workload("mixed", 262144, 200000, seed=0)
pol = make_policy("init_on_free,pg_zeroed,reporting")
for b in ("numba", "cupy"):
    simulate(ev[:1000], pol, 262144, mode="content", backend=b)
    c = simulate(ev, pol, 262144, mode="content", backend=b)["counters"]
    print(b, "content mixed: %.3f M events/s, wall %.3f s, zero_leak %d"
          % (c["events_per_s"] / 1e6, c["wall_s"], c["zero_leak"]))
'
ORDERED_AB='
import numpy as np
from kernels import get_backend
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload
b = get_backend("cupy")
ev = make_workload("mixed", 262144, 200000, seed=0)
pol = make_policy("init_on_free,pg_zeroed,reporting")
print("compiled submitter", b.FAST is not None, "for every batch", b.FAST_ORDERED)
if b.FAST_ORDERED:
    simulate(ev[:1000], pol, 262144, mode="content", backend="cupy")
    walls = {True: [], False: []}
    for r in range(7):
        for every in ((True, False) if r % 2 == 0 else (False, True)):
            b.FAST_ORDERED = every
            walls[every].append(simulate(ev, pol, 262144, mode="content",
                                         backend="cupy")["counters"]["wall_s"])
    b.FAST_ORDERED = True
    ratio = np.median(np.array(walls[False]) / np.array(walls[True]))
    print("CuPy content mixed, median of 7 rounds: compiled for every batch %.1f ms, "
          "for clears only %.1f ms: %.3fx" % (np.median(walls[True]) * 1e3,
                                              np.median(walls[False]) * 1e3, ratio))
'

step device
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import numpy, numba; print('numpy', numpy.__version__, 'numba', numba.__version__)"
$PY -c "import cupy; print('cupy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())" || true
$PY -m pip show numba-cuda 2>/dev/null | head -2 || true
$PY -c "from kernels import get_backend; b = get_backend('cupy'); print('cupy: compiled submitter', b.FAST is not None, ', for every batch', b.FAST_ORDERED, ', cuLaunchKernel slots', b.DIRECT)" || true
$PY -c "import kernels; from kernels import cuda_backend as c; print('numba-cuda first use:', c.first_use() if c.available() else 'no device')" || true

step "GPU tests"
timeout 100 $PY -m pytest -q -x -p no:cacheprovider -m gpu -W ignore::DeprecationWarning \
    tests/test_kernels.py tests/test_engine_content.py tests/test_thp_fallback.py || status=1

step "clearing benchmark"
timeout 75 $PY experiments/bench_kernels.py --backends ${BENCH_BACKENDS:-numba,cuda,cupy} \
    --pool-pages ${POOL_PAGES:-4194304} --batches 4096,16384,65536,262144 --reps 5 \
    --json "$OUT/bench_kernels.json" || status=1

step "where a CuPy clear batch's time goes"
timeout 40 $PY experiments/gpu_breakdown.py || status=1

step "a stream of 16K-page clear batches with the host's packing forced each way"
timeout 60 $PY experiments/gpu_host_path.py || status=1

step "the same runs on every backend"
timeout 150 $PY experiments/cpu_vs_gpu.py --backends numba,cuda,cupy --json "$OUT/cpu_vs_gpu.json" \
    || status=1

step "the compiled submitter for every batch against clears only (CuPy, mixed, alternating)"
timeout 60 $PY -c "$ORDERED_AB" || status=1

step "the pipelined run against the serial one (metadata, host work alone, CuPy; alternating)"
timeout 60 $PY experiments/pipeline_speedup.py --backends cupy --rounds 5 \
    --json "$OUT/pipeline_speedup.json" || status=1

if [ -d "$OLD" ]; then  # the code before issue 11 (and PREV, if given), same machine
    for dir in "$OLD" ${PREV:-} .; do
        step "content mode on mixed, 200000 events, 262144 pages: $dir"
        (cd "$dir" && PYTHONPATH=$PWD timeout 60 $PY -c "$CONTENT_RATE") || status=1
    done
fi

step "rows"
$PY experiments/bench_all.py --from "$OUT" --out "$OUT/RESULTS-gpu.md" && cat "$OUT/RESULTS-gpu.md"
step "done, status $status"
exit $status
