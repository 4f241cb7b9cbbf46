#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS seconds each (default 60),
# starting from its committed seeds in fuzz/corpus/<target>/, and fails if any
# target crashes, hangs or runs out of memory.
#
# Usage: bash scripts/fuzz.sh                       (from any directory)
#        FUZZ_SECONDS=3600 bash scripts/fuzz.sh     (an hour per target)
#        FUZZ_TARGETS="session decode" bash scripts/fuzz.sh   (some targets only)
#        FUZZ_TIMEOUT=60 bash scripts/fuzz.sh       (seconds one input may take, default 25)
#
# Installs cargo-fuzz from crates.io if it is missing. The targets run on the
# stable toolchain (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags), without
# a sanitizer, optimised but with debug assertions and overflow checks. Each run
# writes the inputs it finds into a temporary directory (libFuzzer's first corpus
# directory), never into the checkout; a crashing input lands in
# fuzz/artifacts/<target>/ and is named in the output.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
# A single input that takes this long counts as a hang.
timeout="${FUZZ_TIMEOUT:-25}"
export RUSTC_BOOTSTRAP=1
build_flags=(-s none --release --debug-assertions)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: installing it from crates.io"
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"

echo "== building every target"
start=$(date +%s)
cargo fuzz build "${build_flags[@]}"
echo "built in $(($(date +%s) - start)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for target in $targets; do
    echo "== fuzzing $target for $seconds s"
    mkdir -p "$work/$target"
    corpora=("$work/$target")
    if [[ -d "fuzz/corpus/$target" ]]; then
        corpora+=("fuzz/corpus/$target")
    else
        echo "warning: $target has no seeds in fuzz/corpus/$target"
    fi
    log="$work/$target.log"
    status=0
    cargo fuzz run "${build_flags[@]}" "$target" "${corpora[@]}" -- \
        -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 >"$log" 2>&1 ||
        status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)"
    rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1 || true)"
    corpus="$(find "$work/$target" -type f | wc -l)"
    if [[ $status -eq 0 ]]; then
        line="$target: ${runs:-?} executions in $seconds s, peak RSS ${rss:-?} MB, $corpus new inputs, no crash"
    else
        artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
        # The panic, its backtrace and libFuzzer's report: from the first sign of
        # trouble on, or the end of the log.
        first="$(grep -n -m 1 -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer' "$log" | cut -d: -f1 || true)"
        if [[ -n "$first" ]]; then
            sed -n "$first,\$p" "$log" | head -n 200 || true
        else
            tail -n 80 "$log"
        fi
        line="$target: FAILED (exit $status) after ${runs:-?} executions; input: ${artifact:-none written, see the log above}"
        failed+=("$target")
    fi
    echo "$line"
    summary+=("$line")
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzzing failed: ${failed[*]}" >&2
    exit 1
fi
