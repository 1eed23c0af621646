#!/usr/bin/env bash
# The segmented encoder through the CLI (issue 14): several segments with
# model updates in one format-2 file that ffprobe reads; an encode killed
# with -9 resumes from its work folder at the first unfinished segment and
# gives the same pictures as a straight run (decoded md5, bit for bit); a work
# folder of another encode is refused.
set -u
dydca=$1
. "$(dirname "$0")/cli_test_lib.sh"

# 3 s at 24 fps with a tone: three 1-second segments.
ffmpeg -v error -f lavfi -i testsrc2=size=192x128:rate=24 -f lavfi -i sine=frequency=440 -t 3 \
  -c:v libx264 -crf 12 -preset ultrafast -c:a aac -shortest "$tmp/clip.mkv"
common=(--threads 1 -q encode "$tmp/clip.mkv" --scale 2 --steps 600 --preset ultrafast --chunks 2
        --segment-seconds 1)

# 1. Straight run.
"$dydca" "${common[@]}" -o "$tmp/a.mkv" --report "$tmp/a.json" 2>"$tmp/a.err" || { bad "straight encode"; cat "$tmp/a.err"; }
[[ $(jget "$tmp/a.json" "['frames']") == 72 ]] && ok || bad "72 frames encoded"
[[ $(jget "$tmp/a.json" "['segments'].__len__()") == 3 ]] && ok || bad "3 segments"
[[ $(jget "$tmp/a.json" "['segments'][1]['model_is_delta']") == True ]] && ok || bad "segment 1 is a model update"
[[ ! -e "$tmp/a.mkv.parts" ]] && ok || bad "work folder left after success"
n=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$tmp/a.mkv")
[[ $n == 72 ]] && ok || bad "ffprobe counts $n packets"
[[ -z $(ffprobe -v error -show_streams "$tmp/a.mkv" 2>&1 >/dev/null) ]] && ok || bad "ffprobe complains"
ffprobe -v error -select_streams a -show_entries stream=codec_name -of csv=p=0 "$tmp/a.mkv" | grep -q aac && ok || bad "audio copied"
md5a=$("$dydca" -q decode "$tmp/a.mkv" --muxer md5 2>"$tmp/da.err") || { bad "decode a"; cat "$tmp/da.err"; }

# 2. Killed after its first segment, then resumed.
"$dydca" "${common[@]}" -o "$tmp/b.mkv" --checkpoint "$tmp/work" 2>/dev/null & pid=$!
for _ in $(seq 1 600); do [[ -f "$tmp/work/seg-00000.json" ]] && break; sleep 0.1; done
kill -9 $pid; wait $pid 2>/dev/null
[[ -f "$tmp/work/seg-00000.json" ]] && ok || bad "no finished segment before the kill"
[[ ! -e "$tmp/b.mkv" ]] && ok || bad "output written by a killed encode"
"$dydca" "${common[@]}" -o "$tmp/b.mkv" --checkpoint "$tmp/work" 2>"$tmp/b1.err" && bad "a used work folder without --resume accepted" || ok
grep -q -- "--resume" "$tmp/b1.err" && ok || bad "the refusal does not say --resume"
"$dydca" "${common[@]}" -o "$tmp/b.mkv" --checkpoint "$tmp/work" --resume --report "$tmp/b.json" 2>"$tmp/b.err" || { bad "resume"; cat "$tmp/b.err"; }
r=$(jget "$tmp/b.json" "['resumed_segments']")
[[ $r -ge 1 ]] && ok || bad "resumed $r segments"
md5b=$("$dydca" -q decode "$tmp/b.mkv" --muxer md5 2>/dev/null)
[[ -n $md5a && $md5a == "$md5b" ]] && ok || bad "resumed output differs ($md5a vs $md5b)"
[[ ! -e "$tmp/work" ]] && ok || bad "work folder left after the resumed encode"

# 2b. Bitrate mode (x264 2-pass per segment: the segments' PPS differ and go
#     in band at their IDRs): what the client decodes is what the encoder
#     measured, to the printed digit.
"$dydca" "${common[@]}" --bitrate 200 -o "$tmp/br.mkv" --report "$tmp/br.json" 2>/dev/null || bad "bitrate encode"
"$dydca" -q decode "$tmp/br.mkv" -o "$tmp/br.y4m" 2>/dev/null || bad "bitrate decode"
ffmpeg -v error -i "$tmp/clip.mkv" -an -vsync passthrough -pix_fmt yuv420p "$tmp/ref.y4m"
got=$("$dydca" compare --json "$tmp/ref.y4m" "$tmp/br.y4m" | python3 -c "import json,sys; print('%.3f' % json.load(sys.stdin)['psnr_y'])")
want=$(jget "$tmp/br.json" "['levels'][0]['psnr_y'].__format__('.3f')")
[[ -n $got && $got == "$want" ]] && ok || bad "client PSNR-Y $got, encoder reported $want"

# 2c. Ctrl-C (SIGINT): a clean stop that says how to continue.
"$dydca" "${common[@]}" -o "$tmp/i.mkv" 2>"$tmp/i.err" & pid=$!
for _ in $(seq 1 600); do [[ -f "$tmp/i.mkv.parts/seg-00000.json" ]] && break; sleep 0.1; done
kill -INT $pid; wait $pid; rc=$?
[[ $rc == 1 ]] && ok || bad "Ctrl-C exit code $rc"
grep -q -- "--resume to continue" "$tmp/i.err" && ok || { bad "Ctrl-C message"; tail -n 2 "$tmp/i.err"; }
[[ ! -e "$tmp/i.mkv" && -f "$tmp/i.mkv.parts/seg-00000.json" ]] && ok || bad "Ctrl-C: output written or segments lost"

# 3. A work folder of other parameters is refused.
"$dydca" "${common[@]}" -o "$tmp/c.mkv" --checkpoint "$tmp/w2" --max-frames 30 2>/dev/null & pid=$!
for _ in $(seq 1 600); do [[ -f "$tmp/w2/seg-00000.json" ]] && break; sleep 0.1; done
kill -9 $pid; wait $pid 2>/dev/null
"$dydca" "${common[@]}" -o "$tmp/c.mkv" --checkpoint "$tmp/w2" --resume 2>"$tmp/c.err" && bad "resume with other parameters accepted" || ok
grep -q "other input or parameters" "$tmp/c.err" && ok || { bad "mismatch message"; cat "$tmp/c.err"; }

echo "test_segments_cli: $passes passed, $fails failed"
[[ $fails == 0 ]]
