#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine (issue 32), in one go and within 8 minutes:
#   1. configure and build only what it needs (cuda_test, bench_cuda) with all cores,
#   2. ctest -R cuda (cuda_test; the GPU cases skip without a device, and the table says how many),
#   3. parity with the CPU backend: one SAE (K=20, F=1,024, 5 epochs) trained from the same initial
#      weights, data and batch order on the CPU and on the GPU (bench_cuda parity): each one's
#      validation EV, the Jaccard index of the (row, latent) pairs active on the validation rows and
#      of the two sets of latents alive there,
#   4. seconds per SAE on the report-001 grid (planted 7,473 x 2,048 rows, 5,978 train / 1,495
#      validation, K in {5,10,20,100} x F in {512,1024,2048}, 5 epochs, batch 256) and one K=32,
#      F=65,536 SAE for one epoch, ours and, where `import torch` finds CUDA, PyTorch's
#      (compare_torch_cuda.py, on the same .npy rows),
#   5. one Markdown table, to stdout and to OUTDIR/gpu_check.md (logs in OUTDIR/logs/).
#
#   bash benchmarks/cuda/gpu_check.sh [OUTDIR]     (default: $OUT, else ./gpu_check_out)
#
# Without a GPU (no nvidia-smi, nvidia-smi -L lists none, or the CUDA runtime counts no device) it
# prints one line and exits 0, having built nothing but (in the last case) a tiny probe.
# Environment: SAE_GPU_CHECK_FORCE=1 goes on without a GPU (to test this script: the GPU steps then
# show as skipped or failed); SAE_GPU_CHECK_BUILD (build folder, default build-gpu-check in the
# repository root; reused, so a rerun builds only what changed); SAE_GPU_CHECK_BUDGET (seconds,
# default 480); SAE_GPU_CHECK_JOBS (default nproc); SAE_GPU_CHECK_PYTHON (the python with torch).
# Each step has its own timeout, capped by what is left of the budget; a failed step is marked in
# the table and the next one runs. Exit status: 0 when every step that ran passed, 1 otherwise.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUTDIR=${1:-${OUT:-./gpu_check_out}}
BUILD=${SAE_GPU_CHECK_BUILD:-$ROOT/build-gpu-check}
BUDGET=${SAE_GPU_CHECK_BUDGET:-480}
FORCE=${SAE_GPU_CHECK_FORCE:-0}
JOBS=${SAE_GPU_CHECK_JOBS:-$(nproc 2>/dev/null || echo 4)}
RESERVE=10  # seconds kept for writing the table
START=$SECONDS
EPOCHS=5

say() { printf 'gpu_check [%3ds]: %s\n' "$((SECONDS - START))" "$*" >&2; }

# ---- 0. is there a GPU? (cheap checks first; nothing is built before the answer) ----
GPU_LIST=""
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU_LIST=$(timeout 30 nvidia-smi -L 2>/dev/null | grep -i '^GPU' || true)
fi
if [[ -z $GPU_LIST && $FORCE != 1 ]]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: nvidia-smi lists no GPU; nothing built or run (SAE_GPU_CHECK_FORCE=1 runs the script anyway)"
  else
    echo "gpu_check: no GPU here (no nvidia-smi); nothing built or run (SAE_GPU_CHECK_FORCE=1 runs the script anyway)"
  fi
  exit 0
fi

NVCC=$(command -v nvcc || true)
if [[ -z $NVCC ]]; then
  for c in "${CUDACXX:-}" "${CUDA_HOME:-/nonexistent}/bin/nvcc" /usr/local/cuda/bin/nvcc; do
    if [[ -n $c && -x $c ]]; then NVCC=$c; break; fi
  done
fi

WORK=$BUILD/gpu_check_work  # the probe and the planted rows (61 MB): kept out of OUTDIR
LOGS=$OUTDIR/logs
mkdir -p "$WORK" || { echo "gpu_check: cannot create $WORK" >&2; exit 1; }
DATA=$WORK/planted_7473x2048.npy

