#!/usr/bin/env bash
# QoS of the real player (issue 17): `dydca play FILE` in a headless X server
# (Xvfb), with a CPU hog pinned to one core during the middle of playback. The
# late frames are the player's own count (a frame shown more than 2 ms after
# its presentation time; the clock then slides, docs/qos.md), read from its
# final line and from its level trace.
#
#   bench/qos_play.sh DYDCA FILE.mkv OUTDIR [play options...]
#   e.g. bench/qos_play.sh build/dydca out/bbb_x2.mkv /tmp/qp --precision int8
#
# Environment: HOG_START / HOG_END (fractions of the clip's duration, default
# 0.33 / 0.67), HOG_CPU (default 1), DISPLAY_NUM (default 97).
# Writes OUTDIR/play.log, OUTDIR/trace.csv, OUTDIR/summary.txt.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
DYDCA=$1 FILE=$2 OUT=$3
shift 3
HOG_START=${HOG_START:-0.33} HOG_END=${HOG_END:-0.67} HOG_CPU=${HOG_CPU:-1}
DISPLAY_NUM=${DISPLAY_NUM:-97}
command -v Xvfb >/dev/null || { echo "qos_play: Xvfb is not installed (apt-get install xvfb)" >&2; exit 1; }
[[ -f $FILE ]] || { echo "qos_play: no such file: $FILE" >&2; exit 1; }
mkdir -p "$OUT"
# The video's own duration (an audio track may be longer).
dur=$(ffprobe -v error -select_streams v:0 -count_packets \
  -show_entries stream=nb_read_packets,avg_frame_rate -of csv=p=0 "$FILE" |
  awk -F, '{ split($1, r, "/"); if (r[1] > 0 && $2 > 0) printf "%.3f", $2 * r[2] / r[1] }')
[[ -n $dur ]] || { echo "qos_play: cannot read the duration of $FILE" >&2; exit 1; }

Xvfb ":$DISPLAY_NUM" -screen 0 1920x1080x24 -nolisten tcp >"$OUT/xvfb.log" 2>&1 &
xvfb=$!
hog=
cleanup() {
  [[ -n $hog ]] && kill "$hog" 2>/dev/null || true
  kill "$xvfb" 2>/dev/null || true
}
trap cleanup EXIT
sleep 1

t_launch=$(date +%s.%N)
DISPLAY=":$DISPLAY_NUM" "$DYDCA" -v play "$FILE" --trace "$OUT/trace.csv" "$@" >"$OUT/play.log" 2>&1 &
player=$!
# The hog is placed on the player's clock: it logs its first picture.
for _ in $(seq 600); do
  grep -q "first picture" "$OUT/play.log" 2>/dev/null && break
  kill -0 "$player" 2>/dev/null || break
  sleep 0.05
done
t_first=$(date +%s.%N)
sleep "$(echo "$HOG_START * $dur" | bc -l)"
t_hog_on=$(date +%s.%N)
taskset -c "$HOG_CPU" bash -c 'while :; do :; done' &
hog=$!
sleep "$(echo "($HOG_END - $HOG_START) * $dur" | bc -l)"
kill "$hog" 2>/dev/null || true
wait "$hog" 2>/dev/null || true
hog=
t_hog_off=$(date +%s.%N)
rc=0
wait "$player" || rc=$?
t_end=$(date +%s.%N)
cat "$OUT/play.log"
if [[ $rc -ne 0 ]]; then
  echo "qos_play: dydca play failed (exit $rc)" >&2
  exit "$rc"
fi
# The trace's t_s counts from the first frame's level choice, a few frames
# before its picture (the pipeline runs ahead): within ~0.2 s of t_first.
python3 - "$OUT/trace.csv" "$t_launch" "$t_hog_on" "$t_hog_off" "$t_first" "$OUT/summary.txt" <<'EOF'
import csv, sys
trace, t_launch, t_on, t_off, t0, out = sys.argv[1], *map(float, sys.argv[2:6]), sys.argv[6]
rows = list(csv.DictReader(open(trace)))
if not rows:
    sys.exit("qos_play: empty trace")
on, off = t_on - t0, t_off - t0
hog = [r for r in rows if on <= float(r["t_s"]) < off]
calm = [r for r in rows if not (on <= float(r["t_s"]) < off)]
late = sum(int(r["late"]) for r in rows)
late_hog = sum(int(r["late"]) for r in hog)
levels = sorted({int(r["level"]) for r in rows})
mean_calm = sum(int(r["level"]) for r in calm) / max(1, len(calm))
hist = {l: sum(1 for r in rows if int(r["level"]) == l) for l in levels}
hist_hog = {l: sum(1 for r in hog if int(r["level"]) == l) for l in levels}
lines = [
    f"frames {len(rows)}, late {late} ({100.0 * late / len(rows):.2f} %)",
    f"hog on CPU during [{on:.1f}, {off:.1f}) s of playback: {len(hog)} frames, {late_hog} late",
    f"outside the hog: {len(calm)} frames, mean level {mean_calm:.2f}",
    f"levels (frames) {hist}, during the hog {hist_hog}",
    f"start-up before the first frame: {t0 - t_launch:.2f} s",
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
