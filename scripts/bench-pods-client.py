#!/usr/bin/env python3
"""API-side half of scripts/bench-pods.sh: creates pods and times them with
the official kubernetes client, in-process, so kubectl's own start-up is
never part of a figure. Readiness is timestamped by one watch, opened before
the first create.

Usage: bench-pods-client.py KUBECONFIG COMMAND ARGS
  node-ready NODE            wait (polling every 50 ms) until NODE is Ready;
                             print the wall-clock epoch of that moment
  single N LABEL             create N pods one at a time, each after the last
                             is Ready; print p50/p90/p99/max latency in ms
  burst N LABEL              create N pods at once; print the seconds until
                             all are Running and until all are Ready
  create N LABEL             create N pods at once and wait until all Ready
  delete LABEL               delete the pods (grace 0); print the seconds
                             until the API lists none
"""
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config, watch

NS = "default"
NODE = "node1"
TIMEOUT = 300


def pod(name, label):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": label}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "c",
                    "image": "kone.test/busybox:1",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


def is_ready(p):
    for c in (p.status and p.status.conditions) or []:
        if c.type == "Ready" and c.status == "True":
            return True
    return False


class Tracker:
    """One watch on the label's pods: the first moment each one is seen
    Running, and the first moment it is seen Ready (time.monotonic())."""

    def __init__(self, v1, label):
        self.v1 = v1
        self.selector = f"bench={label}"
        self.running = {}
        self.ready = {}
        self.cond = threading.Condition()
        rv = v1.list_namespaced_pod(NS, label_selector=self.selector).metadata.resource_version
        self.watch = watch.Watch()
        threading.Thread(target=self._run, args=(rv,), daemon=True).start()

    def _run(self, rv):
        while True:
            try:
                for ev in self.watch.stream(
                    self.v1.list_namespaced_pod,
                    NS,
                    label_selector=self.selector,
                    resource_version=rv,
                    timeout_seconds=TIMEOUT,
                ):
                    now = time.monotonic()
                    p = ev["object"]
                    rv = p.metadata.resource_version
                    name = p.metadata.name
                    with self.cond:
                        if p.status and p.status.phase == "Running":
                            self.running.setdefault(name, now)
                        if is_ready(p):
                            self.ready.setdefault(name, now)
                        self.cond.notify_all()
            except Exception as e:  # a dropped watch: resume from the last version
                print(f"bench-pods-client: watch restarted: {e}", file=sys.stderr)
                time.sleep(0.05)

    def wait(self, pred, what):
        with self.cond:
            if not self.cond.wait_for(pred, timeout=TIMEOUT):
                sys.exit(f"bench-pods-client: timed out waiting for {what}")


def pct(sorted_ms, p):
    # nearest-rank percentile
    k = max(0, min(len(sorted_ms) - 1, int(round(p / 100 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[k]


def single(v1, n, label):
    t = Tracker(v1, label)
    lat = []
    for i in range(n):
        name = f"{label}-{i}"
        t0 = time.monotonic()
        v1.create_namespaced_pod(NS, pod(name, label))
        t.wait(lambda: name in t.ready, f"{name} Ready")
        lat.append((t.ready[name] - t0) * 1000)
    s = sorted(lat)
    print(f"p50={pct(s, 50):.1f} p90={pct(s, 90):.1f} p99={pct(s, 99):.1f} "
          f"max={s[-1]:.1f} first={lat[0]:.1f}")


def create_at_once(v1, n, label):
    t = Tracker(v1, label)
    names = [f"{label}-{i}" for i in range(n)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as ex:
        list(ex.map(lambda nm: v1.create_namespaced_pod(NS, pod(nm, label)), names))
    created = time.monotonic() - t0
    t.wait(lambda: all(nm in t.running for nm in names), "all Running")
    running = max(t.running[nm] for nm in names) - t0
    t.wait(lambda: all(nm in t.ready for nm in names), "all Ready")
    ready = max(t.ready[nm] for nm in names) - t0
    return created, running, ready


def delete(v1, label):
    sel = f"bench={label}"
    t0 = time.monotonic()
    names = [p.metadata.name for p in v1.list_namespaced_pod(NS, label_selector=sel).items]
    body = client.V1DeleteOptions(grace_period_seconds=0)
    # Raw responses: kone answers an immediate pod delete with a Status,
    # which this client cannot read as the V1Pod it expects.
    with ThreadPoolExecutor(max_workers=16) as ex:
        list(ex.map(lambda nm: v1.delete_namespaced_pod(
            nm, NS, body=body, _preload_content=False).release_conn(), names))
    while v1.list_namespaced_pod(NS, label_selector=sel).items:
        if time.monotonic() - t0 > TIMEOUT:
            sys.exit("bench-pods-client: pods not gone")
        time.sleep(0.05)
    print(f"{time.monotonic() - t0:.2f}")


def node_ready(kubeconfig, node):
    deadline = time.monotonic() + TIMEOUT
    v1 = None
    while time.monotonic() < deadline:
        try:
            if v1 is None:
                config.load_kube_config(kubeconfig)
                v1 = client.CoreV1Api()
            n = v1.read_node(node, _request_timeout=2)
            for c in (n.status and n.status.conditions) or []:
                if c.type == "Ready" and c.status == "True":
                    print(f"{time.time():.3f}")
                    return
        except Exception:
            pass  # kubeconfig not written yet, API not up, node not registered
        time.sleep(0.05)
    sys.exit("bench-pods-client: node never Ready")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    kubeconfig, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "node-ready":
        return node_ready(kubeconfig, args[0])
    config.load_kube_config(kubeconfig)
    v1 = client.CoreV1Api()
    if cmd == "single":
        single(v1, int(args[0]), args[1])
    elif cmd == "burst":
        created, running, ready = create_at_once(v1, int(args[0]), args[1])
        print(f"created={created:.2f} running={running:.2f} ready={ready:.2f}")
    elif cmd == "create":
        create_at_once(v1, int(args[0]), args[1])
    elif cmd == "delete":
        delete(v1, args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
