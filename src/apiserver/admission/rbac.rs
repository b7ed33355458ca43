//! Role bindings: what they point at is fixed, because changing a
//! binding's role in place would silently re-grant its subjects.

use serde_json::{json, Value};

use super::field_error::FieldError;
use super::json::{arr_at, s, semantic_eq};
use super::syntax::{is_dns1123_subdomain, is_valid_path_segment_name};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `cluster` is true for ClusterRoleBinding, which may only bind
/// ClusterRoles.
pub fn validate_binding(obj: &Value, cluster: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rr = obj.get("roleRef").unwrap_or(&Value::Null);
    let group = s(rr, "apiGroup");
    if group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &json!(group),
            &[RBAC_GROUP],
        ));
    }
    let kind = s(rr, "kind");
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            &json!(kind),
            kinds,
        ));
    }
    let name = s(rr, "name");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for m in is_valid_path_segment_name(name) {
            errs.push(FieldError::invalid_str("roleRef.name", name, &m));
        }
    }
    for (i, sub) in arr_at(obj, "subjects").iter().enumerate() {
        let p = format!("subjects[{i}]");
        let name = s(sub, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        }
        match s(sub, "kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for m in is_dns1123_subdomain(name) {
                        errs.push(FieldError::invalid_str(format!("{p}.name"), name, &m));
                    }
                }
                let g = s(sub, "apiGroup");
                if !g.is_empty() {
                    errs.push(FieldError::not_supported(
                        format!("{p}.apiGroup"),
                        &json!(g),
                        &[""],
                    ));
                }
                if cluster && s(sub, "namespace").is_empty() {
                    errs.push(FieldError::required(format!("{p}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                let g = s(sub, "apiGroup");
                if g != RBAC_GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{p}.apiGroup"),
                        &json!(g),
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{p}.kind"),
                &json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

pub fn validate_binding_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (n, o) = (new.get("roleRef"), old.get("roleRef"));
    if semantic_eq(n, o) {
        return Vec::new();
    }
    let rr = n.unwrap_or(&Value::Null);
    let q = |k: &str| crate::api::labels::go_quote(s(rr, k));
    vec![FieldError::invalid_rendered(
        "roleRef",
        format!(
            "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
            q("apiGroup"),
            q("kind"),
            q("name")
        ),
        "cannot change roleRef",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(role: &str) -> Value {
        json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
               "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
    }

    #[test]
    fn bindings() {
        assert!(validate_binding(&binding("view"), true).is_empty());
        let mut b = binding("view");
        b["roleRef"]["kind"] = json!("Role");
        assert_eq!(
            validate_binding(&b, true)[0].to_string(),
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""
        );
        assert_eq!(
            validate_binding_update(&binding("edit"), &binding("view"))[0].to_string(),
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"
        );
    }
}
