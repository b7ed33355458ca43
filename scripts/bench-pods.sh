#!/usr/bin/env bash
# Pod lifecycle benchmark (not a test): a `kone server` with its in-process
# node, alone in a fresh network namespace (as tests/common does), with the
# test image kone.test/busybox:1 in its airgap folder. Measures:
#   1. seconds from `kone server` start to node1 Ready
#   2. single-pod startup, create -> Ready, p50/p90/p99 over N pods created
#      one at a time (`sleep 3600`), then their bulk deletion
#   3. a burst of B pods created at once: seconds until all Running / Ready
#   4. VmRSS of the kone server with 0, 10 and B running pods; the pods'
#      supervisors (`kone shim`) counted apart, as total RSS and total PSS
#   5. idle CPU of the kone server over I seconds with 10 pods running
# Creates and readiness timestamps go through the official kubernetes
# Python client (scripts/bench-pods-client.py, one watch), so kubectl's
# start-up is never counted. The last line is machine-readable:
#   node_ready_s=… pod_p50_ms=… pod_p99_ms=… burst100_s=… rss_mb_10pods=… idle_cpu_pct=…
#
# Usage: scripts/bench-pods.sh [-n PODS] [-b BURST] [-i IDLE_SECONDS]
#   -n PODS          pods created one at a time (default 50)
#   -b BURST         pods created at once (default 100)
#   -i IDLE_SECONDS  idle CPU window (default 60)
# Env: KONE=path to a kone binary (default: cargo build --release, then
#      target/release/kone).
# Needs root (network namespace, pods), python3 with the `kubernetes`
# package (installed by .ci/run), iproute2, nsenter.
set -euo pipefail
cd "$(dirname "$0")/.."

PODS=50
BURST=100
IDLE=60
while [ $# -gt 0 ]; do
    case $1 in
    -n) PODS=$2; shift 2 ;;
    -b) BURST=$2; shift 2 ;;
    -i) IDLE=$2; shift 2 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
if ! python3 -c 'import kubernetes' 2>/dev/null; then
    echo "bench-pods: needs the python kubernetes client (pip install kubernetes)" >&2
    exit 2
fi
. scripts/lib/bench-node.sh
bench_node_init bench-pods
CLIENT=$PWD/scripts/bench-pods-client.py

