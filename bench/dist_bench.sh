#!/usr/bin/env bash
# Data-parallel training on one machine, loopback: 1 vs 2 vs 4 ranks (issue 10).
#   bench/dist_bench.sh DYDCA CLIP [STEPS=120] [RANKS="1 2 4"] [THREADS_PER_RANK=1] [BATCH via DYDCA_BATCH]
# Every run trains the same global batch for STEPS steps (no time budget) and
# reads the training seconds from rank 0's JSON report. Prints a Markdown
# table: ranks, training s, steps/s, speed-up and scaling efficiency vs 1 rank.
# On one machine the ranks share its cores: this measures the protocol's
# overhead and correctness at scale, not the speed-up of separate machines
# (see docs/distributed.md for the prediction).
set -euo pipefail
dydca=$1; clip=$2; steps=${3:-120}; ranks=${4:-"1 2 4"}; tpr=${5:-1}
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
args=(--threads "$tpr" -q encode "$clip" --scale 2 --steps "$steps" --max-frames 48 --preset veryfast
      --model-precision fp32)
echo "| ranks | threads/rank | training s | of which all-reduce s | steps/s | speed-up | efficiency | level-0 PSNR-Y |"
echo "|---|---|---|---|---|---|---|---|"
base=""
for n in $ranks; do
  p=$(port)
  for ((r = n - 1; r >= 1; r--)); do
    "$dydca" "${args[@]}" -o "$tmp/w.mkv" --world-size "$n" --rank "$r" --master 127.0.0.1:$p >/dev/null &
  done
  "$dydca" "${args[@]}" -o "$tmp/o$n.mkv" --report "$tmp/r$n.json" --world-size "$n" --rank 0 \
    --master 127.0.0.1:$p >/dev/null
  wait
  sps=$(python3 -c "import json; r=json.load(open('$tmp/r$n.json')); print($steps / r['seconds']['train'])")
  ar=$(python3 -c "import json; r=json.load(open('$tmp/r$n.json')); print(r['seconds']['allreduce'])")
  psnr=$(python3 -c "import json; r=json.load(open('$tmp/r$n.json')); print(r['levels'][0]['psnr_y'])")
  base=${base:-$sps}
  python3 -c "
n, sps, base = $n, $sps, $base
print(f'| {n} | $tpr | {$steps / sps:.1f} | {$ar:.2f} | {sps:.2f} | {sps / base:.2f}x | {100 * sps / base / n:.0f} % | {$psnr:.3f} |')"
done
