#!/usr/bin/env bash
# Scheduler benchmark (not a test): a scheduling-only `kone server
# --disable-agent` with NODES fake Node objects (4 cpu, 16Gi, 110 pods
# allocatable each) and PODS pending pods (100m cpu, 64Mi each), created
# while the scheduler is stopped (its Lease held by the bench); the clock
# runs from kone taking the Lease back until every pod is bound. The last
# line is machine-readable:
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

# The scheduler runs only while kone holds the kube-scheduler Lease. The
# bench takes the Lease away, creates the nodes and pods with no scheduler
# running, then frees the Lease: the clock runs from the moment kone takes
# it back (the Lease's acquireTime) until every pod is bound, so it times
# the scheduler alone, with every node and pod in place (upstream's
# scheduler_perf measures the same way), not kubectl's create calls.
lease_json() {
    python3 - "$1" <<'PY'
import datetime, json, sys
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
print(json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                  "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
                  "spec": {"holderIdentity": sys.argv[1], "leaseDurationSeconds": 3600,
                           "acquireTime": now, "renewTime": now}}))
PY
}
for _ in $(seq 100); do
    kc -n kube-system get lease kube-scheduler >/dev/null 2>&1 && break
    sleep 0.1
done
log "taking the kube-scheduler Lease from kone"
lease_json bench-holder | kc replace --force -f - >/dev/null
# kone's elector notices at its next renewal (every 2 s) and stops its
# scheduler.
sleep 3

log "creating $NODES nodes and $PODS pods with no scheduler running"
T=$(now)
kc create -f "$WORK/nodes.json" >/dev/null
kc create -f "$WORK/pods.json" >/dev/null
CREATE_S=$(echo "$(now) - $T" | bc)
[ "$(unbound)" -eq "$PODS" ] || { log "pods were bound while the Lease was held elsewhere"; exit 1; }

log "freeing the Lease; timing until all $PODS pods are bound"
kc -n kube-system delete lease kube-scheduler >/dev/null
while [ "$(unbound)" -gt 0 ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || { log "server died"; tail -30 "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
T1=$(now)
ACQUIRED=$(kc -n kube-system get lease kube-scheduler -o jsonpath='{.spec.acquireTime}')
T0=$(date -d "$ACQUIRED" +%s.%N)
BOUND_S=$(echo "$T1 - $T0" | bc)
RATE=$(echo "scale=1; $PODS / $BOUND_S" | bc)
PER_NODE=$(kc get pods -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort | uniq -c | awk 'NR==1{min=$1;max=$1} {if($1<min)min=$1; if($1>max)max=$1} END{print min"-"max}')

printf '%-34s %s\n' "measure" "value"
printf '%-34s %s\n' "nodes" "$NODES"
printf '%-34s %s\n' "pods" "$PODS"
printf '%-34s %.2f s\n' "create nodes+pods (kubectl, untimed)" "$CREATE_S"
printf '%-34s %.2f s\n' "Lease taken -> all pods bound" "$BOUND_S"
printf '%-34s %s\n' "pods per node (min-max)" "$PER_NODE"
echo "sched_pods_per_s=$RATE"
