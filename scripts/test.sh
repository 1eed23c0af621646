#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs, builds (Release), fetches
# the sample clips, runs ctest; then builds the LibTorch-free libraries with
# AddressSanitizer + UBSan and runs their tests too, and the threaded client
# code (decode pipeline, runtime pool, C API) under ThreadSanitizer.
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

echo "== ThreadSanitizer build of the threaded client code (decode pipeline, runtime pool, C API)"
t0=$(date +%s)
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDYDCA_WITH_TRAINING=OFF \
  -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_CXX_FLAGS=-fsanitize=thread \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
cmake --build build-tsan -j "$(nproc)" --target test_qos test_decoder test_c_api test_runtime
echo "== built in $(( $(date +%s) - t0 )) s"
# FFmpeg's own frame threads synchronise inside libraries TSan cannot see
# into: suppressed (tests/tsan.supp); every race in our code fails the run.
export TSAN_OPTIONS=halt_on_error=1:suppressions=$root/tests/tsan.supp
build-tsan/tests/test_qos
build-tsan/tests/test_decoder
build-tsan/tests/test_c_api
# The runtime's thread pool: the thread-count and per-frame cases (the whole
# kernel suite takes 7 min under TSan and has no threads of its own).
build-tsan/tests/test_runtime -tc="output does not depend on the thread count,int8: no allocation per frame*,routing map overload*"
echo "== all tests passed in $(( $(date +%s) - t_all )) s"
