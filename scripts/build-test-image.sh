#!/usr/bin/env bash
# Build kone's own small test image, kone.test/busybox:1, from Debian's
# busybox-static package, as two archives with the same image content:
#   OUTDIR/busybox-docker.tar  (`docker save` format)
#   OUTDIR/busybox-oci.tar     (OCI image layout, gzip-compressed layer)
# Both are byte-for-byte reproducible (fixed mtimes, sorted entries), and the
# image config (hence the config digest) is the same in both.
#
# Usage: scripts/build-test-image.sh OUTDIR
# Needs: python3 and /bin/busybox from busybox-static (installed with apt-get
# when missing and running as root).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUTDIR=$1
BUSYBOX=${BUSYBOX:-/bin/busybox}

is_static_busybox() {
    [ -x "$BUSYBOX" ] && "$BUSYBOX" --list >/dev/null 2>&1 &&
        ! (command -v ldd >/dev/null && ldd "$BUSYBOX" 2>/dev/null | grep -q '=>')
}

if ! is_static_busybox; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "build-test-image: installing busybox-static" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y busybox-static >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y busybox-static >/dev/null; }
    fi
fi
if ! is_static_busybox; then
    echo "build-test-image: no static busybox at $BUSYBOX (apt-get install busybox-static)" >&2
    exit 3
fi

case "$(uname -m)" in
x86_64 | amd64) ARCH=amd64 ;;
aarch64 | arm64) ARCH=arm64 ;;
armv7l | armv6l) ARCH=arm ;;
riscv64) ARCH=riscv64 ;;
s390x) ARCH=s390x ;;
ppc64le) ARCH=ppc64le ;;
*) echo "build-test-image: unknown machine $(uname -m)" >&2; exit 2 ;;
esac

mkdir -p "$OUTDIR"
APPLETS=$("$BUSYBOX" --list | sort -u | tr '\n' ' ')

python3 - "$OUTDIR" "$BUSYBOX" "$ARCH" "$APPLETS" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile

outdir, busybox, arch, applets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
NAME = "kone.test/busybox:1"
MTIME = 1704067200  # 2024-01-01T00:00:00Z
CREATED = "2024-01-01T00:00:00Z"


def info(name, kind, mode, size=0, linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.size = size
    ti.linkname = linkname
    ti.mtime = MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def build_tar(entries):
    """entries: list of (TarInfo, bytes or None), written sorted by name."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for ti, data in sorted(entries, key=lambda e: e[0].name):
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_entry(name, data, mode=0o644):
    return (info(name, tarfile.REGTYPE, mode, len(data)), data)


with open(busybox, "rb") as f:
    bb = f.read()
passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
group = b"root:x:0:\nnobody:x:65534:\n"
rootfs = [
    (info("bin", tarfile.DIRTYPE, 0o755), None),
    (info("etc", tarfile.DIRTYPE, 0o755), None),
    (info("root", tarfile.DIRTYPE, 0o700), None),
    (info("tmp", tarfile.DIRTYPE, 0o1777), None),
    file_entry("bin/busybox", bb, 0o755),
    file_entry("etc/passwd", passwd),
    file_entry("etc/group", group),
]
for applet in applets:
    if applet != "busybox" and "/" not in applet:
        rootfs.append((info("bin/" + applet, tarfile.SYMTYPE, 0o777, linkname="busybox"), None))
layer = build_tar(rootfs)
diff_id = hashlib.sha256(layer).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


config = canonical({
    "architecture": arch,
    "os": "linux",
    "created": CREATED,
    "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
    "history": [{"created": CREATED, "created_by": "kone scripts/build-test-image.sh"}],
})
config_hex = hashlib.sha256(config).hexdigest()

# docker save format
repo, tag = NAME.rsplit(":", 1)
docker = build_tar([
    (info(diff_id, tarfile.DIRTYPE, 0o755), None),
    file_entry(diff_id + "/VERSION", b"1.0"),
    file_entry(diff_id + "/layer.tar", layer),
    file_entry(config_hex + ".json", config),
    file_entry("manifest.json", canonical([{
        "Config": config_hex + ".json",
        "RepoTags": [NAME],
        "Layers": [diff_id + "/layer.tar"],
    }])),
    file_entry("repositories", canonical({repo: {tag: diff_id}})),
])
with open(os.path.join(outdir, "busybox-docker.tar"), "wb") as f:
    f.write(docker)

# OCI image layout, gzip-compressed layer
gz = io.BytesIO()
with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0) as g:
    g.write(layer)
layer_gz = gz.getvalue()
layer_gz_hex = hashlib.sha256(layer_gz).hexdigest()
manifest = canonical({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": "sha256:" + config_hex,
        "size": len(config),
    },
    "layers": [{
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": "sha256:" + layer_gz_hex,
        "size": len(layer_gz),
    }],
})
manifest_hex = hashlib.sha256(manifest).hexdigest()
index = canonical({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + manifest_hex,
        "size": len(manifest),
        "platform": {"architecture": arch, "os": "linux"},
        "annotations": {
            "io.containerd.image.name": NAME,
            "org.opencontainers.image.ref.name": NAME,
        },
    }],
})
oci = build_tar([
    (info("blobs", tarfile.DIRTYPE, 0o755), None),
    (info("blobs/sha256", tarfile.DIRTYPE, 0o755), None),
    file_entry("blobs/sha256/" + config_hex, config),
    file_entry("blobs/sha256/" + layer_gz_hex, layer_gz),
    file_entry("blobs/sha256/" + manifest_hex, manifest),
    file_entry("index.json", index),
    file_entry("oci-layout", canonical({"imageLayoutVersion": "1.0.0"})),
])
with open(os.path.join(outdir, "busybox-oci.tar"), "wb") as f:
    f.write(oci)
print(f"{NAME} config sha256:{config_hex} layer diff_id sha256:{diff_id}")
PY
