# Shared setup of the node benchmarks (bench-pods.sh, bench-controllers.sh),
# sourced, not run: a `kone server` with its in-process node, alone in a
# fresh network namespace (as tests/common does), with the test image
# kone.test/busybox:1 in its airgap folder, and a cleanup that removes the
# pods (which outlive the server by design), the namespace and the mounts.
#
#   bench_node_init NAME   root check, KONE, WORK D R L K NS, cleanup trap
#   bench_node_start       image, namespace, server (SERVER_PID = kone itself)
#   alive, in_ns, cpu_ticks, log (prefixed with NAME)

bench_node_init() {
    BENCH_NAME=$1
    if [ "$(id -u)" != 0 ]; then
        echo "$BENCH_NAME: needs root (network namespace, pods)" >&2
        exit 2
    fi
    if [ -z "${KONE:-}" ]; then
        cargo build --release --bin kone >&2
        KONE=$PWD/target/release/kone
    fi
    WORK=$(mktemp -d "/tmp/kone-$BENCH_NAME.XXXXXX")
    D=$WORK/data
    R=$WORK/run
    L=$WORK/pod-logs
    K=$WORK/kubeconfig.yaml
    NS=kone-$BENCH_NAME-$$
    SERVER_PID=
    trap bench_node_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_node_cleanup() {
    set +e
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [ -d "$R/pods" ]; then
        ids=$(ls "$R/pods")
        # shellcheck disable=SC2086
        [ -n "$ids" ] && "$KONE" runtime --run-dir "$R" --data-dir "$D" rmp $ids >/dev/null 2>&1
        for pidfile in "$R"/pods/*/shim.pid; do
            [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null
        done
    fi
    ip netns del "$NS" 2>/dev/null
    # Whatever the runtime left mounted under the work dir, deepest first.
    grep -o " $WORK[^ ]*" /proc/self/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    rm -rf "$WORK"
}

log() { echo "$BENCH_NAME: $*" >&2; }
in_ns() { nsenter --net="/run/netns/$NS" "$@"; }

# The server must still be alive for any figure to mean something.
alive() {
    kill -0 "$SERVER_PID" 2>/dev/null || {
        log "kone server died; log tail:"
        tail -30 "$WORK/server.log" >&2
        exit 1
    }
}

# utime+stime of a process, in clock ticks (fields 14 and 15; the comm
# field may hold spaces, so count from the closing parenthesis).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# Image and namespace first (untimed); then BENCH_T0 just before the exec.
bench_node_start() {
    log "building the test image"
    mkdir -p "$D/agent/images" "$R" "$L"
    scripts/build-test-image.sh "$WORK/image" >/dev/null
    cp "$WORK/image/busybox-oci.tar" "$D/agent/images/"
    # A default route through a veth pair that lives entirely inside the
    # namespace (the node needs a default route for its address).
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip -n "$NS" link add eth0 type veth peer name eth0p
    ip -n "$NS" addr add 10.99.0.2/24 dev eth0
    ip -n "$NS" link set eth0 up
    ip -n "$NS" link set eth0p up
    ip -n "$NS" route add default via 10.99.0.1
    log "starting kone server"
    BENCH_T0=$(date +%s.%N)
    # nsenter (without --fork) execs kone: $! is the server's own pid (not
    # through in_ns: a backgrounded function would be a subshell).
    KONE_LOG=${KONE_LOG:-info} nsenter --net="/run/netns/$NS" "$KONE" server --data-dir "$D" --run-dir "$R" \
        --pod-log-dir "$L" --write-kubeconfig "$K" --node-name node1 \
        >/dev/null 2>"$WORK/server.log" &
    SERVER_PID=$!
}