# The CUDA runtime's own count: a probe without kernels (seconds to build).
PROBE_STATUS="not run (no nvcc)"
DEVICE_DESC=""
if [[ -n $NVCC ]]; then
  cat >"$WORK/probe.cpp" <<'EOF'
#include <cuda_runtime.h>
#include <cstdio>
int main() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    std::printf("CUDA runtime: %s\n", cudaGetErrorString(e));
    return 1;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    cudaGetDeviceProperties(&p, i);
    std::printf("%s (sm_%d%d, %.0f GiB)%s", p.name, p.major, p.minor, p.totalGlobalMem / 1073741824.0, i + 1 < n ? "; " : "\n");
  }
  if (n == 0) std::printf("CUDA runtime: 0 devices\n");
  return n > 0 ? 0 : 1;
}
EOF
  if timeout 60 "$NVCC" -O1 -o "$WORK/probe" "$WORK/probe.cpp" >"$WORK/probe.log" 2>&1; then
    if DEVICE_DESC=$(timeout 30 "$WORK/probe" 2>&1); then
      PROBE_STATUS=ok
    else
      PROBE_STATUS="no device"
    fi
  else
    PROBE_STATUS="probe did not build"
  fi
fi
if [[ $PROBE_STATUS == "no device" && $FORCE != 1 ]]; then
  echo "gpu_check: nvidia-smi lists a GPU but the CUDA runtime reports no device (${DEVICE_DESC//$'\n'/ }); nothing built or run"
  exit 0
fi

mkdir -p "$LOGS" || { echo "gpu_check: cannot create $LOGS" >&2; exit 1; }
cp "$WORK/probe.log" "$LOGS/" 2>/dev/null

# ---- the table ----
ROWS=()
FAILED=0
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 |"); }

STEP_RC=0 STEP_S=0 STEP_STATUS=""
# run_step LOG TIMEOUT CMD...: runs CMD with at most TIMEOUT seconds (less if the budget is nearly
# spent), output to LOG; sets STEP_RC (125: skipped for time), STEP_S and STEP_STATUS.
run_step() {
  local log=$1 want=$2
  shift 2
  local left=$((BUDGET - (SECONDS - START) - RESERVE))
  if ((left < 15)); then
    STEP_RC=125 STEP_S=0 STEP_STATUS="**skipped**: 8-min budget spent" FAILED=1
    : >"$log"
    say "skipped (budget): $*"
    return
  fi
  local t=$((want < left ? want : left)) t0=$SECONDS
  say "running (timeout ${t}s): $*"
  timeout -k 5 "$t" "$@" >"$log" 2>&1
  STEP_RC=$?
  STEP_S=$((SECONDS - t0))
  if ((STEP_RC == 124 || STEP_RC == 137)); then
    STEP_STATUS="**timed out** after $t s"
  elif ((STEP_RC == 0)); then
    STEP_STATUS="ok ($STEP_S s)"
  else
    STEP_STATUS="**failed** (exit $STEP_RC, $STEP_S s)"
  fi
  ((STEP_RC == 0)) || FAILED=1
}
no_device() { grep -q "no CUDA device" "$1"; }

if [[ -n $GPU_LIST ]]; then
  row "device" "nvidia-smi -L; CUDA runtime probe" "$PROBE_STATUS" "${DEVICE_DESC:-${GPU_LIST//$'\n'/; }}" ""
else
  row "device" "nvidia-smi -L; CUDA runtime probe" "none: forced run (SAE_GPU_CHECK_FORCE=1)" "${DEVICE_DESC//$'\n'/ }" ""
fi

