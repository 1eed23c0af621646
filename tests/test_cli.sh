#!/usr/bin/env bash
# CLI behaviour: help, bad flags and unreadable inputs give one clear line and
# a non-zero exit; probe and compare work on a generated clip.
set -u
dydca=$1
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
lines() { wc -l <"$tmp/err"; }

check "help" 0 "$dydca" --help
check "no subcommand" 1 "$dydca"
check "unknown flag" 1 "$dydca" probe --bogus x
check "missing input" 1 "$dydca" probe "$tmp/missing.mp4"
[[ $(lines) == 1 ]] || { echo "FAIL: missing input should print one line"; fails=$((fails+1)); }
grep -q "missing.mp4" "$tmp/err" || { echo "FAIL: error names the file"; fails=$((fails+1)); }
echo "not a video" >"$tmp/text.mp4"
check "not a video" 1 "$dydca" probe "$tmp/text.mp4"
check "bad threads" 1 "$dydca" --threads 0 probe "$tmp/text.mp4"
ffmpeg -v error -f lavfi -i testsrc2=size=96x64:rate=25 -frames:v 8 -pix_fmt yuv420p "$tmp/a.y4m"
ffmpeg -v error -i "$tmp/a.y4m" -c:v libx264 -crf 30 -preset ultrafast "$tmp/b.mkv"
check "probe y4m" 0 "$dydca" probe --count "$tmp/a.y4m"
grep -q "96x64" "$tmp/out" && grep -q "8 frames" "$tmp/out" || { echo "FAIL: probe output"; cat "$tmp/out"; fails=$((fails+1)); }
check "probe json" 0 "$dydca" probe --json "$tmp/b.mkv"
grep -q '"width": 96' "$tmp/out" || { echo "FAIL: probe json"; fails=$((fails+1)); }
check "compare" 0 "$dydca" compare "$tmp/a.y4m" "$tmp/b.mkv"
grep -q "8 frames: PSNR-Y" "$tmp/out" || { echo "FAIL: compare output"; cat "$tmp/out"; fails=$((fails+1)); }
ffmpeg -v error -f lavfi -i testsrc2=size=96x64:rate=25 -frames:v 5 -pix_fmt yuv420p "$tmp/c.y4m"
check "compare frame count mismatch" 1 "$dydca" compare "$tmp/a.y4m" "$tmp/c.y4m"
echo "$passes passed, $fails failed"
[[ $fails == 0 ]]
