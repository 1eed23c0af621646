#!/usr/bin/env bash
# Segment-parallel encodes on one machine: 1 vs 2 vs 4 ranks (issue 14).
#   bench/segments_bench.sh DYDCA CLIP [STEPS=1200] [RANKS="1 2 4"] [THREADS_PER_RANK=1] [SEGMENT_S=2]
# Every run encodes the same clip cut into SEGMENT_S-second segments with
# STEPS training steps split by duration; rank r encodes segments r, r+W, ...
# into the shared work folder and rank 0 muxes. Prints a Markdown table of the
# whole encode's wall time (rank 0, start to output), speed-up, efficiency,
# level-0 PSNR-Y and model kb/s (segment-parallel ranks ship full models).
# On one machine the ranks share its cores: with 2 cores, 2 ranks of 1 thread
# use both; 4 ranks oversubscribe them.
set -euo pipefail
dydca=$1; clip=$2; steps=${3:-1200}; ranks=${4:-"1 2 4"}; tpr=${5:-1}; seg=${6:-2}
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
args=(--threads "$tpr" -q encode "$clip" --scale 2 --steps "$steps" --segment-seconds "$seg"
      --dist-mode segments --dist-timeout 600)
echo "| ranks | threads/rank | segments | encode s | speed-up | efficiency | level-0 PSNR-Y | model kb/s |"
echo "|---|---|---|---|---|---|---|---|"
base=""
for n in $ranks; do
  t0=$(date +%s.%N)
  for ((r = n - 1; r >= 1; r--)); do
    "$dydca" "${args[@]}" -o "$tmp/o$n.mkv" --world-size "$n" --rank "$r" >/dev/null &
  done
  "$dydca" "${args[@]}" -o "$tmp/o$n.mkv" --report "$tmp/r$n.json" --world-size "$n" --rank 0 >/dev/null
  t1=$(date +%s.%N)
  wait
  python3 - "$tmp/r$n.json" "$n" "$tpr" "$t0" "$t1" "${base:-0}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2]); t = float(sys.argv[5]) - float(sys.argv[4])
base = float(sys.argv[6]) or t
print(f"| {n} | {sys.argv[3]} | {len(r['segments'])} | {t:.1f} | {base / t:.2f}x | "
      f"{100 * base / t / n:.0f} % | {r['levels'][0]['psnr_y']:.3f} | {r['bitrate_kbps']['model']:.1f} |")
PY
  base=${base:-$(python3 -c "print($t1 - $t0)")}
done
