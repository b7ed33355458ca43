#!/usr/bin/env bash
# Container runtime benchmark (not a test). In one run, on the same image
# (kone.test/busybox:1 from scripts/build-test-image.sh) and the same rootfs:
#   1. create+start+wait+delete of /bin/true: kone's runtime path (a new pod
#      sandbox and its supervisor, `kone runtime run --rm`), runc run and
#      crun run on one bundle, interleaved per iteration (paired); plus the
#      same kone cycle inside an existing pod (supervisor already running)
#   2. import of a ~100 MB docker-archive image (busybox + a random layer)
#   3. 100 containers started concurrently, each in its own pod, until all
#      run per `kone runtime ps`; then the time to remove those pods
#   4. supervisor memory with 10 pods running `sleep`: VmRSS, PSS and USS,
#      just started and settled (supervisor_rss_mb is the settled VmRSS)
# The last line is machine-readable:
#   ratio_vs_crun=X ratio_vs_runc=Y supervisor_rss_mb=Z
# (ratios: kone's median / the peer's median over the same iterations;
# "NA" when that runtime could not run, with the reason above the line).
#
# Usage: scripts/bench-runtime.sh [-n RUNS] [-c CONCURRENT] [-p PODS] [--quick]
#   -n RUNS        iterations of the cycle benchmark (default 50)
#   -c CONCURRENT  containers started at once (default 100)
#   -p PODS        pods for the memory figure (default 10)
#   --quick        -n 10 -c 20 and a 20 MB image (smoke run)
# Env: KONE=path to a kone binary (default: cargo build --release, then
#      target/release/kone); BENCH_IMAGE_MB (default 100).
# Needs root, runc, python3, static busybox; crun optional. On a hybrid
# cgroup host crun 1.8 wants a v1 hugetlb hierarchy: the script mounts one
# for the run when missing, and unmounts it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=50
CONCURRENT=100
PODS=10
IMAGE_MB=${BENCH_IMAGE_MB:-100}
while [ $# -gt 0 ]; do
    case $1 in
    -n) RUNS=$2; shift 2 ;;
    -c) CONCURRENT=$2; shift 2 ;;
    -p) PODS=$2; shift 2 ;;
    --quick) RUNS=10; CONCURRENT=20; IMAGE_MB=${BENCH_IMAGE_MB:-20}; shift ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then
    echo "bench-runtime: needs root (namespaces, mounts, cgroups)" >&2
    exit 2
fi
if [ -z "${KONE:-}" ]; then
    cargo build --release --bin kone >&2
    KONE=$PWD/target/release/kone
fi

WORK=$(mktemp -d /tmp/kone-bench.XXXXXX)
D=$WORK/data
R=$WORK/run
L=$WORK/logs
BUNDLE=$WORK/bundle
HUGETLB_MOUNTED=
IMAGE=kone.test/busybox:1

kone_rt() { "$KONE" runtime --data-dir "$D" --run-dir "$R" "$@"; }

