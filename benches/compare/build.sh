# Sourced by run.sh and idle_mem.sh: builds the binaries in release and sets BIN.
#
# By default fastws comes from the working tree (`path = "../.."`). With
# FASTWS_REV=<commit> (e.g. HEAD), fastws is taken from that commit instead: the
# commit is exported once with `git archive` into target/fastws-at/<sha>/, this
# package is copied into it, and the build there shares this package's target
# directory. Measure a committed revision this way while the working tree is being
# edited.

build_bins() {
    local here target
    here=$(pwd)
    target="$here/target"
    if [[ -n "${FASTWS_REV:-}" ]]; then
        local sha snapshot
        sha=$(git -C ../.. rev-parse --verify "$FASTWS_REV^{commit}")
        snapshot="$target/fastws-at/$sha"
        if [[ ! -f "$snapshot/Cargo.toml" ]]; then
            mkdir -p "$snapshot"
            git -C ../.. archive "$sha" | tar -x -C "$snapshot"
            # Only the library is built: drop the explicit [[bench]]/[[test]]/[[example]]
            # entries, whose files a commit may lack while they are being written.
            awk '/^\[\[(bench|test|example)\]\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' \
                "$snapshot/Cargo.toml" >"$snapshot/Cargo.toml.lib" &&
                mv "$snapshot/Cargo.toml.lib" "$snapshot/Cargo.toml"
        fi
        mkdir -p "$snapshot/benches/compare"
        cp -a --update Cargo.toml Cargo.lock src "$snapshot/benches/compare/"
        (cd "$snapshot/benches/compare" &&
            CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --target-dir "$target")
        FASTWS_DESCRIBED="${sha:0:7} (FASTWS_REV=$FASTWS_REV)"
    else
        CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet
        FASTWS_DESCRIBED="$(git -C ../.. rev-parse --short HEAD 2>/dev/null || echo unknown)"
        git -C ../.. diff --quiet HEAD -- src Cargo.toml 2>/dev/null ||
            FASTWS_DESCRIBED="$FASTWS_DESCRIBED + uncommitted changes in src/ or Cargo.toml"
    fi
    BIN="$target/release"
}
