#!/bin/bash
# The LR's downscaling filter at equal bytes (docs/decisions.md, "The LR is lanczos-downscaled"):
# CLIP downscaled by SCALE with FILTER (swscale: area, bicubic, lanczos, spline...), x264 medium
# 2-pass at RATE kb/s, decoded, upscaled back by lanczos, PSNR-Y against the clip's first FRAMES
# frames. Uses ffmpeg and `dydca compare` only.
# Usage: bench/downscale_filters.sh DYDCA CLIP RATE SCALE "FILTER..." [FRAMES=96]
set -euo pipefail
BIN=$1 CLIP=$2 R=$3 S=$4 FILTERS=$5 NF=${6:-96}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
ffmpeg -v error -y -i "$CLIP" -frames:v "$NF" -pix_fmt yuv420p "$T/hr.y4m"
read -r W H < <(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$T/hr.y4m" | tr ',' ' ')
for FL in $FILTERS; do
  ffmpeg -v error -y -i "$T/hr.y4m" -vf "scale=$((W / S / 2 * 2)):$((H / S / 2 * 2)):flags=$FL" -pix_fmt yuv420p "$T/lr.y4m"
  for p in 1 2; do
    ffmpeg -v error -y -i "$T/lr.y4m" -c:v libx264 -preset medium -b:v "${R}k" -pass $p -passlogfile "$T/pl" -f matroska "$T/lr.mkv"
  done
  bytes=$(ffprobe -v error -select_streams v:0 -show_entries packet=size -of csv=p=0 "$T/lr.mkv" | awk '{s+=$1} END {print s}')
  ffmpeg -v error -y -i "$T/lr.mkv" -fps_mode passthrough -vf "scale=$W:$H:flags=lanczos" -pix_fmt yuv420p "$T/up.y4m"
  psnr=$("$BIN" compare "$T/hr.y4m" "$T/up.y4m" --json | python3 -c "import json,sys; print(round(json.load(sys.stdin)['psnr_y'], 3))")
  echo "$(basename "$CLIP") x$S $R kb/s $FL: video $bytes bytes, lanczos upscale PSNR-Y $psnr dB"
done
