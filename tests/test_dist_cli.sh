#!/usr/bin/env bash
# Distributed encode through the CLI on one machine (issue 10): two ranks on
# 127.0.0.1 give the output a one-process encode gives (same global batch);
# the environment convention works; a rank that never joins or dies makes the
# other fail after the timeout with no output file; a restart resumes from
# rank 0's checkpoint.
set -u
dydca=$1
. "$(dirname "$0")/cli_test_lib.sh"
port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }

ffmpeg -v error -f lavfi -i testsrc2=size=192x128:rate=24 -t 0.5 -c:v libx264 -crf 12 \
  -preset ultrafast "$tmp/clip.mkv"
common=(--threads 1 -q encode "$tmp/clip.mkv" --scale 2 --steps 30 --preset ultrafast --chunks 2
        --model-precision fp32)

# 1. One process vs two ranks (flags), same seed and global batch.
"$dydca" "${common[@]}" -o "$tmp/one.mkv" --report "$tmp/one.json" 2>"$tmp/one.err" || bad "1-process encode"
p=$(port)
"$dydca" "${common[@]}" -o "$tmp/two.mkv" --report "$tmp/two.json" --world-size 2 --rank 0 \
  --master 127.0.0.1:$p 2>"$tmp/r0.err" & r0=$!
"$dydca" "${common[@]}" -o "$tmp/unused.mkv" --world-size 2 --rank 1 --master 127.0.0.1:$p \
  >"$tmp/r1.out" 2>"$tmp/r1.err"; rc1=$?
