#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs, builds (Release), fetches
# the sample clips, runs ctest; then builds the LibTorch-free libraries with
# AddressSanitizer + UBSan and runs their tests too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
t_all=$(date +%s)
scripts/setup.sh
echo "== fetching sample clips"
samples/fetch.sh || echo "warning: some sample clips could not be fetched; tests that need them are skipped"
echo "== ctest (Release)"
ctest --test-dir build --output-on-failure -j 2

echo "== ASan + UBSan build of the client-side libraries"
t0=$(date +%s)
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDYDCA_SANITIZE=ON \
  -DDYDCA_WITH_TRAINING=OFF >/dev/null
cmake --build build-asan -j "$(nproc)"
echo "== built in $(( $(date +%s) - t0 )) s"
# LeakSanitizer stays on; FFmpeg/x264 keep a few process-lifetime allocations
# that we do not own, listed in the suppressions file.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j 2
echo "== all tests passed in $(( $(date +%s) - t_all )) s"
