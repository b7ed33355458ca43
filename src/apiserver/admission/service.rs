//! Services: ports, type-specific fields, and the cluster IP that stays
//! put once allocated (clients and DNS have already seen it).

use std::collections::HashSet;

use serde_json::{json, Value};

use super::field_error::FieldError;
use super::json::{arr_at, s};
use super::metadata::validate_labels;
use super::pod::validate_port_num_or_name;
use super::syntax::{is_dns1123_label, is_dns1123_subdomain, is_valid_ip, is_valid_port_num};

/// Reachable from outside the cluster: these get externalTrafficPolicy.
pub fn externally_accessible(spec: &Value) -> bool {
    match s(spec, "type") {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => !arr_at(spec, "externalIPs").is_empty(),
        _ => false,
    }
}

/// The cluster IPs as listed in `clusterIPs`, else the single `clusterIP`.
fn cluster_ips(spec: &Value) -> Vec<&str> {
    let list: Vec<&str> = arr_at(spec, "clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !list.is_empty() {
        return list;
    }
    match s(spec, "clusterIP") {
        "" => Vec::new(),
        ip => vec![ip],
    }
}

pub fn validate_service(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    let ty = s(spec, "type");
    let ips = cluster_ips(spec);
    let headless = ips.first() == Some(&"None");

    match ty {
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" => {}
        "" => errs.push(FieldError::required("spec.type", "")),
        other => errs.push(FieldError::not_supported(
            "spec.type",
            &json!(other),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }

    if ty == "ExternalName" {
        if !ips.is_empty() {
            errs.push(FieldError::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
        let cname = s(spec, "externalName").trim_end_matches('.');
        if cname.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            for m in is_dns1123_subdomain(cname) {
                errs.push(FieldError::invalid_str("spec.externalName", cname, &m));
            }
        }
    } else {
        for (i, ip) in ips.iter().enumerate() {
            if *ip == "None" {
                if i > 0 {
                    errs.push(FieldError::invalid_str(
                        format!("spec.clusterIPs[{i}]"),
                        ip,
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ));
                } else if ty == "NodePort" || ty == "LoadBalancer" {
                    errs.push(FieldError::invalid_str(
                        "spec.clusterIPs[0]",
                        ip,
                        &format!("may not be set to 'None' for {ty} services"),
                    ));
                }
                continue;
            }
            for m in is_valid_ip(ip) {
                errs.push(FieldError::invalid_str(
                    format!("spec.clusterIPs[{i}]"),
                    ip,
                    &m,
                ));
            }
        }
    }

    let ports = arr_at(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    let mut port_protocols = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = s(p, "name");
        if require_name && name.is_empty() {
            errs.push(FieldError::required(format!("{pp}.name"), ""));
        } else if !name.is_empty() {
            for m in is_dns1123_label(name) {
                errs.push(FieldError::invalid_str(format!("{pp}.name"), name, &m));
            }
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), &json!(name)));
            }
        }
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        for m in is_valid_port_num(port) {
            errs.push(FieldError::invalid(format!("{pp}.port"), &json!(port), &m));
        }
        let protocol = s(p, "protocol");
        match protocol {
            "TCP" | "UDP" | "SCTP" => {}
            "" => errs.push(FieldError::required(format!("{pp}.protocol"), "")),
            other => errs.push(FieldError::not_supported(
                format!("{pp}.protocol"),
                &json!(other),
                &["SCTP", "TCP", "UDP"],
            )),
        }
        if !port_protocols.insert((port, protocol.to_string())) {
            errs.push(FieldError::duplicate(
                pp.clone(),
                &json!({"port": port, "protocol": protocol}),
            ));
        }
        errs.extend(validate_port_num_or_name(
            p.get("targetPort"),
            &format!("{pp}.targetPort"),
        ));
        let node_port = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 {
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.push(FieldError::forbidden(
                    format!("{pp}.nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            } else {
                for m in is_valid_port_num(node_port) {
                    errs.push(FieldError::invalid(
                        format!("{pp}.nodePort"),
                        &json!(node_port),
                        &m,
                    ));
                }
                if !node_ports.insert((node_port, protocol.to_string())) {
                    errs.push(FieldError::duplicate(
                        format!("{pp}.nodePort"),
                        &json!(node_port),
                    ));
                }
            }
        }
    }

    errs.extend(validate_labels(spec.get("selector"), "spec.selector"));

    match s(spec, "sessionAffinity") {
        "None" | "ClientIP" => {}
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            &json!(other),
            &["ClientIP", "None"],
        )),
    }

    let etp = s(spec, "externalTrafficPolicy");
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(FieldError::invalid_str(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(FieldError::not_supported(
            "spec.externalTrafficPolicy",
            &json!(etp),
            &["Cluster", "Local"],
        ));
    }
    if let Some(itp) = spec.get("internalTrafficPolicy").and_then(Value::as_str) {
        if itp != "Cluster" && itp != "Local" {
            errs.push(FieldError::not_supported(
                "spec.internalTrafficPolicy",
                &json!(itp),
                &["Cluster", "Local"],
            ));
        }
    }
    if let Some(p) = spec.get("ipFamilyPolicy").and_then(Value::as_str) {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&p) {
            errs.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                &json!(p),
                POLICIES,
            ));
        }
    }
    for (i, f) in arr_at(spec, "ipFamilies").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(
                format!("spec.ipFamilies[{i}]"),
                &json!(f),
                &["IPv4", "IPv6"],
            ));
        }
    }
    errs
}