wait $r0; rc0=$?
[[ $rc0 == 0 && $rc1 == 0 ]] && ok || { bad "2-rank encode ($rc0, $rc1)"; tail -n 3 "$tmp/r0.err" "$tmp/r1.err"; }
[[ -f "$tmp/two.mkv" && ! -e "$tmp/unused.mkv" && ! -e "$tmp/unused.mkv.parts" ]] && ok || bad "only rank 0 writes"
d=$(python3 -c "
import json; a=json.load(open('$tmp/one.json')); b=json.load(open('$tmp/two.json'))
print(max(abs(x['psnr_y']-y['psnr_y']) for x,y in zip(a['levels'],b['levels'])))")
python3 -c "import sys; sys.exit(0 if $d < 0.01 else 1)" && ok || bad "2 ranks differ from 1 process by $d dB"
"$dydca" info "$tmp/two.mkv" >/dev/null && ok || bad "info on the 2-rank output"

# 1b. Data-parallel over several segments: one c10d group for the whole
#     encode (a barrier per segment), same result as one process.
"$dydca" "${common[@]}" --segment-seconds 0.25 -o "$tmp/one2.mkv" --report "$tmp/one2.json" 2>/dev/null || bad "1-process 2-segment encode"
p=$(port)
"$dydca" "${common[@]}" --segment-seconds 0.25 -o "$tmp/two2.mkv" --report "$tmp/two2.json" \
  --world-size 2 --rank 0 --master 127.0.0.1:$p 2>"$tmp/r20.err" & r0=$!
"$dydca" "${common[@]}" --segment-seconds 0.25 -o "$tmp/unused2.mkv" --world-size 2 --rank 1 \
  --master 127.0.0.1:$p >/dev/null 2>"$tmp/r21.err"; rc1=$?
wait $r0; rc0=$?
[[ $rc0 == 0 && $rc1 == 0 ]] && ok || { bad "2-rank 2-segment encode ($rc0, $rc1)"; tail -n 3 "$tmp/r20.err" "$tmp/r21.err"; }
d=$(python3 -c "
import json; a=json.load(open('$tmp/one2.json')); b=json.load(open('$tmp/two2.json'))
assert len(a['segments']) == len(b['segments']) == 2
print(max(abs(x['psnr_y']-y['psnr_y']) for x,y in zip(a['levels'],b['levels'])))") || d=99
python3 -c "import sys; sys.exit(0 if $d < 0.01 else 1)" && ok || bad "2 ranks x 2 segments differ from 1 process by $d dB"

# 2. The environment convention (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT).
p=$(port)
WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$p \
  "$dydca" "${common[@]}" -o "$tmp/env.mkv" 2>"$tmp/e0.err" & r0=$!
WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$p \
  "$dydca" "${common[@]}" -o "$tmp/env.mkv" >/dev/null 2>"$tmp/e1.err"; rc1=$?
wait $r0; rc0=$?
[[ $rc0 == 0 && $rc1 == 0 && -f "$tmp/env.mkv" ]] && ok || { bad "env convention ($rc0, $rc1)"; tail -3 "$tmp/e0.err"; }

# 3. A rank that never joins: rank 0 fails after --dist-timeout, no output.
p=$(port)
start=$SECONDS
"$dydca" "${common[@]}" -o "$tmp/alone.mkv" --world-size 2 --rank 0 --master 127.0.0.1:$p \
  --dist-timeout 3 2>"$tmp/alone.err"; rc=$?
[[ $rc != 0 && $rc -lt 128 ]] && ok || bad "a lone rank 0 must fail (exit $rc)"
(( SECONDS - start < 60 )) && ok || bad "the lone rank took $((SECONDS - start)) s"
grep -q "not every rank joined" "$tmp/alone.err" && ok || { bad "lone rank message"; tail -2 "$tmp/alone.err"; }
[[ ! -e "$tmp/alone.mkv" ]] && ok || bad "output left by the lone rank"

# 4. A rank dies mid-training: rank 0 fails with no output; a restart of both
#    ranks resumes from rank 0's training checkpoint in the work folder.
p=$(port)
long=(--threads 1 encode "$tmp/clip.mkv" --scale 2 --steps 300 --preset ultrafast --chunks 2
      --checkpoint "$tmp/ck.pt" --dist-timeout 10 --master 127.0.0.1:$p --world-size 2)
"$dydca" "${long[@]}" -o "$tmp/dead.mkv" --rank 0 2>"$tmp/d0.err" & r0=$!
"$dydca" "${long[@]}" -o "$tmp/dead.mkv" --rank 1 >/dev/null 2>"$tmp/d1.err" & r1=$!
ck="$tmp/ck.pt/seg-00000.train"
for _ in $(seq 1 120); do [[ -f "$ck" ]] && break; sleep 0.5; done  # a checkpoint exists
[[ -f "$ck" ]] && ok || bad "no checkpoint after 60 s"
kill -9 $r1; wait $r1 2>/dev/null
wait $r0; rc=$?
[[ $rc != 0 && $rc -lt 128 ]] && ok || bad "rank 0 must fail when rank 1 dies (exit $rc)"
grep -q "rank 0 of 2" "$tmp/d0.err" && ok || { bad "dead-rank message"; tail -2 "$tmp/d0.err"; }
ls "$tmp" | grep -q "^dead\.mkv" && bad "output left after a dead rank" || ok
p=$(port)
long[17]=127.0.0.1:$p
"$dydca" -v "${long[@]}" -o "$tmp/dead.mkv" --rank 0 2>"$tmp/s0.err" & r0=$!
"$dydca" "${long[@]}" -o "$tmp/dead.mkv" --rank 1 >/dev/null 2>"$tmp/s1.err"; rc1=$?
wait $r0; rc0=$?
[[ $rc0 == 0 && $rc1 == 0 && -f "$tmp/dead.mkv" ]] && ok || { bad "restart ($rc0, $rc1)"; tail -3 "$tmp/s0.err"; }
grep -q "resumed from" "$tmp/s0.err" && ok || { bad "the restart did not resume"; tail -3 "$tmp/s0.err"; }

# 5. Segments spread over the ranks (--dist-mode segments): rank r encodes
#    segments r, r+2, ... into the shared work folder, rank 0 muxes; a lone
#    rank 0 fails when rank 1 never beats.
seg=(--threads 1 -q encode "$tmp/clip.mkv" --scale 2 --steps 30 --preset ultrafast --chunks 2
     --segment-seconds 0.25 --dist-mode segments --world-size 2)
"$dydca" "${seg[@]}" -o "$tmp/segs.mkv" --rank 0 --dist-timeout 20 --report "$tmp/segs.json" 2>"$tmp/g0.err" & r0=$!
"$dydca" "${seg[@]}" -o "$tmp/segs.mkv" --rank 1 --dist-timeout 20 >/dev/null 2>"$tmp/g1.err"; rc1=$?
wait $r0; rc0=$?
[[ $rc0 == 0 && $rc1 == 0 && -f "$tmp/segs.mkv" ]] && ok || { bad "segment-parallel encode ($rc0, $rc1)"; tail -n 3 "$tmp/g0.err" "$tmp/g1.err"; }
[[ $(jget "$tmp/segs.json" "['segments'].__len__()") == 2 ]] && ok || bad "2 segments"
"$dydca" -q decode "$tmp/segs.mkv" --muxer md5 >/dev/null && ok || bad "decode the segment-parallel output"
"$dydca" "${seg[@]}" -o "$tmp/lone.mkv" --rank 0 --dist-timeout 3 2>"$tmp/lone.err"; rc=$?
[[ $rc != 0 && $rc -lt 128 ]] && ok || bad "a lone segment-parallel rank 0 must fail (exit $rc)"
grep -q "rank 1 never started" "$tmp/lone.err" && ok || { bad "lone segment rank message"; tail -2 "$tmp/lone.err"; }
[[ ! -e "$tmp/lone.mkv" ]] && ok || bad "output left by the lone segment rank"

# 6. Bad flags.
"$dydca" "${common[@]}" -o "$tmp/x.mkv" --world-size 2 --rank 2 2>/dev/null && bad "rank >= world size accepted" || ok
"$dydca" "${common[@]}" -o "$tmp/x.mkv" --world-size 2 --rank 0 --master nowhere 2>/dev/null && bad "bad --master accepted" || ok
"$dydca" "${common[@]}" -o "$tmp/x.mkv" --world-size 2 --rank 0 --baseline static 2>/dev/null && bad "distributed baseline accepted" || ok

echo "test_dist_cli: $passes passed, $fails failed"
[[ $fails == 0 ]]
