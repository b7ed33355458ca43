//! Networking, coordination, scheduling, storage, policy, RBAC and
//! autoscaling kinds.

use serde_json::{json, Value};

use super::{age, arr_at, at, int_at, name, or_none, str_at, Col, Printer, AGE, CREATED_AT, NAME};

/// Cells of upstream's Name + "Created At" printers.
pub fn created_at_cells(o: &Value) -> Vec<Value> {
    vec![
        name(o),
        json!(str_at(o, &["metadata", "creationTimestamp"])),
    ]
}

static CREATED: Printer = Printer {
    columns: &[NAME, CREATED_AT],
    cells: created_at_cells,
};

fn more(items: Vec<String>, max: usize) -> String {
    let n = items.len();
    let mut s = items.into_iter().take(max).collect::<Vec<_>>().join(",");
    if n > max {
        s = format!("{s} + {} more...", n - max);
    }
    s
}

static INGRESS: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Class", "string", "The name of the IngressClass resource."),
        Col::new(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        Col::new(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        Col::new("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ],
    cells: ingress,
};

fn ingress(o: &Value) -> Vec<Value> {
    let hosts: Vec<String> = arr_at(o, &["spec", "rules"])
        .iter()
        .map(|r| match str_at(r, &["host"]) {
            "" => "*".to_string(),
            h => h.to_string(),
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        more(hosts, 3)
    };
    let addrs: Vec<String> = arr_at(o, &["status", "loadBalancer", "ingress"])
        .iter()
        .map(|i| match str_at(i, &["ip"]) {
            "" => str_at(i, &["hostname"]).to_string(),
            ip => ip.to_string(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    let ports = if arr_at(o, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(o),
        json!(or_none(str_at(o, &["spec", "ingressClassName"]))),
        json!(hosts),
        json!(addrs.join(",")),
        json!(ports),
        age(o),
    ]
}

static LEASE: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Holder", "string", "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field."),
        AGE,
    ],
    cells: |o| {
        vec![
            name(o),
            json!(str_at(o, &["spec", "holderIdentity"])),
            age(o),
        ]
    },
};

static PRIORITY_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Value", "integer", "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."),
        Col::new("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority."),
        AGE,
        Col::new("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."),
    ],
    cells: |o| {
        let policy = match str_at(o, &["preemptionPolicy"]) {
            "" => "PreemptLowerPriority",
            p => p,
        };
        vec![
            name(o),
            json!(int_at(o, &["value"])),
            json!(at(o, &["globalDefault"]).as_bool().unwrap_or(false)),
            age(o),
            json!(policy),
        ]
    },
};

static STORAGE_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Provisioner", "string", "provisioner indicates the type of the provisioner."),
        Col::new("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
        Col::new("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature."),
        Col::new("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
        AGE,
    ],
    cells: storage_class,
};

fn storage_class(o: &Value) -> Vec<Value> {
    let default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|k| str_at(o, &["metadata", "annotations", k]) == "true");
    let mut n = str_at(o, &["metadata", "name"]).to_string();
    if default {
        n.push_str(" (default)");
    }
    let or = |v: &str, d: &str| {
        if v.is_empty() {
            d.to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        json!(n),
        json!(str_at(o, &["provisioner"])),
        json!(or(str_at(o, &["reclaimPolicy"]), "Delete")),
        json!(or(str_at(o, &["volumeBindingMode"]), "Immediate")),
        json!(at(o, &["allowVolumeExpansion"]).as_bool().unwrap_or(false)),
        age(o),
    ]
}

static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        Col::new("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type."),
        Col::new("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list."),
        Col::new("Endpoints", "string", "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints."),
        AGE,
    ],
    cells: endpoint_slice,
};

fn endpoint_slice(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = arr_at(o, &["ports"])
        .iter()
        .map(|p| match at(p, &["port"]).as_i64() {
            Some(n) => n.to_string(),
            None => "<unset>".into(),
        })
        .collect();
    let ports = if ports.is_empty() {
        "<unset>".to_string()
    } else {
        more(ports, 3)
    };
    let addrs: Vec<String> = arr_at(o, &["endpoints"])
        .iter()
        .flat_map(|e| arr_at(e, &["addresses"]).iter())
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let addrs = if addrs.is_empty() {
        "<unset>".to_string()
    } else {
        more(addrs, 3)
    };
    vec![
        name(o),
        json!(str_at(o, &["addressType"])),
        json!(ports),
        json!(addrs),
        age(o),
    ]
}

