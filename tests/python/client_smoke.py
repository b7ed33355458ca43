"""The official Python client against kone: CRUD, watch and error codes.

Usage: client_smoke.py KUBECONFIG. Exits non-zero with a message on failure.
"""
import sys

from kubernetes import client, config, watch


def main(kubeconfig: str) -> None:
    config.load_kube_config(kubeconfig)
    v1 = client.CoreV1Api()
    apps = client.AppsV1Api()

    names = {n.metadata.name for n in v1.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names, names

    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm", labels={"from": "python"}), data={"a": "1"})
    created = v1.create_namespaced_config_map("default", cm)
    assert created.metadata.uid and created.metadata.resource_version

    try:
        v1.create_namespaced_config_map("default", cm)
        raise AssertionError("second create succeeded")
    except client.exceptions.ApiException as e:
        assert e.status == 409, e

    created.data["a"] = "2"
    replaced = v1.replace_namespaced_config_map("py-cm", "default", created)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    try:
        v1.replace_namespaced_config_map("py-cm", "default", created)  # stale resourceVersion
        raise AssertionError("stale update succeeded")
    except client.exceptions.ApiException as e:
        assert e.status == 409, e

    # The client's default patch type is strategic merge.
    patched = v1.patch_namespaced_config_map("py-cm", "default", {"metadata": {"labels": {"extra": "yes"}}})
    assert patched.metadata.labels == {"from": "python", "extra": "yes"}, patched.metadata.labels

    deploy = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py-deploy"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "py"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "py"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
            ),
        ),
    )
    d = apps.create_namespaced_deployment("default", deploy)
    assert d.spec.strategy.type == "RollingUpdate" and d.metadata.generation == 1

    seen = []
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, "default", label_selector="from=python", timeout_seconds=2):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 1:
            v1.delete_namespaced_config_map("py-cm", "default")
        if ev["type"] == "DELETED":
            w.stop()
    assert seen == [("ADDED", "py-cm"), ("DELETED", "py-cm")], seen

    try:
        v1.read_namespaced_config_map("py-cm", "default")
        raise AssertionError("deleted object still readable")
    except client.exceptions.ApiException as e:
        assert e.status == 404, e
    # An unscheduled pod is deleted at once; the reply decodes as a V1Pod.
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-pod"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )
    v1.create_namespaced_pod("default", pod)
    gone = v1.delete_namespaced_pod("py-pod", "default")
    assert gone.metadata.name == "py-pod" and gone.metadata.deletion_timestamp, gone.metadata
    print("python client ok")


if __name__ == "__main__":
    main(sys.argv[1])
