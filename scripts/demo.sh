#!/usr/bin/env bash
# Sets dydca up on a fresh machine, then encodes a bundled sample clip (LR x264
# + one overfitted dynamic SR model in .mkv), decodes it, and prints the result.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
samples/fetch.sh cityCC0.mpg
clip=samples/cache/cityCC0.mpg
mkdir -p out
# OpenMP/OpenBLAS spin-waiting slows LibTorch training down on a busy 2-core machine.
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
echo "== dydca encode $clip (x2, fast training preset)"
build/dydca encode "$clip" -o out/demo.mkv --scale 2 --crf 26 --quality fast --report out/demo.json
echo "== dydca info out/demo.mkv"
build/dydca info out/demo.mkv
echo "== dydca decode out/demo.mkv -o out/demo.y4m"
build/dydca decode out/demo.mkv -o out/demo.y4m
echo "== dydca compare (full-frame quality of the decoded HR against the source)"
build/dydca compare "$clip" out/demo.y4m
echo "== done: out/demo.mkv plays in any player (LR video); out/demo.y4m is the upscaled result"
