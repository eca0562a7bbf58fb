#!/usr/bin/env bash
# Issue 27's larger-than-RAM check: generates (once; never committed) a sharded f16 set of ROWS x DIM
# planted rows in SET_DIR — by default 12M x 2,048 = 49 GB, about twice a 24 GB machine's memory —
# then trains TopK (F = 4,096, K = 32) streamed from it and from an in-memory subset of the same
# shapes, alternating ROUNDS times in separate processes, and prints each run's line (steps/s, the
# reading rate, the statistics pass, peak RSS).
#   bash benchmarks/stream_larger_than_ram.sh build/benchmarks /data/stream-set [ROWS DIM STEPS BATCH ROUNDS]
set -euo pipefail
bin=${1:?usage: stream_larger_than_ram.sh BENCH_DIR SET_DIR [ROWS DIM STEPS BATCH ROUNDS]}
set_dir=${2:?usage: stream_larger_than_ram.sh BENCH_DIR SET_DIR [ROWS DIM STEPS BATCH ROUNDS]}
rows=${3:-12000000} dim=${4:-2048} steps=${5:-5000} batch=${6:-1024} rounds=${7:-1}
if [ ! -f "$set_dir/.complete" ]; then
  rm -rf "$set_dir"
  "$bin/bench_stream" generate --out "$set_dir" --rows "$rows" --dim "$dim"
  touch "$set_dir/.complete"
fi
du -sh "$set_dir"
free -g | head -2
for ((r = 0; r < rounds; r++)); do
  "$bin/bench_stream" train --data "$set_dir" --mode stream --steps "$steps" --batch "$batch" --latents 4096 -k 32
  "$bin/bench_stream" train --data "$set_dir" --mode memory --steps "$steps" --batch "$batch" --latents 4096 -k 32
done