client() { in_ns python3 "$CLIENT" "$K" "$@"; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# "RSS_KB PSS_KB COUNT" summed over our pods' supervisors.
shims_mem() {
    local rss=0 pss=0 n=0 pid r p
    for pidfile in "$R"/pods/*/shim.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        [ -r "/proc/$pid/status" ] || continue
        r=$(rss_kb "$pid")
        p=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
        rss=$((rss + ${r:-0})); pss=$((pss + ${p:-0})); n=$((n + 1))
    done
    echo "$rss $pss $n"
}

mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# 1. node Ready: the clock starts just before the server's exec; the
# poller's own start-up overlaps the server's.
# Build machines often have less than 10 % of their disk free: keep the
# node-pressure disk threshold and image GC from evicting the measured pods.
export KONE_EVICTION_HARD=${KONE_EVICTION_HARD:-memory.available<100Mi}
export KONE_IMAGE_GC_HIGH_THRESHOLD=${KONE_IMAGE_GC_HIGH_THRESHOLD:-100}
bench_node_start
T0=$BENCH_T0
READY_AT=$(client node-ready node1)
[ "$(readlink "/proc/$SERVER_PID/exe")" = "$(readlink -f "$KONE")" ] || {
    log "pid $SERVER_PID is not kone"
    exit 1
}
NODE_READY_S=$(awk -v a="$T0" -v b="$READY_AT" 'BEGIN {printf "%.2f", b - a}')
alive
sleep 2 # let start-up work (image import, first syncs) settle
RSS0=$(rss_kb "$SERVER_PID")

# 2. one at a time
log "creating $PODS pods one at a time"
OUT=$(client single "$PODS" single)
read -r P50 P90 P99 PMAX PFIRST <<<"$(sed 's/[a-z0-9]*=//g' <<<"$OUT")"
alive
DEL_SINGLE=$(client delete single)

# 4/5. ten pods: memory and idle CPU
log "10 pods: memory, then ${IDLE}s of idle CPU"
client create 10 steady
sleep 2
RSS10=$(rss_kb "$SERVER_PID")
read -r SHIM10_RSS SHIM10_PSS SHIM10_N < <(shims_mem)
HZ=$(getconf CLK_TCK)
C0=$(cpu_ticks "$SERVER_PID"); S0=$(date +%s.%N)
sleep "$IDLE"
C1=$(cpu_ticks "$SERVER_PID"); S1=$(date +%s.%N)
alive
IDLE_CPU=$(awk -v c="$((C1 - C0))" -v hz="$HZ" -v a="$S0" -v b="$S1" \
    'BEGIN {printf "%.2f", 100 * c / hz / (b - a)}')
client delete steady >/dev/null

# 3. burst
log "creating $BURST pods at once"
OUT=$(client burst "$BURST" burst)
read -r BCREATED BRUNNING BREADY <<<"$(sed 's/[a-z]*=//g' <<<"$OUT")"
alive
sleep 2
RSSB=$(rss_kb "$SERVER_PID")
read -r SHIMB_RSS SHIMB_PSS SHIMB_N < <(shims_mem)
DEL_BURST=$(client delete burst)
alive
BURST_PPS=$(awk -v n="$BURST" -v s="$BRUNNING" 'BEGIN {printf "%.1f", n / s}')

verdict() { # VALUE TARGET: "ok" when VALUE <= TARGET
    awk -v v="$1" -v t="$2" 'BEGIN {print (v + 0 <= t + 0) ? "ok" : "MISS"}'
}

echo
printf '%-44s %12s  %-10s %s\n' "measure" "value" "target" ""
printf '%-44s %12s  %-10s %s\n' "node Ready after server start (s)" "$NODE_READY_S" "<= 2" "$(verdict "$NODE_READY_S" 2)"
printf '%-44s %12s  %-10s %s\n' "pod start p50, one at a time (ms, n=$PODS)" "$P50" "<= 150" "$(verdict "$P50" 150)"
printf '%-44s %12s  %-10s %s\n' "pod start p90 (ms)" "$P90" "" ""
printf '%-44s %12s  %-10s %s\n' "pod start p99 (ms)" "$P99" "<= 500" "$(verdict "$P99" 500)"
printf '%-44s %12s  %-10s %s\n' "pod start max / first pod (ms)" "$PMAX / $PFIRST" "" ""
printf '%-44s %12s  %-10s %s\n' "delete $PODS pods, grace 0, until gone (s)" "$DEL_SINGLE" "" ""
printf '%-44s %12s  %-10s %s\n' "burst $BURST: creates sent (s)" "$BCREATED" "" ""
printf '%-44s %12s  %-10s %s\n' "burst $BURST: all Running (s)" "$BRUNNING" "<= 10" "$(verdict "$BRUNNING" 10)"
printf '%-44s %12s  %-10s %s\n' "burst $BURST: all Ready (s)" "$BREADY" "" ""
printf '%-44s %12s  %-10s %s\n' "burst $BURST: pods/s to Running" "$BURST_PPS" "" ""
printf '%-44s %12s  %-10s %s\n' "delete $BURST pods, grace 0, until gone (s)" "$DEL_BURST" "" ""
printf '%-44s %12s  %-10s %s\n' "kone RSS, 0 pods (MB)" "$(mb "$RSS0")" "" ""
printf '%-44s %12s  %-10s %s\n' "kone RSS, 10 pods (MB)" "$(mb "$RSS10")" "<= 60" "$(verdict "$(mb "$RSS10")" 60)"
printf '%-44s %12s  %-10s %s\n' "kone RSS, $BURST pods (MB)" "$(mb "$RSSB")" "" ""
printf '%-44s %12s  %-10s %s\n' "supervisors, 10 pods: RSS / PSS total (MB)" "$(mb "$SHIM10_RSS") / $(mb "$SHIM10_PSS")" "" "($SHIM10_N shims)"
printf '%-44s %12s  %-10s %s\n' "supervisors, $BURST pods: RSS / PSS total (MB)" "$(mb "$SHIMB_RSS") / $(mb "$SHIMB_PSS")" "" "($SHIMB_N shims)"
printf '%-44s %12s  %-10s %s\n' "kone idle CPU, 10 pods, ${IDLE}s (% of a core)" "$IDLE_CPU" "<= 1" "$(verdict "$IDLE_CPU" 1)"
echo
echo "node_ready_s=$NODE_READY_S pod_p50_ms=$P50 pod_p99_ms=$P99 burst100_s=$BRUNNING rss_mb_10pods=$(mb "$RSS10") idle_cpu_pct=$IDLE_CPU"
