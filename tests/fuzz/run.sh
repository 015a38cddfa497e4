#!/bin/sh
# Runs the API fuzz target briefly: `make fuzz` calls `sh tests/fuzz/run.sh BUILD/fuzz/fuzz_api`.
# The seed corpus is copied to a scratch directory outside the repository (so the run never
# writes into tests/fuzz/corpus); crash files are kept there and their paths printed.
# FUZZ_TIME (seconds, default 30) sets the length. Exits non-zero on any crash, leak or
# timeout. To reproduce a crash: BUILD/fuzz/fuzz_api CRASH_FILE
set -u
bin=${1:-build/fuzz/fuzz_api}
here=$(cd "$(dirname "$0")" && pwd)
secs=${FUZZ_TIME:-30}

if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is not built (make B=... \$(B)/fuzz/fuzz_api)" >&2
    exit 2
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/lyceumd-fuzz-run.XXXXXX")
mkdir -p "$scratch/corpus" "$scratch/artifacts" "$scratch/tmp"
cp "$here"/corpus/* "$scratch/corpus/"

TMPDIR="$scratch/tmp" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -dict="$here/api.dict" -artifact_prefix="$scratch/artifacts/" -print_final_stats=1 \
    "$scratch/corpus" >"$scratch/log" 2>&1
rc=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$scratch/log" | tail -n 1 | cut -d' ' -f2)
ft=$(grep -o 'ft: [0-9]*' "$scratch/log" | tail -n 1 | cut -d' ' -f2)
corpus=$(ls "$scratch/corpus" | wc -l)
crashes=$(ls "$scratch/artifacts" | wc -l)

if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    tail -n 60 "$scratch/log" >&2
    echo "fuzz: FAILED (exit $rc) after ${execs:-?} runs; artifacts in $scratch/artifacts:" >&2
    ls "$scratch/artifacts" | sed "s|^|  $scratch/artifacts/|" >&2
    echo "fuzz: reproduce with: $bin $scratch/artifacts/<file>" >&2
    exit 1
fi
echo "fuzz: ok, ${execs:-?} runs in ${secs}s, coverage ${cov:-?} edges (${ft:-?} features), corpus $corpus inputs, 0 crashes"
rm -rf "$scratch"
