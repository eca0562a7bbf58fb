#!/usr/bin/env bash
# Golden weights: trains a short run of every architecture, recipe and optimizer path on the
# bundled slice with the programs in PROGRAM_DIR and prints one sha256 per weight file. Run it with
# the programs of two commits and diff the outputs: a redesign that keeps behaviour prints the same.
#   bash benchmarks/golden_weights.sh build/examples /tmp/golden-new > new.txt
set -euo pipefail
bin=${1:?usage: golden_weights.sh PROGRAM_DIR SCRATCH_DIR}
scratch=${2:?usage: golden_weights.sh PROGRAM_DIR SCRATCH_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
data="$here/examples/data/activations_layer4_pos3.npy"
rm -rf "$scratch" && mkdir -p "$scratch"
common=(--data "$data" -k 8 --latents 256 --epochs 3 --quiet --threads 2)
run() {  # name, then sae-train flags
  local name=$1; shift
  "$bin/sae-train" "${common[@]}" "$@" --out "$scratch/$name" >/dev/null
}
run topk
run topk-modern --recipe modern
run topk-aux-resample --aux-k 4 --resample-every 3000 --project-decoder-grad --decoder-bias --median-decoder-bias
run topk-sgd-cosine --optimizer sgd --lr 0.01 --warmup-steps 10 --lr-decay cosine --final-lr-fraction 0.1 --weight-decay 0.01
run topk-magnitude --selection magnitude --seed 3
run batchtopk --arch batchtopk --decoder-bias
run jumprelu --arch jumprelu --l0-coefficient 0.5
"$bin/sae-matryoshka" --ks 8 --latents 128 --epochs 2 --mat-latents 256 --mat-k 8 --sem-k 8 --sem-latents 128 --no-plots \
  --threads 2 --out "$scratch/matryoshka" >/dev/null
cd "$scratch"
find . -name '*.npy' -path '*checkpoint*' | sort | xargs sha256sum
