# Sourced by instructions.sh and client_instructions.sh: builds one binary for
# callgrind and prints a table of user-space instructions per message, counted on
# one thread of that binary.
#
# The caller sets PROFILE (release or lto), ERMS (on or off), SIZES, exports what
# the binary reads besides SIZE, WARMUP and MEASURED (CONNS, MODE), and defines
# `counts SIZE`, printing the warm-up and the two measured counts for that size.

# callgrind_setup SCRIPT BIN: checks for valgrind, builds BIN with PROFILE, and
# sets `target_dir`, `tunables` and `work` (removed on exit).
callgrind_setup() {
    script=$1
    bin=$2
    command -v valgrind >/dev/null || {
        echo "$script: needs valgrind (apt-get install valgrind)" >&2
        exit 1
    }
    case $PROFILE in
    release) target_dir=target ;;
    lto)
        target_dir=target/lto
        export CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
        ;;
    *)
        echo "$script: PROFILE is release or lto" >&2
        exit 2
        ;;
    esac
    CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --target-dir "$target_dir" --bin "$bin"
    tunables=()
    # Without ERMS glibc's memcpy copies with vector moves, one instruction per 32 bytes.
    [[ $ERMS == on ]] || tunables=(env GLIBC_TUNABLES=glibc.cpu.hwcaps=-ERMS)
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
}

# thread_instructions THREAD NAME SIZE WARMUP MEASURED: runs `bin NAME` under
# callgrind with --separate-threads and prints the total of thread THREAD (1 is
# the main thread). The binary must run exactly THREADS threads (default 2).
thread_instructions() {
    local out="$work/callgrind.$2.$3.$5"
    SIZE=$3 WARMUP=$4 MEASURED=$5 timeout 600 "${tunables[@]}" valgrind --tool=callgrind \
        --separate-threads=yes --callgrind-out-file="$out" "$target_dir/release/$bin" "$2" \
        >"$work/log" 2>&1 || {
        echo "$script: $2 failed:" >&2
        tail -5 "$work/log" >&2
        exit 1
    }
    local threads=${THREADS:-2}
    [[ -f "$out-0$threads" && ! -e "$out-0$((threads + 1))" ]] || {
        echo "$script: expected exactly $threads thread(s) for $2" >&2
        exit 1
    }
    awk '/^totals:/ { print $2 }' "$out-0$1"
}

# per_message_table LABEL THREAD NAME...: one row per NAME, one column per size in
# SIZES: the difference of two counts of thread THREAD divided by the difference
# in messages (per KiB from 64 KiB up), so start-up and warm-up cancel out.
per_message_table() {
    local label=$1 thread=$2 name size warmup few many short long per_message
    shift 2
    local header="| $label |" rule="|---|" row
    for size in $SIZES; do
        if ((size >= 64 << 10)); then
            header="$header $((size >> 10)) KiB, per KiB |"
        else
            header="$header $size B |"
        fi
        rule="$rule---:|"
    done
    echo "$header"
    echo "$rule"
    for name in "$@"; do
        row="| $name |"
        for size in $SIZES; do
            read -r warmup few many <<<"$(counts "$size")"
            short=$(thread_instructions "$thread" "$name" "$size" "$warmup" "$few")
            long=$(thread_instructions "$thread" "$name" "$size" "$warmup" "$many")
            per_message=$(((long - short) / (many - few)))
            if ((size >= 64 << 10)); then
                row="$row $((per_message * 1024 / size)) |"
            else
                row="$row $per_message |"
            fi
        done
        echo "$row"
    done
}
