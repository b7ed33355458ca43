//! Core-group kinds other than pods.

use serde_json::{json, Value};

use super::{
    age, arr_at, at, format_labels, int_at, len_at, name, or_none, since, sorted_keys, str_at, Col,
    Printer, AGE, CREATED_AT, NAME,
};

static SERVICE: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types"),
        Col::new("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
        Col::new("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system."),
        Col::new("Port(s)", "string", "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
        AGE,
        Col::new("Selector", "string", "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/").wide(),
    ],
    cells: service,
};

/// PORT(S) of a service: "80/TCP", "80:30080/TCP", comma-joined.
pub fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let proto = match str_at(p, &["protocol"]) {
                "" => "TCP",
                x => x,
            };
            let port = int_at(p, &["port"]);
            match int_at(p, &["nodePort"]) {
                0 => format!("{port}/{proto}"),
                np => format!("{port}:{np}/{proto}"),
            }
        })
        .collect();
    or_none(&ports.join(","))
}

fn strings(v: &[Value]) -> Vec<&str> {
    v.iter().filter_map(Value::as_str).collect()
}

/// EXTERNAL-IP of a service, like upstream's getServiceExternalIP.
pub fn service_external_ip(svc: &Value) -> String {
    let external = strings(arr_at(svc, &["spec", "externalIPs"]));
    match str_at(svc, &["spec", "type"]) {
        "LoadBalancer" => {
            let mut ips: Vec<&str> = arr_at(svc, &["status", "loadBalancer", "ingress"])
                .iter()
                .map(|i| match str_at(i, &["ip"]) {
                    "" => str_at(i, &["hostname"]),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => or_none(&external.join(",")),
    }
}

fn service(o: &Value) -> Vec<Value> {
    let ty = match str_at(o, &["spec", "type"]) {
        "" => "ClusterIP",
        t => t,
    };
    vec![
        name(o),
        json!(ty),
        json!(or_none(str_at(o, &["spec", "clusterIP"]))),
        json!(service_external_ip(o)),
        json!(service_ports(o)),
        age(o),
        json!(format_labels(at(o, &["spec", "selector"]))),
    ]
}

static ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Endpoints", "string", "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service."),
        AGE,
    ],
    cells: endpoints,
};

fn endpoints(o: &Value) -> Vec<Value> {
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for ss in arr_at(o, &["subsets"]) {
        let addrs = arr_at(ss, &["addresses"]);
        let ports = arr_at(ss, &["ports"]);
        if ports.is_empty() {
            for a in addrs {
                count += 1;
                if list.len() < MAX {
                    list.push(str_at(a, &["ip"]).to_string());
                }
            }
        } else {
            for p in ports {
                for a in addrs {
                    count += 1;
                    if list.len() < MAX {
                        list.push(format!("{}:{}", str_at(a, &["ip"]), int_at(p, &["port"])));
                    }
                }
            }
        }
    }
    let mut s = list.join(",");
    if count > list.len() {
        s = format!("{s} + {} more...", count - list.len());
    }
    vec![name(o), json!(or_none(&s)), age(o)]
}

static NODE: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Status", "string", "The status of the node"),
        Col::new("Roles", "string", "The roles of the node"),
        AGE,
        Col::new("Version", "string", "Kubelet Version reported by the node."),
        Col::new("Internal-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).").wide(),
        Col::new("External-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).").wide(),
        Col::new("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
        Col::new("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
        Col::new("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).").wide(),
    ],
    cells: node,
};

fn node(o: &Value) -> Vec<Value> {
    let ready = arr_at(o, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = match ready.map(|c| str_at(c, &["status"])) {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if at(o, &["spec", "unschedulable"]).as_bool().unwrap_or(false) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = at(o, &["metadata", "labels"]).as_object() {
        for (k, v) in labels {
            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                if !r.is_empty() {
                    roles.push(r.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.push(v.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    let addr = |ty: &str| {
        or_none(
            arr_at(o, &["status", "addresses"])
                .iter()
                .find(|a| str_at(a, &["type"]) == ty)
                .map(|a| str_at(a, &["address"]))
                .unwrap_or(""),
        )
    };
    let info = |f: &str| match str_at(o, &["status", "nodeInfo", f]) {
        "" => "<unknown>".to_string(),
        s => s.to_string(),
    };
    vec![
        name(o),
        json!(status),
        json!(or_none(&roles.join(","))),
        age(o),
        json!(str_at(o, &["status", "nodeInfo", "kubeletVersion"])),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

static NAMESPACE: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Status", "string", "The status of the namespace"),
        AGE,
    ],
    cells: |o| vec![name(o), json!(str_at(o, &["status", "phase"])), age(o)],
};

static CONFIGMAP: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Data", "string", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process."),
        AGE,
    ],
    cells: |o| {
        vec![
            name(o),
            json!(len_at(o, &["data"]) + len_at(o, &["binaryData"])),
            age(o),
        ]
    },
};

static SECRET: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Type", "string", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
        Col::new("Data", "string", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"),
        AGE,
    ],
    cells: |o| {
        vec![
            name(o),
            json!(str_at(o, &["type"])),
            json!(len_at(o, &["data"])),
            age(o),
        ]
    },
};

static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret"),
        AGE,
    ],
    cells: |o| vec![name(o), json!(len_at(o, &["secrets"])), age(o)],
};

static EVENT: Printer = Printer {
    columns: &[
        Col::new("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
        Col::new("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
        Col::new("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        Col::new("Object", "string", "The object that this event is about."),
        Col::new("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.").wide(),
        Col::new("Source", "string", "The component reporting this event. Should be a short machine understandable string.").wide(),
        Col::new("Message", "string", "A human-readable description of the status of this operation."),
        Col::new("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)").wide(),
        Col::new("Count", "string", "The number of times this event has occurred.").wide(),
        Col { priority: 1, ..NAME },
    ],
    cells: event,
};

fn event(o: &Value) -> Vec<Value> {
    let first = match str_at(o, &["firstTimestamp"]) {
        "" => since(str_at(o, &["eventTime"])),
        t => since(t),
    };
    let mut last = match str_at(o, &["lastTimestamp"]) {
        "" => first.clone(),
        t => since(t),
    };
    let mut count = int_at(o, &["count"]);
    if !at(o, &["series"]).is_null() {
        last = since(str_at(o, &["series", "lastObservedTime"]));
        count = int_at(o, &["series", "count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(o, &["involvedObject", "kind"]).to_lowercase();
    let target = match str_at(o, &["involvedObject", "name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = match str_at(o, &["source", "component"]) {
        "" => str_at(o, &["reportingComponent"]),
        c => c,
    };
    let host = match str_at(o, &["source", "host"]) {
        "" => str_at(o, &["reportingInstance"]),
        h => h,
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(str_at(o, &["type"])),
        json!(str_at(o, &["reason"])),
        json!(target),
        json!(str_at(o, &["involvedObject", "fieldPath"])),
        json!(source),
        json!(str_at(o, &["message"]).trim()),
        json!(first),
        json!(count),
        name(o),
    ]
}

fn access_modes(modes: &[Value]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for (full, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.iter().any(|m| m.as_str() == Some(full)) {
            out.push(short);
        }
    }
    out.join(",")
}

fn unset(s: &str) -> String {
    if s.is_empty() {
        "<unset>".into()
    } else {
        s.to_string()
    }
}

fn volume_mode(o: &Value) -> String {
    match str_at(o, &["spec", "volumeMode"]) {
        "" => "Filesystem".into(),
        m => m.to_string(),
    }
}

static PV: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity"),
        Col::new("Access Modes", "string", "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes"),
        Col::new("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming"),
        Col::new("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase"),
        Col::new("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding"),
        Col::new("StorageClass", "string", "StorageClass of the pv"),
        Col::new("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        Col::new("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
        AGE,
        Col::new("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.").wide(),
    ],
    cells: pv,
};

fn pv(o: &Value) -> Vec<Value> {
    let claim = match at(o, &["spec", "claimRef"]) {
        Value::Null => String::new(),
        c => format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"])),
    };
    vec![
        name(o),
        json!(str_at(o, &["spec", "capacity", "storage"])),
        json!(access_modes(arr_at(o, &["spec", "accessModes"]))),
        json!(str_at(o, &["spec", "persistentVolumeReclaimPolicy"])),
        json!(str_at(o, &["status", "phase"])),
        json!(claim),
        json!(str_at(o, &["spec", "storageClassName"])),
        json!(unset(str_at(o, &["spec", "volumeAttributesClassName"]))),
        json!(str_at(o, &["status", "reason"])),
        age(o),
        json!(volume_mode(o)),
    ]
}

static PVC: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
        Col::new("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim."),
        Col::new("Capacity", "string", "capacity represents the actual resources of the underlying volume."),
        Col::new("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"),
        Col::new("StorageClass", "string", "StorageClass of the pvc"),
        Col::new("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
        AGE,
        Col::new("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.").wide(),
    ],
    cells: pvc,
};

fn pvc(o: &Value) -> Vec<Value> {
    let volume = str_at(o, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            str_at(o, &["status", "capacity", "storage"]).to_string(),
            access_modes(arr_at(o, &["status", "accessModes"])),
        )
    };
    let phase = if at(o, &["metadata", "deletionTimestamp"]).is_null() {
        str_at(o, &["status", "phase"])
    } else {
        "Terminating"
    };
    vec![
        name(o),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(str_at(o, &["spec", "storageClassName"])),
        json!(unset(str_at(o, &["spec", "volumeAttributesClassName"]))),
        age(o),
        json!(volume_mode(o)),
    ]
}

static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        Col::new("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
        Col::new("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
    ],
    cells: resource_quota,
};

fn resource_quota(o: &Value) -> Vec<Value> {
    let (mut req, mut lim) = (Vec::new(), Vec::new());
    if let Some(hard) = at(o, &["status", "hard"]).as_object() {
        for k in sorted_keys(hard) {
            let used = match str_at(o, &["status", "used", k]) {
                "" => "0",
                u => u,
            };
            let s = format!("{k}: {used}/{}", hard[k].as_str().unwrap_or(""));
            if k.starts_with("limits.") {
                lim.push(s);
            } else {
                req.push(s);
            }
        }
    }
    vec![
        name(o),
        age(o),
        json!(req.join(", ")),
        json!(lim.join(", ")),
    ]
}

static LIMIT_RANGE: Printer = Printer {
    columns: &[NAME, CREATED_AT],
    cells: super::misc::created_at_cells,
};

pub fn lookup(group: &str, kind: &str) -> Option<&'static Printer> {
    if !group.is_empty() {
        return None;
    }
    Some(match kind {
        "Service" => &SERVICE,
        "Endpoints" => &ENDPOINTS,
        "Node" => &NODE,
        "Namespace" => &NAMESPACE,
        "ConfigMap" => &CONFIGMAP,
        "Secret" => &SECRET,
        "ServiceAccount" => &SERVICE_ACCOUNT,
        "Event" => &EVENT,
        "PersistentVolume" => &PV,
        "PersistentVolumeClaim" => &PVC,
        "ResourceQuota" => &RESOURCE_QUOTA,
        "LimitRange" => &LIMIT_RANGE,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ports_and_ips() {
        let svc = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.7",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(service_ports(&svc), "80:30080/TCP,53/UDP");
        assert_eq!(service_external_ip(&svc), "<none>");
        let plain = json!({"spec": {"ports": [{"port": 80}]}});
        assert_eq!(service_ports(&plain), "80/TCP");
        assert_eq!(service_ports(&json!({"spec": {}})), "<none>");
        let lb = json!({"spec": {"type": "LoadBalancer"}});
        assert_eq!(service_external_ip(&lb), "<pending>");
        let cells = service(&svc);
        assert_eq!(cells[1], "NodePort");
        assert_eq!(cells[2], "10.43.0.7");
        assert_eq!(cells[6], "<none>");
    }

    #[test]
    fn endpoints_and_nodes() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}, {"ip": "1.1.1.2"}, {"ip": "1.1.1.3"}, {"ip": "1.1.1.4"}],
            "ports": [{"port": 80}]}]});
        assert_eq!(
            endpoints(&ep)[1],
            "1.1.1.1:80,1.1.1.2:80,1.1.1.3:80 + 1 more..."
        );
        let n = json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}}});
        let c = node(&n);
        assert_eq!(c[1], "Ready,SchedulingDisabled");
        assert_eq!(c[2], "control-plane");
        assert_eq!(c[4], "v1.33.0");
        assert_eq!(c[7], "<unknown>");
    }
}
