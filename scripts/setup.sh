#!/usr/bin/env bash
# Installs every system dependency of dydca (Debian bookworm, apt-get) and
# builds it in Release into build/. Safe to re-run: apt and CMake skip what is
# already done. Environment: DYDCA_BUILD_DIR (default build), DYDCA_CMAKE_ARGS.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  ffmpeg libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libx264-dev
  libtorch-dev libgloo-dev libopenblas0-pthread
  libopencv-dev doctest-dev libzstd-dev zlib1g-dev libcli11-dev nlohmann-json3-dev
  libsdl2-dev gnuplot-nox xvfb python3
)
# npm fetches one sample clip; use the machine's own if it has one (a Node.js
# install from elsewhere conflicts with Debian's npm package).
command -v npm >/dev/null 2>&1 || packages+=(npm)
sudo=""
if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "== installing ${#missing[@]} packages: ${missing[*]}"
  t0=$(date +%s)
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "== installed in $(( $(date +%s) - t0 )) s"
fi

build=${DYDCA_BUILD_DIR:-build}
echo "== configuring $build (Release)"
t0=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${DYDCA_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)"
echo "== built in $(( $(date +%s) - t0 )) s"
