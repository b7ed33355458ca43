#!/usr/bin/env bash
# Controller benchmark (not a test): a `kone server` with its in-process
# node, alone in a fresh network namespace (as scripts/bench-pods.sh), with
# the test image kone.test/busybox:1 in its airgap folder. Measures:
#   1. a Deployment scaled 0 -> R replicas: seconds until all are Ready
#   2. a rolling update of those R replicas (an env change): seconds until
#      every replica is updated and available
#   3. idle CPU of the kone server over I seconds with D Deployments of
#      zero replicas (so the controllers count, not the pods)
# Scheduler throughput comes from scripts/bench-scheduler.sh (fake nodes,
# no agent). The last line is machine-readable:
#   sched_pods_per_s=… scale100_s=… rollout100_s=… idle_cpu_pct_100deploy=…
#
# Usage: scripts/bench-controllers.sh [-r REPLICAS] [-d DEPLOYMENTS] [-i IDLE_SECONDS]
#   -r REPLICAS      replicas of the scaled Deployment (default 100)
#   -d DEPLOYMENTS   Deployments for the idle measure (default 100)
#   -i IDLE_SECONDS  idle CPU window (default 30)
# Env: KONE=path to a kone binary (default: cargo build --release, then
#      target/release/kone).
# Needs root (network namespace, pods), kubectl, iproute2, nsenter.
set -euo pipefail
cd "$(dirname "$0")/.."

REPLICAS=100
DEPLOYS=100
IDLE=30
while [ $# -gt 0 ]; do
    case $1 in
    -r) REPLICAS=$2; shift 2 ;;
    -d) DEPLOYS=$2; shift 2 ;;
    -i) IDLE=$2; shift 2 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
. scripts/lib/bench-node.sh
bench_node_init bench-controllers

kc() { in_ns kubectl --kubeconfig "$K" "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }

# Polls a deployment's status until it prints WANT (timeout 600 s).
wait_status() { # NAME JSONPATH WANT
    local end=$(($(date +%s) + 600))
    until [ "$(kc get deploy "$1" -o "jsonpath=$2" 2>/dev/null)" = "$3" ]; do
        alive
        [ "$(date +%s)" -lt "$end" ] || { log "timed out waiting for $1 $2 = $3"; exit 1; }
        sleep 0.2
    done
}

bench_node_start
until [ -s "$K" ] && kc wait node/node1 --for=condition=Ready --timeout=5s >/dev/null 2>&1; do
    alive
    sleep 0.5
done
[ "$(readlink "/proc/$SERVER_PID/exe")" = "$(readlink -f "$KONE")" ] || {
    log "pid $SERVER_PID is not kone"
    exit 1
}

deployment() { # NAME REPLICAS
    kc apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: c, image: kone.test/busybox:1, command: [sleep, "3600"]}]
EOF
}

# 1. scale 0 -> R
deployment bench 0
wait_status bench '{.status.observedGeneration}' 1
log "scaling bench to $REPLICAS"
T=$(now)
kc scale deploy/bench --replicas="$REPLICAS" >/dev/null
wait_status bench '{.status.readyReplicas}' "$REPLICAS"
SCALE_S=$(since "$T")

# 2. rolling update
log "rolling update of $REPLICAS replicas"
T=$(now)
kc set env deploy/bench ROUND=2 >/dev/null
wait_status bench '{.status.updatedReplicas}/{.status.availableReplicas}/{.status.replicas}' \
    "$REPLICAS/$REPLICAS/$REPLICAS"
ROLLOUT_S=$(since "$T")
kc delete deploy/bench >/dev/null
until [ -z "$(kc get pods -o name)" ]; do alive; sleep 0.5; done

# 3. idle with D deployments
log "$DEPLOYS deployments, then ${IDLE}s of idle CPU"
for i in $(seq "$DEPLOYS"); do deployment "idle-$i" 0; done
sleep 5
HZ=$(getconf CLK_TCK)
C0=$(cpu_ticks "$SERVER_PID"); S0=$(now)
sleep "$IDLE"
C1=$(cpu_ticks "$SERVER_PID")
alive
IDLE_CPU=$(awk -v c="$((C1 - C0))" -v hz="$HZ" -v a="$S0" -v b="$(now)" \
    'BEGIN {printf "%.2f", 100 * c / hz / (b - a)}')

log "running scripts/bench-scheduler.sh"
SCHED=$(KONE=$KONE scripts/bench-scheduler.sh | tail -1 | grep -o 'sched_pods_per_s=[^ ]*' | cut -d= -f2 || echo na)

echo
printf '%-48s %10s  %s\n' "measure" "value" "target"
printf '%-48s %10s  %s\n' "Deployment 0 -> $REPLICAS replicas Ready (s)" "$SCALE_S" "<= 15"
printf '%-48s %10s  %s\n' "rolling update of $REPLICAS replicas (s)" "$ROLLOUT_S" ""
printf '%-48s %10s  %s\n' "kone CPU idle with $DEPLOYS Deployments (%)" "$IDLE_CPU" ""
printf '%-48s %10s  %s\n' "scheduler (pods bound/s)" "$SCHED" ">= 500"
echo "sched_pods_per_s=$SCHED scale100_s=$SCALE_S rollout100_s=$ROLLOUT_S idle_cpu_pct_100deploy=$IDLE_CPU"
