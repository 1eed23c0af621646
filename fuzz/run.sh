#!/usr/bin/env bash
# Runs the six fuzzers in parallel (nice'd) for SECONDS each from a fuzz build:
#   fuzz/run.sh build-fuzz 600
# Corpora grow in BUILD/fuzz/corpus-*; crashes land in BUILD/fuzz/artifacts/; logs in BUILD/fuzz/*.log.
set -eu
build=${1:?build dir}; seconds=${2:-600}
src=$(cd "$(dirname "$0")/.." && pwd)
out=$build/fuzz
"$out/fuzz_make_seeds" "$out/seeds" >/dev/null 2>&1
mkdir -p "$out/artifacts"
export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp
# UBSan stops at its first report (the fuzz flags would let it go on).
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
pids=()
for t in model_blob model_delta routing_blob segments demux decoder; do
  seeds=$out/seeds/${t%_blob}
  mkdir -p "$out/corpus-$t"
  nice -n 10 "$out/fuzz_$t" "$out/corpus-$t" "$seeds" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
    >"$out/$t.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
for t in model_blob model_delta routing_blob segments demux decoder; do
  echo "$t: $(grep -E '^stat::number_of_executed_units' "$out/$t.log" | awk '{print $2}') executions, \
$(grep -cE '^==[0-9]+==ERROR|^SUMMARY|invariant failed' "$out/$t.log") findings"
done
exit $rc
