#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (plain and
# ASan+UBSan, both with -Werror, plus the libFuzzer targets with clang) and
# runs every tier:
#   style        clang-format on every C source
#   unit         cmocka, one executable per module (plain and sanitized)
#   integration  real agents and gateway over mutual TLS on loopback
#   quickstart   deploy/quickstart.sh end to end, in a temporary FEDQ_HOME
#   fuzz         each libFuzzer target for FQ_FUZZ_SECONDS (default 30)
# Prints a summary per tier and ends with "N passed, M failed, 0 skipped".
# Options: --tier NAME (run only that tier; repeatable).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
FUZZ_SECONDS=${FQ_FUZZ_SECONDS:-30}
PY=/usr/bin/python3   # Debian's interpreter: it sees Debian's grpc modules
LOG=$REPO/build-logs
mkdir -p "$LOG"

only=()
while [ $# -gt 0 ]; do
    case $1 in
    --tier) only+=("$2"); shift ;;
    *) echo "usage: tests/run.sh [--tier style|unit|integration|quickstart|fuzz]..." >&2; exit 2 ;;
    esac
    shift
done
want() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }

# Full malloc stacks (fast_unwind_on_malloc=0): the leak suppressions in
# tests/lsan.supp match on modules deep in the stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:fast_unwind_on_malloc=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$REPO/tests/lsan.supp:print_suppressions=0}

declare -A T_RUN T_FAIL
tiers=()
record() { # tier run failed
    tiers+=("$1"); T_RUN[$1]=$2; T_FAIL[$1]=$3
    printf '== tier %-12s run %d, failed %d, skipped 0\n' "$1" "$2" "$3"
}

die() { echo "tests/run.sh: $*" >&2; exit 1; }

echo "== dependencies"
deploy/install-deps.sh || die "dependencies missing"

build() { # dir, cmake args...
    local dir=$1; shift
    echo "== build $dir $*"
    cmake -S . -B "$dir" -G Ninja "$@" >"$LOG/$(basename "$dir").cmake.log" 2>&1 ||
        { cat "$LOG/$(basename "$dir").cmake.log"; die "cmake failed for $dir"; }
    ninja -C "$dir" >"$LOG/$(basename "$dir").build.log" 2>&1 ||
        { tail -n 60 "$LOG/$(basename "$dir").build.log"; die "build failed in $dir"; }
}
build build -DFQ_WERROR=ON
build build-asan -DFQ_WERROR=ON -DFQ_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
if want fuzz; then
    CC=clang build build-fuzz -DFQ_WERROR=ON -DFQ_SANITIZE=ON -DFQ_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link
fi

if want style; then
    n=0 f=0
    while IFS= read -r src; do
        n=$((n + 1))
        clang-format --dry-run -Werror "$src" >/dev/null 2>&1 ||
            { echo "style: clang-format would change $src"; f=$((f + 1)); }
    done < <(git ls-files '*.c' '*.h'; git ls-files --others --exclude-standard '*.c' '*.h')
    # The configuration reference is generated from the directive tables.
    n=$((n + 1))
    ref=$(mktemp)
    docs/gen-config-reference.sh build "$ref"
    cmp -s "$ref" docs/configuration-reference.md ||
        { echo "style: docs/configuration-reference.md is stale (run docs/gen-config-reference.sh build)"; f=$((f + 1)); }
    rm -f "$ref"
    record style $n $f
fi

# Runs every cmocka executable of a build; prints "cases failed".
unit_tier() {
    local dir=$1 runs=0 fails=0 exe out n f
    for exe in "$dir"/test_*; do
        [ -x "$exe" ] || continue
        out=$("$exe" 2>&1); rc=$?
        n=$(echo "$out" | sed -n 's/^\[==========\] \([0-9]*\) test(s) run\./\1/p' | tail -n 1)
        f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s).*/\1/p' | tail -n 1)
        [ -n "$n" ] || { n=1; f=1; }
        [ $rc -eq 0 ] || [ "${f:-0}" -gt 0 ] || f=1   # a crash after the last case
        runs=$((runs + n)); fails=$((fails + ${f:-0}))
        if [ "${f:-0}" -gt 0 ]; then echo "$out" | grep -E 'FAILED|ERROR|error|Sanitizer' | head -n 20 >&2; fi
        printf '  %-28s %s: %d cases, %d failed\n' "$(basename "$exe")" "$(basename "$dir")" "$n" "${f:-0}" >&2
    done
    echo "$runs $fails"
}

if want unit; then
    read -r r1 f1 < <(unit_tier build)
    read -r r2 f2 < <(unit_tier build-asan)
    [ "$r1" -gt 0 ] || die "no unit tests found"
    record unit $((r1 + r2)) $((f1 + f2))
fi

if want integration; then
    out=$("$PY" tests/integration/run_integration.py --bin build-asan 2>&1 | tee "$LOG/integration.log")
    summary=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    echo "$out" | grep -E '^(PASS|FAIL)' | sed 's/^/  /'
    if [ -n "$summary" ]; then
        p=$(echo "$summary" | awk '{print $1}'); fl=$(echo "$summary" | awk '{print $3}')
        record integration $((p + fl)) "$fl"
    else
        echo "$out" | tail -n 30; record integration 1 1
    fi
fi

if want quickstart; then
    qs_home=$(mktemp -d)
    if FEDQ_HOME=$qs_home FEDQ_BUILD_DIR=$REPO/build-asan deploy/quickstart.sh --persons 2000 \
        >"$LOG/quickstart.log" 2>&1 &&
        grep -qE '^hied +uhs,csu,ccs +enrollment +yes' "$LOG/quickstart.log" &&
        [ "$(grep -cE '^(dol|dss|doe|uhs|csu|ccs) +ok ' "$LOG/quickstart.log")" -eq 6 ] &&
        ! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$LOG/quickstart.log" "$qs_home"/log/*.log; then
        record quickstart 1 0
    else
        tail -n 40 "$LOG/quickstart.log"; record quickstart 1 1
    fi
    rm -rf "$qs_home"
fi

if want fuzz; then
    n=0 f=0
    for bin in build-fuzz/fuzz_*; do
        [ -x "$bin" ] || continue
        name=$(basename "$bin"); n=$((n + 1))
        corpus=$(mktemp -d); cp -r "tests/fuzz/corpus/${name#fuzz_}/." "$corpus/" 2>/dev/null || true
        if "$bin" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$LOG/$name-" "$corpus" >"$LOG/$name.log" 2>&1; then
            echo "  fuzz $name: $(grep -E 'stat::number_of_executed_units' "$LOG/$name.log" | awk '{print $2}') runs in ${FUZZ_SECONDS}s, no crash"
        else
            echo "  fuzz $name: FAILED"; tail -n 30 "$LOG/$name.log"; f=$((f + 1))
        fi
        rm -rf "$corpus"
    done
    [ $n -gt 0 ] || { echo "  no fuzz targets built"; f=1; n=1; }
    record fuzz $n $f
fi

total=0 failed=0
echo
for t in "${tiers[@]}"; do
    printf '%-12s run %4d  failed %d  skipped 0\n' "$t" "${T_RUN[$t]}" "${T_FAIL[$t]}"
    total=$((total + T_RUN[$t])); failed=$((failed + T_FAIL[$t]))
done
echo "$((total - failed)) passed, $failed failed, 0 skipped"
[ $failed -eq 0 ]
