#!/usr/bin/env bash
# `dydca decode` from the command line: sinks, md5 / --verify, stdout y4m read
# by ffmpeg, plain-video fallback, errors as one line with a non-zero exit.
# Usage: test_decode_cli.sh DYDCA TEST_DECODER (the latter writes the fixture).
set -u
dydca=$1
test_decoder=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
check() {  # description, expected exit (0 or nonzero), command...
  local what=$1 want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if { [[ $want == 0 ]] && [[ $rc == 0 ]]; } || { [[ $want != 0 ]] && [[ $rc != 0 ]] && [[ $rc -lt 128 ]]; }; then
    passes=$((passes+1))
  else
    echo "FAIL: $what (exit $rc)"; cat "$tmp/err"; fails=$((fails+1))
  fi
}
expect() {  # description, shell condition
  if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi
}

DYDCA_DECODER_FIXTURE="$tmp/a.mkv" DYDCA_DECODER_FIXTURE_V2="$tmp/v2.mkv" \
  DYDCA_DECODER_FIXTURE_INT8="$tmp/i8.mkv" "$test_decoder" -tc="fixture*" >/dev/null 2>&1
[[ -s $tmp/a.mkv && -s $tmp/v2.mkv && -s $tmp/i8.mkv ]] || { echo "FAIL: no fixture"; exit 1; }

check "help" 0 "$dydca" decode --help
grep -q -- "--verify" "$tmp/out" || { echo "FAIL: help lists --verify"; fails=$((fails+1)); }

# md5 muxer: printed on stdout, same for every thread count, equals ffmpeg's md5 of the y4m.
check "md5" 0 "$dydca" -q decode "$tmp/a.mkv" --muxer md5
md5=$(cat "$tmp/out")
expect "md5 is 32 hex digits" '[[ $md5 =~ ^[0-9a-f]{32}$ ]]'
check "md5 threads 1" 0 "$dydca" -q --threads 1 decode "$tmp/a.mkv" --muxer md5
expect "md5 stable across threads" '[[ $(cat "$tmp/out") == "$md5" ]]'
check "verify ok" 0 "$dydca" decode "$tmp/a.mkv" --verify "$md5"
check "verify mismatch" 1 "$dydca" decode "$tmp/a.mkv" --verify 0123456789abcdef0123456789abcdef
grep -q "md5 mismatch" "$tmp/err" || { echo "FAIL: mismatch message"; fails=$((fails+1)); }
check "md5 to a file" 0 "$dydca" -q decode "$tmp/a.mkv" --muxer md5 -o "$tmp/sum.md5"
expect "md5 file" '[[ $(cat "$tmp/sum.md5") == "$md5" ]]'

# y4m file, then stdout piped into ffmpeg.
check "y4m" 0 "$dydca" decode "$tmp/a.mkv" -o "$tmp/o.y4m"
grep -q "10 frames 102x70" "$tmp/err" || { echo "FAIL: summary line"; cat "$tmp/err"; fails=$((fails+1)); }
ff=$(ffmpeg -v error -i "$tmp/o.y4m" -f md5 - 2>/dev/null)
expect "ffmpeg md5 of the y4m equals --muxer md5" '[[ $ff == "MD5=$md5" ]]'
"$dydca" -q decode "$tmp/a.mkv" -o - 2>"$tmp/err" | ffmpeg -v error -i - -f null - 2>>"$tmp/err"
rcs="${PIPESTATUS[*]}"
expect "stdout y4m readable by ffmpeg (exit codes $rcs)" '[[ $rcs == "0 0" && ! -s $tmp/err ]]'
n=$("$dydca" -q decode "$tmp/a.mkv" -o - | ffprobe -v error -count_frames -select_streams v:0 \
      -show_entries stream=nb_read_frames,width,height -of csv=p=0 -i - 2>/dev/null)
expect "ffprobe sees 102x70, 10 frames on stdout ($n)" '[[ $n == "102,70,10" ]]'

# --precision (issue 16): auto = int8 for a model with int8 scales; int8 without them is an error.
check "precision help" 0 "$dydca" decode --help
grep -q -- "--precision" "$tmp/out" || { echo "FAIL: help lists --precision"; fails=$((fails+1)); }
check "precision int8" 0 "$dydca" decode "$tmp/i8.mkv" --muxer md5 --precision int8
grep -q " int8 x" "$tmp/err" || { echo "FAIL: summary says int8"; cat "$tmp/err"; fails=$((fails+1)); }
i8md5=$(cat "$tmp/out")
check "precision auto (int8 model)" 0 "$dydca" -q decode "$tmp/i8.mkv" --muxer md5
expect "auto = int8 on this CPU" '[[ $(cat "$tmp/out") == "$i8md5" ]]'
check "precision int8 simd none" 0 "$dydca" -q decode "$tmp/i8.mkv" --muxer md5 --precision int8 --simd none
expect "int8 bit-exact across SIMD levels" '[[ $(cat "$tmp/out") == "$i8md5" ]]'
check "precision fp32" 0 "$dydca" -q decode "$tmp/i8.mkv" --muxer md5 --precision fp32
expect "fp32 differs from int8" '[[ $(cat "$tmp/out") != "$i8md5" ]]'
check "precision auto (no scales) = fp32" 0 "$dydca" -q decode "$tmp/a.mkv" --muxer md5
expect "auto without scales = fp32 md5" '[[ $(cat "$tmp/out") == "$md5" ]]'
check "precision int8 without scales" 1 "$dydca" decode "$tmp/a.mkv" --muxer null --precision int8
expect "int8 without scales: one line" '[[ $(wc -l <"$tmp/err") == 1 ]] && grep -q "int8 activation scales" "$tmp/err"'
check "bad precision" 1 "$dydca" decode "$tmp/a.mkv" --muxer null --precision int4
check "info says int8 scales" 0 "$dydca" info "$tmp/i8.mkv"
grep -q "int8 scales" "$tmp/out" || { echo "FAIL: info int8 scales"; cat "$tmp/out"; fails=$((fails+1)); }
check "info says no int8 scales" 0 "$dydca" info "$tmp/a.mkv"
grep -q "no int8 scales" "$tmp/out" || { echo "FAIL: info no int8 scales"; fails=$((fails+1)); }

