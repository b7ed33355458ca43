//! Field selectors: `?fieldSelector=` terms like `spec.nodeName=n1`, the
//! per-resource list of fields upstream lets you select on, and how each
//! field's value is read from an object.

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `=` and `==` (upstream treats them the same).
    Equals,
    NotEquals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOp,
    /// Unescaped.
    pub value: String,
}

/// All terms must hold. Empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parse like upstream's `fields.ParseSelector`: comma-separated terms,
    /// `\,` `\=` `\\` escapes in values, no whitespace trimming.
    pub fn parse(selector: &str) -> Result<FieldSelector, String> {
        let mut parts = split_terms(selector);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                ));
            };
            terms.push(FieldRequirement {
                field: lhs.to_string(),
                op,
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// The value `field` must equal, if a term pins it (e.g. the kubelet's
    /// `spec.nodeName=<me>`), so a store can narrow its scan.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.op == FieldOp::Equals)
            .map(|t| t.value.as_str())
    }

    /// Refuse fields the resource does not index, with upstream's words
    /// (the API server answers 400 BadRequest with them).
    pub fn validate_for(&self, group: &str, plural: &str) -> Result<(), String> {
        let extra = supported_fields(group, plural);
        for t in &self.terms {
            let f = t.field.as_str();
            if f != "metadata.name" && f != "metadata.namespace" && !extra.contains(&f) {
                return Err(format!("field label not supported: {f}"));
            }
        }
        Ok(())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let values = field_values(obj, &t.field);
            let hit = values.contains(&t.value);
            match t.op {
                FieldOp::Equals => hit,
                FieldOp::NotEquals => !hit,
            }
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

/// Beyond metadata.name and metadata.namespace, which every resource has.
fn supported_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("apps", "replicasets") | ("", "replicationcontrollers") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

/// The value(s) a field has on an object, rendered as upstream's
/// `ToSelectableFields` would: booleans and counts as text with their Go
/// zero value when absent, other missing fields as "". Only `status.podIPs`
/// has several values; a term matches if any of them does.
///
/// Events are readable in both shapes (core `involvedObject` and
/// events.k8s.io `regarding`) because both APIs serve the same objects.
fn field_values(obj: &Value, field: &str) -> Vec<String> {
    let text = |path: &str| -> Option<String> { scalar(lookup(obj, path)?) };
    let one = |v: Option<String>| vec![v.unwrap_or_default()];
    match field {
        "spec.hostNetwork" | "spec.unschedulable" => one(text(field).or(Some("false".into()))),
        "status.replicas" => one(text(field).or(Some("0".into()))),
        "status.successful" => one(text("status.succeeded").or(Some("0".into()))),
        "status.podIP" => one(text(field).or_else(|| text_of_first_pod_ip(obj))),
        "status.podIPs" => {
            let ips: Vec<String> = lookup(obj, "status.podIPs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.get("ip").and_then(scalar))
                        .collect()
                })
                .unwrap_or_default();
            if ips.is_empty() {
                vec![String::new()]
            } else {
                ips
            }
        }
        "source" => one(text("source.component")
            .filter(|s| !s.is_empty())
            .or_else(|| text("reportingComponent"))
            .or_else(|| text("deprecatedSource.component").filter(|s| !s.is_empty()))
            .or_else(|| text("reportingController"))),
        "reportingComponent" | "reportingController" => {
            one(text("reportingComponent").or_else(|| text("reportingController")))
        }
        f => {
            if let Some(rest) = f.strip_prefix("involvedObject.") {
                one(text(f).or_else(|| text(&format!("regarding.{rest}"))))
            } else if let Some(rest) = f.strip_prefix("regarding.") {
                one(text(f).or_else(|| text(&format!("involvedObject.{rest}"))))
            } else {
                one(text(f))
            }
        }
    }
}

fn text_of_first_pod_ip(obj: &Value) -> Option<String> {
    scalar(lookup(obj, "status.podIPs")?.get(0)?.get("ip")?)
}

fn lookup<'a>(obj: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(obj, |v, k| v.get(k))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Split on commas not preceded by a backslash; escapes stay in place.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first operator occurrence splits the term; `!=` and `==` are tried
/// before `=` at each position so `a==b` does not leave `=b` as the value.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOp::NotEquals),
            ("==", FieldOp::Equals),
            ("=", FieldOp::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, rhs));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    ))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {c}"
                ))
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// The inverse of `unescape_value`, for printing a selector back.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap()
    }

    #[test]
    fn parses_terms_and_escapes() {
        let s = sel("spec.nodeName=n1,status.phase!=Failed,metadata.name==a");
        assert_eq!(s.requirements().len(), 3);
        assert_eq!(s.exact_value("spec.nodeName"), Some("n1"));
        assert_eq!(s.exact_value("metadata.name"), Some("a"));
        assert_eq!(s.exact_value("status.phase"), None);
        assert_eq!(
            s.to_string(),
            "metadata.name=a,spec.nodeName=n1,status.phase!=Failed"
        );

        let s = sel(r"metadata.name=a\,b\=c\\d");
        assert_eq!(s.requirements()[0].value, r"a,b=c\d");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert!(sel("").is_empty());
        assert!(sel(",").is_empty());
        assert_eq!(sel("a=").requirements()[0].value, "");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            FieldSelector::parse("foo").unwrap_err(),
            "invalid selector: 'foo'; can't understand 'foo'"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            "invalid field selector: unescaped character in value: ="
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \"
        );
    }

    #[test]
    fn supported_fields_per_resource() {
        assert!(sel("metadata.name=a,metadata.namespace=b")
            .validate_for("apps", "deployments")
            .is_ok());
        assert!(sel("spec.nodeName=a,status.podIPs=1.2.3.4")
            .validate_for("", "pods")
            .is_ok());
        assert_eq!(
            sel("spec.nodeName=a")
                .validate_for("apps", "deployments")
                .unwrap_err(),
            "field label not supported: spec.nodeName"
        );
        assert!(sel("involvedObject.name=x,source=kubelet")
            .validate_for("", "events")
            .is_ok());
        assert!(sel("regarding.name=x")
            .validate_for("events.k8s.io", "events")
            .is_ok());
        assert!(sel("regarding.name=x").validate_for("", "events").is_err());
        assert!(sel("type=Opaque").validate_for("", "secrets").is_ok());
        assert!(sel("spec.unschedulable=true")
            .validate_for("", "nodes")
            .is_ok());
        assert!(sel("status.phase=Active")
            .validate_for("", "namespaces")
            .is_ok());
        assert!(sel("status.replicas=0")
            .validate_for("apps", "replicasets")
            .is_ok());
        assert!(sel("status.replicas=0")
            .validate_for("", "replicationcontrollers")
            .is_ok());
        assert!(sel("status.successful=1")
            .validate_for("batch", "jobs")
            .is_ok());
        assert!(sel("spec.signerName=x")
            .validate_for("certificates.k8s.io", "certificatesigningrequests")
            .is_ok());
        assert!(sel("status.phase=x")
            .validate_for("", "configmaps")
            .is_err());
    }

    #[test]
    fn matches_pods() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}]}
        });
        assert!(sel("spec.nodeName=n1,metadata.namespace=default").matches(&pod));
        assert!(sel("spec.hostNetwork=false").matches(&pod));
        assert!(!sel("spec.hostNetwork=true").matches(&pod));
        assert!(sel("status.podIPs=fd00::5").matches(&pod));
        assert!(!sel("status.podIPs!=fd00::5").matches(&pod));
        assert!(sel("status.podIP=10.42.0.5").matches(&pod));
        assert!(sel("status.phase!=Pending").matches(&pod));
        assert!(!sel("spec.nodeName=").matches(&pod));
        assert!(sel("spec.nodeName=").matches(&json!({"spec": {}})));
    }

    #[test]
    fn matches_counts_bools_and_events() {
        assert!(sel("status.replicas=0").matches(&json!({"status": {}})));
        assert!(sel("status.replicas=3").matches(&json!({"status": {"replicas": 3}})));
        assert!(sel("status.successful=1").matches(&json!({"status": {"succeeded": 1}})));
        assert!(sel("spec.unschedulable=true").matches(&json!({"spec": {"unschedulable": true}})));

        let core = json!({
            "involvedObject": {"kind": "Pod", "name": "p"},
            "source": {"component": "kubelet"},
            "reportingComponent": "",
            "type": "Normal"
        });
        assert!(sel("involvedObject.kind=Pod,source=kubelet,type=Normal").matches(&core));
        assert!(sel("regarding.name=p").matches(&core));
        let new =
            json!({"regarding": {"kind": "Pod", "name": "p"}, "reportingController": "sched"});
        assert!(sel("involvedObject.name=p,reportingController=sched,source=sched").matches(&new));
    }
}
