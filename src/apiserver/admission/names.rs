//! Which names each kind accepts. Names end up in DNS (Services,
//! Namespaces), in label values, in file paths and in URLs, so upstream
//! gives each kind the strictest rule its uses demand.

use super::field_error::FieldError;
use super::syntax::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_valid_path_segment_name,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// Most kinds: `example.com`-like, up to 253 characters.
    DNS1123Subdomain,
    /// Namespaces: a single DNS label.
    DNS1123Label,
    /// Services: a DNS label that starts with a letter.
    DNS1035Label,
    /// RBAC kinds: anything that is a safe URL path segment
    /// (`system:controller:foo` is fine).
    PathSegment,
    /// Kinds that are never stored (reviews) and need no name.
    None,
}

pub fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::DNS1123Label,
        ("", "Service") => NameRule::DNS1035Label,
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => NameRule::PathSegment,
        ("authentication.k8s.io", "TokenReview" | "SelfSubjectReview")
        | (
            "authorization.k8s.io",
            "SubjectAccessReview"
            | "SelfSubjectAccessReview"
            | "LocalSubjectAccessReview"
            | "SelfSubjectRulesReview",
        ) => NameRule::None,
        _ => NameRule::DNS1123Subdomain,
    }
}

/// Problems with `name` under `rule`. With `prefix`, the name is a
/// generateName prefix, which may end in `-` because a suffix follows.
pub fn name_problems(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    let masked;
    let name = if prefix && name.ends_with('-') && rule != NameRule::PathSegment {
        // Upstream's maskTrailingDash: a trailing dash stands for the
        // random suffix to come.
        masked = format!("{}a", &name[..name.len() - 1]);
        masked.as_str()
    } else {
        name
    };
    match rule {
        NameRule::DNS1123Subdomain => is_dns1123_subdomain(name),
        NameRule::DNS1123Label => is_dns1123_label(name),
        NameRule::DNS1035Label => is_dns1035_label(name),
        NameRule::PathSegment => is_valid_path_segment_name(name),
        NameRule::None => Vec::new(),
    }
}

/// `metadata.name` errors for a new object's name.
pub fn validate_name(rule: NameRule, name: &str) -> Vec<FieldError> {
    if rule == NameRule::None {
        return Vec::new();
    }
    if name.is_empty() {
        return vec![FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )];
    }
    name_problems(rule, name, false)
        .iter()
        .map(|m| FieldError::invalid_str("metadata.name", name, m))
        .collect()
}

/// `metadata.generateName` errors.
pub fn validate_generate_name(rule: NameRule, prefix: &str) -> Vec<FieldError> {
    name_problems(rule, prefix, true)
        .iter()
        .map(|m| FieldError::invalid_str("metadata.generateName", prefix, m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_per_kind() {
        assert_eq!(name_rule("", "Pod"), NameRule::DNS1123Subdomain);
        assert_eq!(name_rule("", "Namespace"), NameRule::DNS1123Label);
        assert_eq!(name_rule("", "Service"), NameRule::DNS1035Label);
        assert_eq!(
            name_rule("rbac.authorization.k8s.io", "ClusterRole"),
            NameRule::PathSegment
        );
        assert_eq!(name_rule("apps", "Deployment"), NameRule::DNS1123Subdomain);
    }

    #[test]
    fn name_messages() {
        let e = validate_name(NameRule::DNS1123Subdomain, "Foo_bar");
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_string(),
            "metadata.name: Invalid value: \"Foo_bar\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(e[0].reason, "FieldValueInvalid");
        let e = validate_name(NameRule::DNS1123Label, "a.b");
        assert_eq!(
            e[0].message,
            "Invalid value: \"a.b\": must not contain dots"
        );
        assert!(validate_name(NameRule::DNS1035Label, "1abc")[0]
            .message
            .contains("DNS-1035"));
        assert!(validate_name(NameRule::PathSegment, "system:kube-proxy").is_empty());
        assert_eq!(
            validate_name(NameRule::PathSegment, "..")[0].message,
            "Invalid value: \"..\": may not be '..'"
        );
        let e = validate_name(NameRule::DNS1123Subdomain, "");
        assert_eq!(
            e[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert!(validate_generate_name(NameRule::DNS1123Subdomain, "web-").is_empty());
        assert!(!validate_generate_name(NameRule::DNS1123Subdomain, "Web-").is_empty());
    }
}