/// The allocated cluster IP may not change, except when the Service turns
/// into or out of an ExternalName (which has none). The API server must
/// carry the old IPs over when a client omits them, as upstream does.
pub fn validate_service_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (ns, os) = (
        new.get("spec").unwrap_or(&Value::Null),
        old.get("spec").unwrap_or(&Value::Null),
    );
    if s(ns, "type") == "ExternalName" || s(os, "type") == "ExternalName" {
        return Vec::new();
    }
    let (n, o) = (cluster_ips(ns), cluster_ips(os));
    match (n.first(), o.first()) {
        (_, None) => Vec::new(),
        (Some(a), Some(b)) if a == b => Vec::new(),
        _ => {
            let shown: Vec<Value> = n.iter().map(|s| json!(s)).collect();
            vec![FieldError::invalid(
                "spec.clusterIPs[0]",
                &Value::Array(shown),
                "may not change once set",
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::admission::defaults::apply_defaults;

    fn svc(spec: Value) -> Value {
        let mut s = json!({"metadata": {"name": "web"}, "spec": spec});
        apply_defaults("", "Service", &mut s);
        s
    }

    fn text(e: Vec<FieldError>) -> Vec<String> {
        e.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaulted_service_is_valid() {
        assert!(validate_service(&svc(
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]})
        ))
        .is_empty());
        assert!(validate_service(&svc(json!({"clusterIP": "None"}))).is_empty());
        assert!(validate_service(&svc(
            json!({"type": "ExternalName", "externalName": "example.com."})
        ))
        .is_empty());
    }

    #[test]
    fn port_rules() {
        assert_eq!(
            text(validate_service(&svc(json!({})))),
            vec!["spec.ports: Required value"]
        );
        let e = text(validate_service(&svc(json!({"ports": [
            {"port": 80},
            {"name": "b", "port": 70000, "protocol": "ICMP", "targetPort": "Bad_Name"},
            {"name": "b", "port": 81, "nodePort": 30001}
        ]}))));
        assert_eq!(
            e,
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[1].targetPort: Invalid value: \"Bad_Name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.ports[2].name: Duplicate value: \"b\"",
                "spec.ports[2].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ]
        );
    }

    #[test]
    fn type_rules() {
        let e = text(validate_service(&svc(
            json!({"type": "Weird", "ports": [{"port": 80}]}),
        )));
        assert_eq!(
            e,
            vec!["spec.type: Unsupported value: \"Weird\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]
        );
        let e = text(validate_service(&svc(json!({"type": "ExternalName"}))));
        assert_eq!(e, vec!["spec.externalName: Required value"]);
        let e = text(validate_service(&svc(
            json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        )));
        assert_eq!(
            e,
            vec!["spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"]
        );
        let e = text(validate_service(&svc(
            json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}),
        )));
        assert_eq!(e, vec!["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"]);
    }

    #[test]
    fn cluster_ip_immutable() {
        let old = svc(
            json!({"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"], "ports": [{"port": 80}]}),
        );
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.43.0.11");
        new["spec"]["clusterIPs"] = json!(["10.43.0.11"]);
        assert_eq!(
            text(validate_service_update(&new, &old)),
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.11\"}: may not change once set"]
        );
        assert!(validate_service_update(&old, &old).is_empty());
        new["spec"]["type"] = json!("ExternalName");
        assert!(validate_service_update(&new, &old).is_empty());
    }
}
