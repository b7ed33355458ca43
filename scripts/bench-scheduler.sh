#!/usr/bin/env bash
# Scheduler benchmark (not a test): a scheduling-only `kone server
# --disable-agent` with NODES fake Node objects (4 cpu, 16Gi, 110 pods
# allocatable each) and PODS pending pods (100m cpu, 64Mi each). The pods
# are created first, while there is no node, so they wait in the queue;
# then the nodes are created in one go and the clock runs until every pod
# is bound. The last line is machine-readable:
#   sched_pods_per_s=…
#
# Usage: scripts/bench-scheduler.sh [-n NODES] [-p PODS]
# Env: KONE=path to a kone binary (default: cargo build --release, then
#      target/release/kone).
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=100
PODS=1000
while [ $# -gt 0 ]; do
    case $1 in
    -n) NODES=$2; shift 2 ;;
    -p) PODS=$2; shift 2 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
if [ -z "${KONE:-}" ]; then
    cargo build --release --bin kone >&2
    KONE=$PWD/target/release/kone
fi

WORK=$(mktemp -d /tmp/kone-bench-sched.XXXXXX)
K=$WORK/kubeconfig.yaml
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SERVER_PID=
cleanup() {
    set +e
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "bench-scheduler: $*" >&2; }
kc() { kubectl --kubeconfig "$K" "$@"; }
now() { date +%s.%N; }
unbound() { kc get pods --field-selector spec.nodeName= -o name | wc -l; }

log "starting kone server --disable-agent on :$PORT"
"$KONE" server --disable-agent --data-dir "$WORK/data" --https-listen-port "$PORT" \
    --write-kubeconfig "$K" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
    [ -f "$K" ] && kc get --raw /readyz >/dev/null 2>&1 && break
    sleep 0.1
done
kc get --raw /readyz >/dev/null

python3 - "$PODS" >"$WORK/pods.json" <<'PY'
import json, sys
n = int(sys.argv[1])
items = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "default"},
          "spec": {"containers": [{"name": "c", "image": "kone.test/busybox:1",
                   "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}} for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
python3 - "$NODES" >"$WORK/nodes.json" <<'PY'
import json, sys
n = int(sys.argv[1])
res = {"cpu": "4", "memory": "16Gi", "pods": "110"}
items = [{"apiVersion": "v1", "kind": "Node",
          "metadata": {"name": f"fake-{i}", "labels": {"kubernetes.io/hostname": f"fake-{i}"}},
          "status": {"capacity": res, "allocatable": res,
                     "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}
         for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY

log "creating $PODS pods (no nodes yet)"
T=$(now)
kc create -f "$WORK/pods.json" >/dev/null
CREATE_PODS=$(echo "$(now) - $T" | bc)
# Let the first (failed) tries settle before the clock starts: every pod
# marked PodScheduled=False, so their events and status writes are done.
unscheduled() {
    kc get pods -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="PodScheduled")].status}{"\n"}{end}' |
        grep -c False || true
}
for _ in $(seq 600); do
    [ "$(unscheduled)" -ge "$PODS" ] && break
    sleep 0.5
done
sleep 1

log "creating $NODES nodes; timing until all $PODS pods are bound"
T0=$(now)
kc create -f "$WORK/nodes.json" >/dev/null
T_NODES=$(now)
while [ "$(unbound)" -gt 0 ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || { log "server died"; tail -30 "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
T1=$(now)
BOUND_S=$(echo "$T1 - $T0" | bc)
NODES_S=$(echo "$T_NODES - $T0" | bc)
RATE=$(echo "scale=1; $PODS / $BOUND_S" | bc)
PER_NODE=$(kc get pods -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort | uniq -c | awk 'NR==1{min=$1;max=$1} {if($1<min)min=$1; if($1>max)max=$1} END{print min"-"max}')

printf '%-34s %s\n' "measure" "value"
printf '%-34s %s\n' "nodes" "$NODES"
printf '%-34s %s\n' "pods" "$PODS"
printf '%-34s %.2f s\n' "create pods (kubectl, untimed)" "$CREATE_PODS"
printf '%-34s %.2f s\n' "create nodes (inside the window)" "$NODES_S"
printf '%-34s %.2f s\n' "first node created -> all bound" "$BOUND_S"
printf '%-34s %s\n' "pods per node (min-max)" "$PER_NODE"
echo "sched_pods_per_s=$RATE"
