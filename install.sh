#!/usr/bin/env bash
# Build kone from this checkout, install it and start `kone server`.
#
#   ./install.sh                 # build, install to /usr/local/bin, start
#   INSTALL_KONE_SKIP_START=true ./install.sh
#   INSTALL_KONE_EXEC="server --https-listen-port 7443" ./install.sh
#
# With systemd or OpenRC a service is installed; otherwise kone runs in the
# background with its log at /var/log/kone.log.
set -euo pipefail
cd "$(dirname "$0")"

BIN_DIR=${INSTALL_KONE_BIN_DIR:-/usr/local/bin}
EXEC=${INSTALL_KONE_EXEC:-server}
LOG=/var/log/kone.log

info() { echo "[kone] $*"; }
fail() { echo "[kone] error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (kone manages namespaces, cgroups and the network)"
command -v cargo >/dev/null || fail "cargo is needed to build kone from source"
# Building links libseccomp (libcontainer's seccomp support).
if [ ! -e /usr/include/seccomp.h ] && command -v apt-get >/dev/null; then
    info "installing build dependencies (libseccomp-dev, pkg-config)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp-dev pkg-config >/dev/null
fi

info "building (release)"
cargo build --release --locked --bin kone
install -m 0755 "${CARGO_TARGET_DIR:-target}/release/kone" "$BIN_DIR/kone"
info "installed $BIN_DIR/kone ($("$BIN_DIR/kone" --version))"

if [ "${INSTALL_KONE_SKIP_START:-false}" = true ]; then
    exit 0
fi

if [ -d /run/systemd/system ]; then
    cat > /etc/systemd/system/kone.service <<UNIT
[Unit]
Description=kone: Kubernetes in one binary
After=network-online.target
[Service]
ExecStart=$BIN_DIR/kone $EXEC
Restart=always
KillMode=process
Delegate=yes
LimitNOFILE=1048576
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --now kone
elif command -v openrc-run >/dev/null; then
    cat > /etc/init.d/kone <<RC
#!/sbin/openrc-run
command=$BIN_DIR/kone
command_args="$EXEC"
command_background=true
pidfile=/run/kone.pid
output_log=$LOG
error_log=$LOG
RC
    chmod +x /etc/init.d/kone
    rc-update add kone default
    rc-service kone restart
else
    if [ -f /run/kone.pid ] && kill -0 "$(cat /run/kone.pid)" 2>/dev/null; then
        info "stopping the running kone ($(cat /run/kone.pid))"
        kill "$(cat /run/kone.pid)"; sleep 1
    fi
    # shellcheck disable=SC2086
    nohup "$BIN_DIR/kone" $EXEC >>"$LOG" 2>&1 &
    echo $! > /run/kone.pid
    info "started without an init system (pid $(cat /run/kone.pid), log $LOG)"
fi

info "waiting for the API"
for _ in $(seq 1 100); do
    if [ -f /etc/kone/kone.yaml ] && "$BIN_DIR/kone" kubectl get --raw /readyz >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done
"$BIN_DIR/kone" kubectl get --raw /readyz >/dev/null 2>&1 || fail "kone did not become ready in 20 s; see $LOG"
case " $EXEC " in
*" --disable-agent "*) ;;
*)
    info "waiting for this machine's node"
    for _ in $(seq 1 100); do
        [ -n "$("$BIN_DIR/kone" kubectl get nodes -o name 2>/dev/null)" ] && break
        sleep 0.2
    done
    "$BIN_DIR/kone" kubectl wait --for=condition=Ready nodes --all --timeout=30s >/dev/null ||
        fail "the node did not become Ready; see $LOG"
    ;;
esac
info "ready: try '$BIN_DIR/kone kubectl get nodes' or 'KUBECONFIG=/etc/kone/kone.yaml kubectl get nodes'"
