#!/usr/bin/env bash
# Sets dydca up on a fresh machine and runs it on a bundled sample clip.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
samples/fetch.sh movie-hello.mp4
clip=samples/cache/movie-hello.mp4
echo "== dydca probe $clip"
build/dydca probe "$clip"
echo "== dydca baseline $clip --scale 2 (LR x264 + bicubic vs HR x264 at equal bits)"
build/dydca baseline "$clip" --scale 2 --crf 26 --max-frames 120