# Levels, max frames, null muxer.
check "level 2" 0 "$dydca" -q decode "$tmp/a.mkv" --muxer md5 --level 2
expect "level 2 differs" '[[ $(cat "$tmp/out") != "$md5" ]]'
check "level auto" 0 "$dydca" decode "$tmp/a.mkv" --muxer null --level auto
check "bad level" 1 "$dydca" decode "$tmp/a.mkv" --muxer null --level 9
expect "bad level: one line" '[[ $(wc -l <"$tmp/err") == 1 ]]'
check "level not a number" 1 "$dydca" decode "$tmp/a.mkv" --muxer null --level fast
check "max frames" 0 "$dydca" decode "$tmp/a.mkv" --muxer null --max-frames 3
grep -q "^3 frames" "$tmp/err" || { echo "FAIL: max frames summary"; cat "$tmp/err"; fails=$((fails+1)); }
check "simd none" 0 "$dydca" -q decode "$tmp/a.mkv" --muxer md5 --simd none

# mp4 output with the input's audio copied (a plain mkv with audio, bicubic fallback).
ffmpeg -v error -f lavfi -i testsrc2=size=64x48:rate=25 -f lavfi -i sine=frequency=440 \
  -t 0.4 -c:v libx264 -preset ultrafast -c:a aac -shortest "$tmp/plain.mkv"
check "plain video" 0 "$dydca" decode "$tmp/plain.mkv" -o "$tmp/p.mp4" --scale 2
grep -q "no dydca model" "$tmp/err" || { echo "FAIL: plain warning"; cat "$tmp/err"; fails=$((fails+1)); }
streams=$(ffprobe -v error -show_entries stream=codec_type,width,height -of csv=p=0 "$tmp/p.mp4" | sort | tr '\n' ' ')
expect "mp4 has HR video and audio ($streams)" '[[ $streams == "audio video,128,96 " ]]'

# Errors: one line, non-zero, no output left behind.
check "missing input" 1 "$dydca" decode "$tmp/missing.mkv" -o "$tmp/x.y4m"
expect "missing input: one line naming it" '[[ $(wc -l <"$tmp/err") == 1 ]] && grep -q missing.mkv "$tmp/err"'
head -c 3000 "$tmp/a.mkv" >"$tmp/trunc.mkv"
check "truncated" 1 "$dydca" decode "$tmp/trunc.mkv" -o "$tmp/t.y4m"
expect "no output for a failed decode" '[[ ! -e $tmp/t.y4m ]] && ! ls "$tmp"/t.y4m.part* >/dev/null 2>&1'
check "no output given" 1 "$dydca" decode "$tmp/a.mkv"
check "unknown extension" 1 "$dydca" decode "$tmp/a.mkv" -o "$tmp/x.avi"
check "mp4 to stdout" 1 "$dydca" decode "$tmp/a.mkv" -o - --muxer mp4

# Format 2 (segments with a model update each): streamed, switch statistics
# with -v, md5 stable across thread counts, info lists the segments.
check "v2 md5" 0 "$dydca" -q decode "$tmp/v2.mkv" --muxer md5
md5v2=$(cat "$tmp/out")
check "v2 md5 threads 1" 0 "$dydca" -q --threads 1 decode "$tmp/v2.mkv" --muxer md5
expect "v2 md5 stable across threads" '[[ $(cat "$tmp/out") == "$md5v2" ]]'
check "v2 y4m -v" 0 "$dydca" -v decode "$tmp/v2.mkv" -o "$tmp/v2.y4m"
grep -q "30 frames 102x70" "$tmp/err" || { echo "FAIL: v2 summary"; cat "$tmp/err"; fails=$((fails+1)); }
grep -Eq "[0-9]+ segments, [0-9]+ switches" "$tmp/err" || { echo "FAIL: v2 segments in the summary"; cat "$tmp/err"; fails=$((fails+1)); }
grep -q "^format 2, .* segments: .* SR ms at switches p50 .* runtimes alive at most" "$tmp/err" || { echo "FAIL: v2 -v switch line"; cat "$tmp/err"; fails=$((fails+1)); }
ff=$(ffmpeg -v error -i "$tmp/v2.y4m" -f md5 - 2>/dev/null)
expect "v2: ffmpeg md5 of the y4m equals --muxer md5" '[[ $ff == "MD5=$md5v2" ]]'
check "v2 level auto" 0 "$dydca" decode "$tmp/v2.mkv" --muxer null --level auto
check "v2 info" 0 "$dydca" info "$tmp/v2.mkv"
grep -q "format 2" "$tmp/out" && grep -Eq "segments +[0-9]+: 2 full models \+ [0-9]+ updates" "$tmp/out" \
  || { echo "FAIL: v2 info"; cat "$tmp/out"; fails=$((fails+1)); }
