# Shared by run.sh (memory at rest) and cpu.sh (CPU per message): installs the peers,
# builds the servers and the load generators, and names each server's command line.
# Sourced with `here` (this folder) and `root` (the repository) set.

# --- install and build --------------------------------------------------------------
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/gorilla/websocket ]; then
    echo "deflate_compare: installing golang-go and golang-github-gorilla-websocket-dev" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-gorilla-websocket-dev >&2
fi
[ -d node/node_modules/ws ] || (cd node && npm ci --no-audit --no-fund >&2)
if [ ! -x target/venv/bin/python ]; then
    python3 -m venv target/venv
    target/venv/bin/pip install -q -r python/requirements.txt >&2
fi
(cd "$root" && nice -n 10 cargo build -q --release --example echo_server)
nice -n 10 cargo build -q --release
mkdir -p target/bin
(cd go && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$here/target/gocache" \
    nice -n 10 go build -o ../target/bin/gorilla_echo echo_server.go)

# The control: fastws as it was when issue 19 was filed (eeaa8f2: zlib contexts made
# at the handshake and kept), built from a worktree beside this one.
OLD_COMMIT=${OLD_COMMIT:-eeaa8f2}
build_old_fastws() {
    local tree=$here/target/fastws_old
    if [ ! -d "$tree" ]; then
        git -C "$root" worktree add -q --detach "$tree" "$OLD_COMMIT" >&2
    fi
    # A checkout of its own, not a member of this benchmark's workspace.
    grep -q '^\[workspace\]' "$tree/Cargo.toml" || printf '\n[workspace]\n' >>"$tree/Cargo.toml"
    (cd "$tree" && CARGO_TARGET_DIR=$here/target/fastws_old_target nice -n 10 cargo build -q --release --example echo_server)
}

server_cmd() { # name addr
    case $1 in
    fastws) echo "$root/target/release/examples/echo_server $2" ;;
    fastws_old) echo "$here/target/fastws_old_target/release/examples/echo_server $2" ;;
    ws) echo "node node/echo_server.js $2 default" ;;
    ws_frugal) echo "node node/echo_server.js $2 frugal" ;;
    websockets) echo "target/venv/bin/python python/echo_server.py $2 default" ;;
    websockets_frugal) echo "target/venv/bin/python python/echo_server.py $2 frugal" ;;
    gorilla) echo "target/bin/gorilla_echo $2 default" ;;
    gorilla_frugal) echo "target/bin/gorilla_echo $2 frugal" ;;
    *) echo "deflate_compare: unknown server $1" >&2; exit 2 ;;
    esac
}

# Processes to stop when a cell ends (and on exit).
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}

# start_server NAME PORT LOG: starts it on core 0, waits until it listens; sets server_pid.
start_server() {
    # shellcheck disable=SC2046 # the command is words on purpose
    taskset -c 0 $(server_cmd "$1" "127.0.0.1:$2") >"$3" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 100); do
        ss -Hltn "sport = :$2" | grep -q . && break
        sleep 0.1
    done
    sleep 0.5
}
