"""The official Python client's exec (WebSocket v5, and v4 when asked for)
against kone: stdout and stderr apart, the exit code from the error channel.

Usage: stream_exec.py KUBECONFIG POD. Exits non-zero with a message on failure.
"""
import sys

from kubernetes import client, config
from kubernetes.stream import stream


def run(v1, pod, command, protocol):
    extra = {"_headers": {"sec-websocket-protocol": protocol}} if protocol else {}
    resp = stream(v1.connect_get_namespaced_pod_exec, pod, "default", command=command,
                  stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False, **extra)
    out, err = "", ""
    while resp.is_open():
        resp.update(timeout=5)
        if resp.peek_stdout():
            out += resp.read_stdout()
        if resp.peek_stderr():
            err += resp.read_stderr()
    return out, err, resp.returncode


def main(kubeconfig: str, pod: str) -> None:
    config.load_kube_config(kubeconfig)
    v1 = client.CoreV1Api()
    for protocol in (None, "v4.channel.k8s.io"):
        out, err, code = run(v1, pod, ["sh", "-c", "echo py-out; echo py-err >&2; exit 5"], protocol)
        assert out == "py-out\n" and err == "py-err\n", (protocol, out, err)
        assert code == 5, (protocol, code)
    print("python stream ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