grep -q "30 frames" "$tmp/out" || { echo "FAIL: v2 info frame count"; cat "$tmp/out"; fails=$((fails+1)); }
check "v2 info -v" 0 "$dydca" -v info "$tmp/v2.mkv"
grep -q "segment 1  frames .* model update .* routing" "$tmp/out" || { echo "FAIL: v2 info -v segments"; cat "$tmp/out"; fails=$((fails+1)); }
check "v2 info --json" 0 "$dydca" info --json "$tmp/v2.mkv"
nseg=$(python3 -c "import json,sys; j=json.load(open('$tmp/out')); print(j['format_version'], j['video']['frames'], sum(s['frames'] for s in j['segments']), j['segments'][1]['model'])" 2>&1)
expect "v2 info --json: format, frames, segments ($nseg)" '[[ $nseg == "2 30 30 update" ]]'
check "v1 info" 0 "$dydca" info "$tmp/a.mkv"
grep -q "format 1" "$tmp/out" && grep -q "model.dydca" "$tmp/out" && grep -q "10 frames" "$tmp/out" \
  || { echo "FAIL: v1 info"; cat "$tmp/out"; fails=$((fails+1)); }
# Truncated in the packets (the header intact): an error at the end, no output.
python3 - "$tmp/v2.mkv" "$tmp/v2cut.mkv" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
c = b.find(b'\x1f\x43\xb6\x75')  # first Cluster: the segment table is before it
open(sys.argv[2], 'wb').write(b[:c + (len(b) - c) // 2])
PY
check "v2 truncated" 1 "$dydca" decode "$tmp/v2cut.mkv" -o "$tmp/v2cut.y4m"
# (FFmpeg's own "File ended prematurely" warning may come before it.)
expect "v2 truncated: one error line saying so" '[[ $(grep -c "error:" "$tmp/err") == 1 ]] && grep "error:" "$tmp/err" | grep -q "of 30 frames (truncated"'
expect "v2 truncated: no output" '[[ ! -e $tmp/v2cut.y4m ]] && ! ls "$tmp"/v2cut.y4m.part* >/dev/null 2>&1'
check "v2 truncated mp4" 1 "$dydca" decode "$tmp/v2cut.mkv" -o "$tmp/v2cut.mp4"
expect "v2 truncated mp4: no output" '[[ ! -e $tmp/v2cut.mp4 ]] && [[ $(ls "$tmp" | grep -c v2cut.mp4) == 0 ]]'
check "v2 truncated info" 1 "$dydca" info "$tmp/v2cut.mkv"

# dydca play in a headless X server: the player's own count of late frames,
# its QoS trace (one row per frame), the first-picture log line.
# (Not in the sanitizer run: SDL and the X/GL libraries keep allocations
# of their own that LeakSanitizer would report.)
if [[ -n ${ASAN_OPTIONS:-} ]]; then
  echo "note: sanitizer run: play not tested"
elif "$dydca" play --help >/dev/null 2>&1 && command -v Xvfb >/dev/null; then
  disp=$(( 200 + RANDOM % 300 ))
  Xvfb ":$disp" -screen 0 1280x720x24 -nolisten tcp >/dev/null 2>&1 &
  xvfb=$!
  sleep 1
  check "play auto" 0 env DISPLAY=":$disp" SDL_RENDER_DRIVER=software "$dydca" -v play "$tmp/v2.mkv" --trace "$tmp/trace.csv"
  grep -q "first picture .* s after start" "$tmp/err" || { echo "FAIL: play first picture"; cat "$tmp/err"; fails=$((fails+1)); }
  grep -q "played 30 frames .* late" "$tmp/err" || { echo "FAIL: play final line"; cat "$tmp/err"; fails=$((fails+1)); }
  expect "play trace: one row per frame" '[[ $(tail -n +2 "$tmp/trace.csv" | wc -l) == 30 ]]'
  check "play pinned level" 0 env DISPLAY=":$disp" SDL_RENDER_DRIVER=software "$dydca" play "$tmp/v2.mkv" --level 1 --max-frames 5
  check "play bad level" 1 env DISPLAY=":$disp" "$dydca" play "$tmp/v2.mkv" --level x
  kill "$xvfb" 2>/dev/null
else
  echo "note: dydca play or Xvfb missing: play not tested"
fi

echo "$passes passed, $fails failed"
[[ $fails == 0 ]]