# ---- 1. configure and build (only cuda_test and bench_cuda) ----
ARCH_FLAG=()
if [[ -n $GPU_LIST ]]; then
  cap=$(timeout 20 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  [[ $cap =~ ^[0-9]+$ ]] && ARCH_FLAG=(-DCMAKE_CUDA_ARCHITECTURES="$cap")
fi
NVCC_FLAG=()
[[ -n $NVCC ]] && NVCC_FLAG=(-DCMAKE_CUDA_COMPILER="$NVCC")
CONFIG=(-S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSAE_ENABLE_CUDA=ON -DSAE_BUILD_BENCHMARKS=ON
        -DSAE_BUILD_EXAMPLES=OFF -DSAE_ENABLE_MPI=OFF "${NVCC_FLAG[@]}" "${ARCH_FLAG[@]}")
run_step "$LOGS/configure.log" 120 cmake "${CONFIG[@]}" -DSAE_BUILD_TESTS=ON
TARGETS=(cuda_test bench_cuda)
CONF_NOTE="tests on"
if ((STEP_RC != 0 && STEP_RC != 125)); then  # e.g. no Boost.Test here: the benchmarks alone
  run_step "$LOGS/configure_no_tests.log" 90 cmake "${CONFIG[@]}" -DSAE_BUILD_TESTS=OFF
  TARGETS=(bench_cuda)
  CONF_NOTE="tests on failed (see logs/configure.log); again with tests off"
fi
if ((STEP_RC == 0)) && grep -q "no CUDA compiler found" "$LOGS"/configure*.log; then
  STEP_STATUS="**failed**: CMake found no CUDA compiler"
  FAILED=1
fi
row "configure" "Release, CUDA on, MPI/examples off, ${CONF_NOTE}${ARCH_FLAG:+, ${ARCH_FLAG[0]#-D}}" "$STEP_STATUS" "" ""

KEEP_GOING=(-k)
grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$BUILD/CMakeCache.txt" 2>/dev/null && KEEP_GOING=(-k 0)
run_step "$LOGS/build.log" 300 cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" -- "${KEEP_GOING[@]}"
BENCH=$BUILD/benchmarks/bench_cuda
built=()
[[ -x $BUILD/tests/cuda/cuda_test ]] && built+=(cuda_test)
[[ -x $BENCH ]] && built+=(bench_cuda)
row "build" "${TARGETS[*]}, -j $JOBS" "$STEP_STATUS" "built: ${built[*]:-nothing}" ""

# ---- 2. the CUDA tests ----
if [[ -x $BUILD/tests/cuda/cuda_test ]]; then
  run_step "$LOGS/ctest.log" 120 ctest --test-dir "$BUILD" -R cuda -V
  cases=$(grep -Eo '[0-9]+ test cases? out of [0-9]+ (passed|skipped|failed|aborted)' "$LOGS/ctest.log" | paste -sd, - | sed 's/,/, /g')
  status=$STEP_STATUS
  if grep -Eq '[0-9]+ test cases? out of [0-9]+ skipped' "$LOGS/ctest.log"; then
    status="$status; **GPU cases skipped**"
    FAILED=1
  fi
  row "ctest -R cuda" "cuda_test" "$status" "${cases:-see logs/ctest.log}" ""
else
  row "ctest -R cuda" "cuda_test" "skipped: cuda_test not built" "" ""
  FAILED=1
fi

# ---- the rows every run shares (bench_cuda's planted rows; PyTorch reads the same file) ----
DATA_OK=0
if [[ -x $BENCH ]]; then
  if [[ -s $DATA ]]; then
    DATA_OK=1
  else
    run_step "$LOGS/data.log" 60 "$BENCH" write-data "$DATA"
    DATA_OK=$((STEP_RC == 0))
  fi
  ((DATA_OK)) || row "planted rows" "7,473 x 2,048 .npy" "$STEP_STATUS" "" ""
fi

# ---- PyTorch with CUDA? ----
PY=""
TORCH_NOTE="not installed"
for p in "${SAE_GPU_CHECK_PYTHON:-}" python3 /usr/bin/python3; do
  if [[ -z $p ]] || ! command -v "$p" >/dev/null 2>&1; then continue; fi
  if timeout 60 "$p" -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
    PY=$p
    break
  elif timeout 60 "$p" -c "import torch" >/dev/null 2>&1; then
    TORCH_NOTE="torch without CUDA"
  fi
done
TORCH_GRID_LOG=$LOGS/torch_grid.log TORCH_LARGE_LOG=$LOGS/torch_large.log
: >"$TORCH_GRID_LOG"
: >"$TORCH_LARGE_LOG"
TORCH_GRID_STATUS=$TORCH_NOTE TORCH_LARGE_STATUS=$TORCH_NOTE

# "| K | d | s | ev |" of compare_torch_cuda.py -> "s, val EV ev" for K F, or the step's status.
torch_cell() {
  local log=$1 k=$2 f=$3 fallback=$4
  local line
  line=$(grep -E "^\| $k \| $f \| [0-9.]+ \| " "$log" | head -1)
  if [[ -n $line ]]; then
    awk -F'|' '{ gsub(/ /, "", $4); gsub(/ /, "", $5); printf "%s s, val EV %s", $4, $5 }' <<<"$line"
  else
    echo "$fallback"
  fi
}
# bench_cuda's "K F s EV" lines -> "s, val EV ev".
ours_cell() {
  awk -v k="$2" -v f="$3" '$1 == k && $2 == f && NF == 4 && $3 ~ /^[0-9.]+$/ { printf "%s s, val EV %s", $3, $4; exit }' "$1"
}

# ---- 4. the report-001 grid and the large SAE, ours ----
GRID_LOG=$LOGS/bench_grid.log LARGE_LOG=$LOGS/bench_large.log PARITY_LOG=$LOGS/parity.log
: >"$GRID_LOG"
: >"$LARGE_LOG"
: >"$PARITY_LOG"
GRID_STATUS="skipped: bench_cuda not built" LARGE_STATUS=$GRID_STATUS PARITY_STATUS=$GRID_STATUS
if [[ -x $BENCH ]] && ((DATA_OK)); then
  run_step "$GRID_LOG" 150 "$BENCH" "$EPOCHS" "$DATA"
  GRID_STATUS=$STEP_STATUS
  no_device "$GRID_LOG" && GRID_STATUS="skipped: no CUDA device" FAILED=1
  run_step "$LARGE_LOG" 90 "$BENCH" one 32 65536 1 "$DATA"
  LARGE_STATUS=$STEP_STATUS
  no_device "$LARGE_LOG" && LARGE_STATUS="skipped: no CUDA device" FAILED=1
  # ---- 3. parity with the CPU backend ----
  run_step "$PARITY_LOG" 120 "$BENCH" parity "$EPOCHS" 20 1024 "$DATA"
  PARITY_STATUS=$STEP_STATUS
  no_device "$PARITY_LOG" && PARITY_STATUS="skipped: no CUDA device" FAILED=1
elif [[ -x $BENCH ]]; then
  GRID_STATUS="skipped: no planted rows" LARGE_STATUS=$GRID_STATUS PARITY_STATUS=$GRID_STATUS
fi
if [[ -n $PY && -s $DATA ]]; then
  run_step "$TORCH_GRID_LOG" 200 "$PY" "$ROOT/benchmarks/cuda/compare_torch_cuda.py" --build "$BUILD" \
    --epochs "$EPOCHS" --workdir "$WORK" --no-ours --no-topk
  TORCH_GRID_STATUS=$STEP_STATUS
  run_step "$TORCH_LARGE_LOG" 90 "$PY" "$ROOT/benchmarks/cuda/compare_torch_cuda.py" --build "$BUILD" \
    --epochs 1 --workdir "$WORK" --configs 32x65536 --no-ours --no-topk
  TORCH_LARGE_STATUS=$STEP_STATUS
elif [[ -n $PY ]]; then
  TORCH_GRID_STATUS="skipped: no planted rows" TORCH_LARGE_STATUS=$TORCH_GRID_STATUS
fi

pv() { sed -n "s/.*[ :]$2=\([^ ]*\).*/\1/p" "$1" | head -1; }  # key=value from the parity line
if grep -q '^parity:' "$PARITY_LOG"; then
  row "parity CPU vs CUDA" "K=20, F=1,024, $EPOCHS epochs, same init/data/batch order; validation rows" "$PARITY_STATUS" \
    "EV CPU $(pv "$PARITY_LOG" cpu_ev) / CUDA $(pv "$PARITY_LOG" cuda_ev); Jaccard of active (row, latent) pairs $(pv "$PARITY_LOG" row_jaccard), of alive latents $(pv "$PARITY_LOG" alive_jaccard) ($(pv "$PARITY_LOG" alive_cpu) / $(pv "$PARITY_LOG" alive_cuda) alive); max decoder-weight diff $(pv "$PARITY_LOG" max_w_dec_diff); train $(pv "$PARITY_LOG" cpu_s) s CPU (one thread) / $(pv "$PARITY_LOG" cuda_s) s CUDA" ""
else
  row "parity CPU vs CUDA" "K=20, F=1,024, $EPOCHS epochs, same init/data/batch order; validation rows" "$PARITY_STATUS" "" ""
fi

setting="$EPOCHS epochs, batch 256, 5,978 train / 1,495 val rows"
if grep -qE '^ +[0-9]+ +[0-9]+ +[0-9.]+ +-?[0-9.]+$' "$GRID_LOG" || grep -qE '^\| [0-9]+ \| [0-9]+ \| [0-9.]+ \| ' "$TORCH_GRID_LOG"; then
  for f in 512 1024 2048; do
    for k in 5 10 20 100; do
      ours=$(ours_cell "$GRID_LOG" "$k" "$f")
      if [[ -n $ours ]]; then status=ok; else status=$GRID_STATUS; fi
      row "grid K=$k F=$f" "$setting" "$status" "${ours:-—}" \
        "$(torch_cell "$TORCH_GRID_LOG" "$k" "$f" "$TORCH_GRID_STATUS")"
    done
  done
  total=$(sed -n 's/^report-001 grid: \([0-9.]*\) s; .*: \([0-9.]*\) min$/\1 s (projected 1,152-SAE sweep \2 min)/p' "$GRID_LOG")
  ttotal=$(sed -n 's/^torch grid: \([0-9.]*\) s; .*: \([0-9.]*\) min$/\1 s (projected 1,152-SAE sweep \2 min)/p' "$TORCH_GRID_LOG")
  row "grid total" "12 SAEs" "$GRID_STATUS" "${total:-incomplete}" "${ttotal:-$TORCH_GRID_STATUS}"
else
  row "grid (12 SAEs)" "K in {5,10,20,100} x F in {512,1024,2048}, $setting" "$GRID_STATUS" "—" "$TORCH_GRID_STATUS"
fi
ours=$(ours_cell "$LARGE_LOG" 32 65536)
mem=$(sed -n 's/^device memory in use after training: \(.*\)$/; \1 in use/p' "$LARGE_LOG")
row "K=32 F=65,536" "1 epoch, batch 256, 5,978 train / 1,495 val rows" "$LARGE_STATUS" "${ours:-—}$mem" \
  "$(torch_cell "$TORCH_LARGE_LOG" 32 65536 "$TORCH_LARGE_STATUS")"

# ---- 5. the table ----
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "unknown")
dirty=$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)
TABLE_FILE=$OUTDIR/gpu_check.md
{
  echo "GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit${dirty:+ (with local changes)}, $(hostname), $(nproc 2>/dev/null) cores; $((SECONDS - START)) s of a $BUDGET s budget; logs in $LOGS"
  echo
  echo "| step | setting | status | ours (CUDA backend) | PyTorch CUDA |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} >"$TABLE_FILE"
cat "$TABLE_FILE"
exit "$FAILED"
