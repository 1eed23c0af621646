#!/usr/bin/env bash
# End to end through the CLI: dydca encode -> info -> ffprobe/ffmpeg read the
# LR stream -> dydca decode -> an independent PSNR (dydca compare) agrees with
# the encoder's report; multi-model baselines decode; bad inputs fail cleanly.
set -u
dydca=$1
src=$2   # source tree (for the sample clips)
. "$(dirname "$0")/cli_test_lib.sh"
run() {  # expected(0|1) description command...
  local want=$1 what=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if { [[ $want == 0 ]] && [[ $rc == 0 ]]; } || { [[ $want != 0 ]] && [[ $rc != 0 ]] && [[ $rc -lt 128 ]]; }; then ok
  else bad "$what (exit $rc)"; tail -5 "$tmp/err"; fi
}

# A small clip with audio: moving test pattern, 192x128, 24 frames.
ffmpeg -v error -f lavfi -i testsrc2=size=192x128:rate=24 -f lavfi -i sine=frequency=300 \
  -t 1 -c:v libx264 -crf 12 -preset ultrafast -c:a libvorbis "$tmp/clip.mkv"

run 0 "encode" "$dydca" -q encode "$tmp/clip.mkv" -o "$tmp/out.mkv" --scale 2 --steps 40 \
  --preset ultrafast --chunks 3 --report "$tmp/r.json"
[[ -f "$tmp/out.mkv" ]] || bad "no output file"
ls "$tmp" | grep -q part && bad "temporary file left behind"
[[ $(jget "$tmp/r.json" "['frames']") == 24 ]] && ok || bad "report frame count"

run 0 "info" "$dydca" info "$tmp/out.mkv"
grep -q "segments.dydca" "$tmp/out" && grep -q "segments" "$tmp/out" && ok || { bad "info lists the segment table"; cat "$tmp/out"; }
run 0 "info --json" "$dydca" info --json "$tmp/out.mkv"

# Stock tools see a normal LR video with one attachment (the segment table) and the audio.
probe=$(ffprobe -v error -show_entries stream=codec_type,codec_name,width,height -of csv=p=0 "$tmp/out.mkv")
echo "$probe" | grep -q "h264,video,96,64" && ok || { bad "ffprobe video stream"; echo "$probe"; }
[[ $(echo "$probe" | grep -c attachment) == 1 ]] && ok || { bad "ffprobe attachments"; echo "$probe"; }
echo "$probe" | grep -q "audio" && ok || bad "audio copied"
n=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$tmp/out.mkv")
[[ "$n" == 24 ]] && ok || bad "ffprobe decodes $n frames, want 24"

# The report agrees with an independent measurement of the decoded output.
run 0 "decode" "$dydca" -q decode "$tmp/out.mkv" -o "$tmp/dec.y4m" --level 0
run 0 "compare" "$dydca" compare --json "$tmp/clip.mkv" "$tmp/dec.y4m"
cp "$tmp/out" "$tmp/cmp.json"
ours=$(jget "$tmp/cmp.json" "['psnr_y']")
rep=$(jget "$tmp/r.json" "['levels'][0]['psnr_y']")
bic=$(jget "$tmp/r.json" "['bicubic']['psnr_y']")
python3 -c "import sys; sys.exit(0 if abs($ours-$rep) < 0.01 else 1)" && ok || bad "report PSNR $rep vs measured $ours"
echo "report level 0 PSNR-Y $rep, measured $ours, bicubic $bic"

# Multi-model baselines decode too.
run 0 "encode per-segment baseline" "$dydca" -q encode "$tmp/clip.mkv" -o "$tmp/seg.mkv" --steps 8 \
  --preset ultrafast --baseline per-segment --channels 8 --inner 8 --blocks 1
run 0 "decode per-segment baseline" "$dydca" -q decode "$tmp/seg.mkv" --muxer md5

# Bad inputs: one line, non-zero exit, no output file.
run 1 "missing input" "$dydca" encode "$tmp/missing.mp4" -o "$tmp/x.mkv"
[[ $(wc -l <"$tmp/err") == 1 ]] && ok || bad "missing input: one line"
run 1 "not mkv" "$dydca" encode "$tmp/clip.mkv" -o "$tmp/x.mp4"
run 1 "no folder" "$dydca" encode "$tmp/clip.mkv" -o "$tmp/nofolder/x.mkv"
run 1 "crf and bitrate" "$dydca" encode "$tmp/clip.mkv" -o "$tmp/x.mkv" --crf 20 --bitrate 100
ffmpeg -v error -f lavfi -i testsrc2=size=40x30:rate=24 -frames:v 4 "$tmp/tiny.y4m"
run 1 "too small for the scale" "$dydca" encode "$tmp/tiny.y4m" -o "$tmp/x.mkv" --scale 4
grep -q "too small" "$tmp/err" && ok || bad "too-small message"
ffmpeg -v error -f lavfi -i sine -t 0.3 "$tmp/a.wav"
run 1 "audio only" "$dydca" encode "$tmp/a.wav" -o "$tmp/x.mkv"
run 1 "overwrite input" "$dydca" encode "$tmp/out.mkv" -o "$tmp/out.mkv"
[[ -f "$tmp/x.mkv" ]] && bad "an output was left by a failed encode" || ok

# The smallest real sample clip, when fetched (screen content, 956x434).
if [[ -f "$src/samples/cache/basic.mp4" ]]; then
  run 0 "encode real sample" "$dydca" -q encode "$src/samples/cache/basic.mp4" -o "$tmp/basic.mkv" \
    --max-frames 12 --steps 20 --preset ultrafast --report "$tmp/b.json"
  run 0 "info real sample" "$dydca" info "$tmp/basic.mkv"
  echo "basic.mp4: bicubic $(jget "$tmp/b.json" "['bicubic']['psnr_y']") dB, level 0 $(jget "$tmp/b.json" "['levels'][0]['psnr_y']") dB"
else
  echo "samples/cache/basic.mp4 not fetched: real-sample encode skipped"
fi
echo "$passes passed, $fails failed"
[[ $fails == 0 ]]
