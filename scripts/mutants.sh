#!/bin/sh
# Mutation testing: `make mutants` runs it. Each file tests/mutants/*.patch is one mutant: a
# small change to the server that a test must notice, written as a unified diff against the
# tree, after a header:
#
#   Mutant: what it breaks, in one line
#   Kill: pytest node ids (tests/e2e/test_x.py::test_y ...) that must fail with it
#   Unit: unit test programs (test_util ...) that must fail with it        (optional)
#
# The tracked files are copied to a scratch tree (outside the repository) and built once;
# then, for each mutant: apply it, rebuild (only what it touched), run its tests against the
# mutated binary (the release build for the end-to-end tests, the sanitizer build for the unit
# tests), and undo it. First, every named test must pass on the unmutated server (a test that
# fails anyway kills nothing). A mutant is killed when one of its tests fails; it survives
# when all pass; it is broken when it does not apply or does not build. Prints
# `mutants: K killed of N` with the survivors and the broken ones named, and exits non-zero
# unless all are killed.
#   sh scripts/mutants.sh [PATCH...]        (default: every tests/mutants/*.patch)
# MUTANT_TIMEOUT (seconds per mutant's tests, default 900).
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
limit=${MUTANT_TIMEOUT:-900}
if [ $# -gt 0 ]; then patches="$*"; else patches=$(ls tests/mutants/*.patch 2>/dev/null); fi
[ -n "$patches" ] || { echo "mutants: no tests/mutants/*.patch" >&2; exit 2; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/lyceumd-mutants.XXXXXX")
log=$scratch/log
tree=$scratch/tree
mkdir -p "$tree"
git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "$tree" || exit 2

field() { sed -n "s/^$2: *//p" "$1" | head -n 1; }

build() {
    make -C "$tree" -j2 B=build build/lyceumd >>"$log" 2>&1 || return 1
    for u in $1; do
        make -C "$tree" -j2 B=build "build/test/unit/$u" >>"$log" 2>&1 || return 1
    done
}

# Runs the tests a mutant names; 0 when they all pass.
run_tests() {
    kill_ids=$1
    units=$2
    for u in $units; do
        timeout "$limit" "$tree/build/test/unit/$u" >>"$log" 2>&1 || return 1
    done
    [ -z "$kill_ids" ] && return 0
    # shellcheck disable=SC2086
    LYCEUMD_BIN=$tree/build/lyceumd timeout "$limit" /usr/bin/python3 -m pytest -q -x \
        -p no:cacheprovider $kill_ids >>"$log" 2>&1
}

all_units=""
all_ids=""
for p in $patches; do
    all_units="$all_units $(field "$p" Unit)"
    all_ids="$all_ids $(field "$p" Kill)"
done
all_units=$(echo "$all_units" | tr ' ' '\n' | sort -u | tr '\n' ' ')
all_ids=$(echo "$all_ids" | tr ' ' '\n' | sort -u | tr '\n' ' ')

echo "mutants: building the unmutated server in $tree"
if ! build "$all_units"; then
    tail -n 30 "$log" >&2
    echo "mutants: the unmutated tree does not build" >&2
    exit 2
fi
echo "mutants: the named tests on the unmutated server"
if ! run_tests "$all_ids" "$all_units"; then
    tail -n 40 "$log" >&2
    echo "mutants: the tests fail without any mutant: fix them first (log: $log)" >&2
    exit 2
fi

n=0
killed=0
survivors=""
broken=""
for p in $patches; do
    n=$((n + 1))
    name=$(basename "$p" .patch)
    ids=$(field "$p" Kill)
    units=$(field "$p" Unit)
    if [ -z "$ids$units" ]; then
        broken="$broken $name(no Kill or Unit line)"
        continue
    fi
    if ! (cd "$tree" && git apply -p1 "$root/$p") 2>>"$log"; then
        broken="$broken $name(does-not-apply)"
        continue
    fi
    if ! build "$units"; then
        broken="$broken $name(does-not-build)"
    elif run_tests "$ids" "$units"; then
        survivors="$survivors $name"
        echo "  survived: $name ($(field "$p" Mutant))"
    else
        killed=$((killed + 1))
        echo "  killed:   $name"
    fi
    (cd "$tree" && git apply -R -p1 "$root/$p") 2>>"$log" || {
        echo "mutants: cannot undo $name" >&2
        exit 2
    }
done
echo "mutants: $killed killed of $n"
[ -n "$survivors" ] && echo "mutants: survivors:$survivors"
[ -n "$broken" ] && echo "mutants: broken (fix the patch):$broken"
if [ "$killed" -eq "$n" ]; then
    rm -rf "$scratch"
    exit 0
fi
echo "mutants: log in $log"
exit 1