static PDB: Printer = Printer {
    columns: &[
        NAME,
        Col::new(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        Col::new(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        Col::new(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
    cells: |o| {
        let show = |f: &str| match at(o, &["spec", f]) {
            Value::Null => "N/A".to_string(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        vec![
            name(o),
            json!(show("minAvailable")),
            json!(show("maxUnavailable")),
            json!(int_at(o, &["status", "disruptionsAllowed"])),
            age(o),
        ]
    },
};

static BINDING: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. This field is immutable."),
        AGE,
        Col::new("Users", "string", "Users in the roleBinding").wide(),
        Col::new("Groups", "string", "Groups in the roleBinding").wide(),
        Col::new("ServiceAccounts", "string", "ServiceAccounts in the roleBinding").wide(),
    ],
    cells: binding,
};

fn binding(o: &Value) -> Vec<Value> {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in arr_at(o, &["subjects"]) {
        let n = str_at(s, &["name"]);
        match str_at(s, &["kind"]) {
            "User" => users.push(n.to_string()),
            "Group" => groups.push(n.to_string()),
            "ServiceAccount" => sas.push(format!("{}/{n}", str_at(s, &["namespace"]))),
            _ => {}
        }
    }
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            str_at(o, &["roleRef", "kind"]),
            str_at(o, &["roleRef", "name"])
        )),
        age(o),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

static HPA: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Reference", "string", "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource."),
        Col::new("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond."),
        Col::new("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available."),
        Col::new("MaxPods", "integer", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas."),
        Col::new("Replicas", "string", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
        AGE,
    ],
    cells: hpa,
};

fn hpa(o: &Value) -> Vec<Value> {
    let mut targets: Vec<String> = Vec::new();
    let current = arr_at(o, &["status", "currentMetrics"]);
    for m in arr_at(o, &["spec", "metrics"]) {
        if str_at(m, &["type"]) != "Resource" {
            targets.push("<unknown>".into());
            continue;
        }
        let res = str_at(m, &["resource", "name"]);
        let cur = current
            .iter()
            .find(|c| str_at(c, &["resource", "name"]) == res)
            .map(|c| at(c, &["resource", "current"]));
        let target = at(m, &["resource", "target"]);
        if let Some(u) = at(target, &["averageUtilization"]).as_i64() {
            let c = cur
                .and_then(|c| at(c, &["averageUtilization"]).as_i64())
                .map(|c| format!("{c}%"))
                .unwrap_or_else(|| "<unknown>".into());
            targets.push(format!("{res}: {c}/{u}%"));
        } else {
            let t = str_at(target, &["averageValue"]);
            let c = cur
                .map(|c| str_at(c, &["averageValue"]))
                .filter(|s| !s.is_empty())
                .unwrap_or("<unknown>");
            targets.push(format!("{res}: {c}/{t}"));
        }
    }
    let targets = if targets.is_empty() {
        "<none>".to_string()
    } else {
        targets.join(", ")
    };
    let min = match at(o, &["spec", "minReplicas"]).as_i64() {
        Some(m) => m.to_string(),
        None => "<unset>".into(),
    };
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            str_at(o, &["spec", "scaleTargetRef", "kind"]),
            str_at(o, &["spec", "scaleTargetRef", "name"])
        )),
        json!(targets),
        json!(min),
        json!(int_at(o, &["spec", "maxReplicas"])),
        json!(int_at(o, &["status", "currentReplicas"])),
        age(o),
    ]
}

pub fn lookup(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("networking.k8s.io", "Ingress") => &INGRESS,
        ("coordination.k8s.io", "Lease") => &LEASE,
        ("scheduling.k8s.io", "PriorityClass") => &PRIORITY_CLASS,
        ("storage.k8s.io", "StorageClass") => &STORAGE_CLASS,
        ("discovery.k8s.io", "EndpointSlice") => &ENDPOINT_SLICE,
        ("policy", "PodDisruptionBudget") => &PDB,
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => &CREATED,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => &BINDING,
        ("autoscaling", "HorizontalPodAutoscaler") => &HPA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_and_hpa() {
        let b = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]});
        let c = binding(&b);
        assert_eq!(c[1], "ClusterRole/admin");
        assert_eq!(c[3], "u");
        assert_eq!(c[5], "ns/sa");
        let h = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
        let c = hpa(&h);
        assert_eq!(c[1], "Deployment/web");
        assert_eq!(c[2], "cpu: <unknown>/80%");
        assert_eq!(c[3], "<unset>");
    }
}