cleanup() {
    set +e
    if [ -d "$R/pods" ]; then
        for dir in "$R"/pods/*/; do
            [ -d "$dir" ] || continue
            kone_rt rmp "$(basename "$dir")" >/dev/null 2>&1
        done
        # A supervisor that did not answer: ours (its pid file is in our run dir).
        for pidfile in "$R"/pods/*/shim.pid; do
            [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null
        done
    fi
    for rt in runc crun; do
        [ -d "$WORK/$rt-root" ] || continue
        for id in $("$rt" --root "$WORK/$rt-root" list -q 2>/dev/null); do
            "$rt" --root "$WORK/$rt-root" delete -f "$id" >/dev/null 2>&1
        done
    done
    # Whatever is still mounted under the work dir, deepest first.
    awk -v w="$WORK" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m"; done
    if [ -n "$HUGETLB_MOUNTED" ]; then
        umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "bench-runtime: $*" >&2; }

# Microseconds from bash's EPOCHREALTIME (no fork for the clock).
usec() { local s=${1//[.,]/}; echo $((10#$s)); }
# Elapsed microseconds of a command; its output is discarded, its failure
# is fatal.
timed_us() {
    local t0 t1
    t0=$EPOCHREALTIME
    if ! "$@" </dev/null >/dev/null 2>"$WORK/last.err"; then
        say "failed: $*"
        cat "$WORK/last.err" >&2
        return 1
    fi
    t1=$EPOCHREALTIME
    echo $(($(usec "$t1") - $(usec "$t0")))
}

# ---------------------------------------------------------------- setup
mkdir -p "$D" "$R" "$L" "$WORK/img" "$BUNDLE"
# The run dir on a tmpfs, as /run is on most hosts (state records are
# written with fsync; on a disk that is a cost no real node pays).
mount -t tmpfs -o mode=0711 kone-bench-run "$R"
say "building and importing $IMAGE"
scripts/build-test-image.sh "$WORK/img" >/dev/null
timed_us "$KONE" images --data-dir "$D" import "$WORK/img/busybox-docker.tar" >/dev/null

# One bundle for runc and crun: `runc spec` defaults, /bin/true, and a copy of
# the image's unpacked snapshot as rootfs.
snap=$(ls -d "$D"/agent/snapshots/*/fs | head -n1)
cp -a "$snap" "$BUNDLE/rootfs"
(cd "$BUNDLE" && runc spec)
python3 - "$BUNDLE/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/true"]
spec["process"]["env"] = ["PATH=/bin"]
spec["root"] = {"path": "rootfs", "readonly": True}
json.dump(spec, open(path, "w"), indent=2)
PY

CRUN_OK=
CRUN_WHY="crun not installed"
if command -v crun >/dev/null; then
    if [ ! -e /sys/fs/cgroup/hugetlb ] && [ -d /sys/fs/cgroup/unified ]; then
        if mkdir -p /sys/fs/cgroup/hugetlb &&
            mount -t cgroup -o hugetlb none /sys/fs/cgroup/hugetlb; then
            HUGETLB_MOUNTED=1
        else
            rmdir /sys/fs/cgroup/hugetlb 2>/dev/null || true
        fi
    fi
    if crun --root "$WORK/crun-root" run --bundle "$BUNDLE" bench-probe \
        </dev/null >/dev/null 2>"$WORK/crun.err"; then
        CRUN_OK=1
    else
        CRUN_WHY="crun run failed: $(tr '\n' ' ' <"$WORK/crun.err")"
        say "$CRUN_WHY"
    fi
fi
runc --root "$WORK/runc-root" run --bundle "$BUNDLE" bench-probe </dev/null >/dev/null

kone_cycle() {
    kone_rt run --rm --log-dir "$L" "$IMAGE" /bin/true
}

# ------------------------------------------------- 1. the /bin/true cycle
say "cycle: $RUNS iterations of kone / runc / crun, interleaved"
# Warm-up (page cache, first cgroup creation), not counted.
kone_cycle >/dev/null
: >"$WORK/t.kone"; : >"$WORK/t.runc"; : >"$WORK/t.crun"; : >"$WORK/t.inpod"
for i in $(seq 1 "$RUNS"); do
    # Rotate the order so that no runtime always runs first (or last).
    order=(kone runc crun)
    r=$((i % 3))
    order=("${order[@]:r}" "${order[@]:0:r}")
    for rt in "${order[@]}"; do
        case $rt in
        kone) timed_us kone_cycle >>"$WORK/t.kone" ;;
        runc) timed_us runc --root "$WORK/runc-root" run --bundle "$BUNDLE" \
            "bench-runc-$i" >>"$WORK/t.runc" ;;
        crun)
            if [ -n "$CRUN_OK" ]; then
                timed_us crun --root "$WORK/crun-root" run --bundle "$BUNDLE" \
                    "bench-crun-$i" >>"$WORK/t.crun"
            fi
            ;;
        esac
    done
done

# The kone cycle inside a pod whose supervisor already runs: what is left of
# it without spawning a supervisor and creating the pod's namespaces.
kone_rt run -d --name holder --log-dir "$L" "$IMAGE" sleep 3600 >/dev/null
POD=$(basename "$(ls -d "$R"/pods/*/)")
for i in $(seq 1 "$RUNS"); do
    timed_us kone_rt run --rm --pod "$POD" --log-dir "$L" "$IMAGE" /bin/true \
        >>"$WORK/t.inpod"
done
kone_rt rmp "$POD" >/dev/null

# ------------------------------------------------------ 2. a big import
say "import of a ${IMAGE_MB} MB image"
python3 - "$WORK/img/busybox-docker.tar" "$WORK/img/big.tar" "$IMAGE_MB" <<'PY'
import hashlib, io, json, os, sys, tarfile

src, dst, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
with tarfile.open(src) as t:
    manifest = json.load(t.extractfile("manifest.json"))[0]
    config = json.load(t.extractfile(manifest["Config"]))
    base_layer = t.extractfile(manifest["Layers"][0]).read()

# The random layer: one file of MB MiB, written to disk, hashed as it goes.
layer_path = dst + ".layer"
h = hashlib.sha256()
with open(layer_path, "wb") as f:
    with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo("random.bin")
        ti.size = mb << 20
        ti.mode = 0o644
        ti.mtime = 1704067200
        class Random(io.RawIOBase):
            left = ti.size
            def readable(self):
                return True
            def readinto(self, b):
                n = min(len(b), self.left, 1 << 20)
                b[:n] = os.urandom(n)
                self.left -= n
                return n
        tf.addfile(ti, io.BufferedReader(Random(), 1 << 20))
with open(layer_path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
big_id = h.hexdigest()
base_id = hashlib.sha256(base_layer).hexdigest()
config["rootfs"]["diff_ids"] = ["sha256:" + base_id, "sha256:" + big_id]
config["history"].append({"created": config["created"], "created_by": "bench-runtime"})
config_raw = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
config_name = hashlib.sha256(config_raw).hexdigest() + ".json"
name = "kone.test/big:1"

def add(tf, path, data):
    ti = tarfile.TarInfo(path)
    ti.size = len(data)
    ti.mtime = 1704067200
    tf.addfile(ti, io.BytesIO(data))

with tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as tf:
    add(tf, base_id + "/layer.tar", base_layer)
    tf.add(layer_path, big_id + "/layer.tar")
    add(tf, config_name, config_raw)
    add(tf, "manifest.json", json.dumps([{
        "Config": config_name,
        "RepoTags": [name],
        "Layers": [base_id + "/layer.tar", big_id + "/layer.tar"],
    }]).encode())
os.remove(layer_path)
PY
BIG_BYTES=$(stat -c %s "$WORK/img/big.tar")
sync
IMPORT_US=$(timed_us "$KONE" images --data-dir "$D" import "$WORK/img/big.tar")
rm -f "$WORK/img/big.tar"
"$KONE" images --data-dir "$D" rm kone.test/big:1 >/dev/null 2>&1
"$KONE" images --data-dir "$D" gc >/dev/null 2>&1

# -------------------------------------------- 3. concurrent container starts
say "$CONCURRENT containers started concurrently"
t0=$EPOCHREALTIME
pids=()
for i in $(seq 1 "$CONCURRENT"); do
    kone_rt run -d --name "c$i" --log-dir "$L" "$IMAGE" sleep 3600 \
        >/dev/null 2>"$WORK/conc-$i.err" &
    pids+=($!)
done
failed=0
for p in "${pids[@]}"; do
    wait "$p" || failed=$((failed + 1))
done
if [ "$failed" -gt 0 ]; then
    say "$failed of $CONCURRENT concurrent runs failed, e.g.:"
    cat "$WORK"/conc-*.err | sort | uniq -c | sort -rn | head -n3 >&2
    exit 1
fi
until [ "$(kone_rt ps -q | wc -l)" -ge "$CONCURRENT" ]; do sleep 0.01; done
t1=$EPOCHREALTIME
CONC_MS=$((($(usec "$t1") - $(usec "$t0")) / 1000))
t0=$EPOCHREALTIME
# shellcheck disable=SC2046 # one argument per pod id
kone_rt rmp $(ls "$R/pods") >/dev/null
t1=$EPOCHREALTIME
CONC_RM_MS=$((($(usec "$t1") - $(usec "$t0")) / 1000))
if [ -n "$(ls "$R/pods")" ]; then
    say "pods left after rmp: $(ls "$R/pods" | tr '\n' ' ')"
    exit 1
fi

# ------------------------------------------------------ 4. supervisor memory
say "supervisor memory with $PODS pods running sleep"
for i in $(seq 1 "$PODS"); do
    kone_rt run -d --name "m$i" --log-dir "$L" "$IMAGE" sleep 3600 >/dev/null
done
measure_supervisors() {
    : >"$1"
    for pidfile in "$R"/pods/*/shim.pid; do
        pid=$(cat "$pidfile")
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
        # PSS splits shared pages among their users; USS is what only this
        # supervisor holds (what its exit would give back).
        read -r pss uss < <(awk '/^Pss:/ { p = $2 } /^Private_(Clean|Dirty):/ { u += $2 }
            END { print p, u }' "/proc/$pid/smaps_rollup")
        echo "$rss $pss $uss" >>"$1"
    done
}
measure_supervisors "$WORK/mem.start"
# A supervisor quiet for 2 s unmaps the shared code pages it touched while
# starting containers (src/runtime/shim/idle.rs): the settled figure is what
# a running pod costs for its life, the first one its peak.
sleep 3
measure_supervisors "$WORK/mem"
# shellcheck disable=SC2046 # one argument per pod id
kone_rt rmp $(ls "$R/pods") >/dev/null

# ------------------------------------------------------------------ report
python3 - "$WORK" "$RUNS" "${CRUN_OK:-}" "$CRUN_WHY" "$((IMPORT_US / 1000))" "$BIG_BYTES" \
    "$CONCURRENT" "$CONC_MS" "$CONC_RM_MS" "$PODS" <<'PY'
import statistics, sys

work, runs, crun_ok, crun_why, import_ms, big_bytes, conc, conc_ms, conc_rm_ms, pods = sys.argv[1:]

def load(name):
    try:
        return [int(l) / 1000 for l in open(f"{work}/t.{name}") if l.strip()]
    except FileNotFoundError:
        return []

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))]

t = {n: load(n) for n in ("kone", "runc", "crun", "inpod")}
med = {n: statistics.median(v) for n, v in t.items() if v}

print()
print(f"create+start+wait+delete of /bin/true, {runs} runs (ms)")
print(f"  {'':34} {'median':>8} {'p90':>8} {'min':>8}")
rows = [("kone run --rm (new pod+supervisor)", "kone"), ("kone run --rm in an existing pod", "inpod"),
        ("runc run", "runc"), ("crun run", "crun")]
for label, n in rows:
    if t[n]:
        print(f"  {label:34} {med[n]:8.2f} {pct(t[n], 90):8.2f} {min(t[n]):8.2f}")
    else:
        print(f"  {label:34} {'n/a':>8}   ({crun_why})")
ratios = {}
for peer in ("crun", "runc"):
    if peer in med:
        ratios[peer] = med["kone"] / med[peer]
        paired = statistics.median(k / p for k, p in zip(t["kone"], t[peer]))
        print(f"  kone / {peer}: {ratios[peer]:.2f}x (ratio of medians), "
              f"{paired:.2f}x (median of per-iteration ratios)")

def supervisors(name):
    mem = [tuple(int(x) for x in l.split()) for l in open(f"{work}/{name}") if l.strip()]
    return [[m[i] / 1024 for m in mem] for i in range(3)]

mb = int(big_bytes) / 1e6
print()
print(f"import of a {mb:.0f} MB docker-archive (2 layers): {float(import_ms):.0f} ms "
      f"({mb / (float(import_ms) / 1000):.0f} MB/s)")
print(f"{conc} containers (one pod each) started concurrently: {conc_ms} ms to all running; "
      f"rmp of the {conc} pods: {conc_rm_ms} ms")
for name, when in (("mem.start", "just started"), ("mem", "settled, 3 s later")):
    rss, pss, uss = supervisors(name)
    print(f"supervisor memory, {pods} pods running sleep, {when} (MiB per supervisor): "
          f"VmRSS median {statistics.median(rss):.2f} max {max(rss):.2f}; "
          f"PSS median {statistics.median(pss):.2f} max {max(pss):.2f}; "
          f"USS median {statistics.median(uss):.2f} max {max(uss):.2f}")
print()
fmt = lambda p: f"{ratios[p]:.2f}" if p in ratios else "NA"
print(f"ratio_vs_crun={fmt('crun')} ratio_vs_runc={fmt('runc')} "
      f"supervisor_rss_mb={statistics.median(rss):.2f}")
PY
