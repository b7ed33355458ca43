//! CustomResourceDefinitions: upstream's defaults and the validation that
//! keeps a definition servable (names, versions, structural schemas,
//! subresources, printer columns).

use serde_json::{json, Value};

use super::field_error::FieldError;
use super::syntax::{is_dns1035_label, is_dns1123_subdomain};
use crate::api::crd::Schema;
use crate::apiserver::custom::jsonpath::JsonPath;
use crate::apiserver::custom::validate::validate_at;

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn storage_version(crd: &Value) -> Option<&str> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
}

/// singular, listKind and the conversion strategy as upstream defaults
/// them; the storage version recorded in status.storedVersions.
pub fn default_crd(crd: &mut Value) {
    let kind = text(crd, "/spec/names/kind").to_string();
    if let Some(names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        if !kind.is_empty() {
            if names
                .get("singular")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                names.insert("singular".into(), json!(kind.to_lowercase()));
            }
            if names
                .get("listKind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                names.insert("listKind".into(), json!(format!("{kind}List")));
            }
        }
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        if !spec.get("conversion").is_some_and(Value::is_object) {
            spec.insert("conversion".into(), json!({ "strategy": "None" }));
        }
    }
    if let Some(v) = storage_version(crd).map(String::from) {
        if !crd.get("status").is_some_and(Value::is_object) {
            crd["status"] = json!({});
        }
        let stored = &mut crd["status"]["storedVersions"];
        if !stored.is_array() {
            *stored = json!([]);
        }
        if let Some(list) = stored.as_array_mut() {
            if !list.iter().any(|s| s == v.as_str()) {
                list.push(json!(v));
            }
        }
        // The typed form needs acceptedNames' required fields.
        let accepted = &mut crd["status"]["acceptedNames"];
        if !accepted.is_object() {
            *accepted = json!({ "plural": "", "kind": "" });
        }
    }
}

fn dns1035(errs: &mut Vec<FieldError>, field: &str, value: &str, prefix: &str) {
    let problems = is_dns1035_label(value);
    if !problems.is_empty() {
        errs.push(FieldError::invalid_str(
            field,
            value,
            &format!("{prefix}{}", problems.join(",")),
        ));
    }
}

fn validate_names(names: &Value, errs: &mut Vec<FieldError>) {
    let f = |k: &str| format!("spec.names.{k}");
    for key in ["plural", "singular", "kind", "listKind"] {
        let value = text(names, &format!("/{key}"));
        if value.is_empty() {
            errs.push(FieldError::required(f(key), ""));
            continue;
        }
        match key {
            "kind" | "listKind" => dns1035(
                errs,
                &f(key),
                &value.to_lowercase(),
                "may have mixed case, but should otherwise match: ",
            ),
            _ => dns1035(errs, &f(key), value, ""),
        }
    }
    let kind = text(names, "/kind");
    if !kind.is_empty() && kind == text(names, "/listKind") {
        errs.push(FieldError::invalid_str(
            f("listKind"),
            kind,
            "kind and listKind may not be the same",
        ));
    }
    for list in ["shortNames", "categories"] {
        if let Some(items) = names.get(list).and_then(Value::as_array) {
            for (i, s) in items.iter().enumerate() {
                dns1035(
                    errs,
                    &format!("{}[{i}]", f(list)),
                    s.as_str().unwrap_or(""),
                    "",
                );
            }
        }
    }
}

/// Structural-schema rules kube-apiserver enforces that this server relies
/// on: a typed root object, every field typed, defaults that validate.
fn validate_structure(s: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let ty = text(s, "/type");
    let typeless_ok = s["x-kubernetes-int-or-string"] == true
        || s["x-kubernetes-preserve-unknown-fields"] == true;
    if root {
        if ty.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.type"),
                "must not be empty at the root",
            ));
        } else if ty != "object" {
            errs.push(FieldError::invalid_str(
                format!("{path}.type"),
                ty,
                "must be object at the root",
            ));
        }
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            let p_path = format!("{path}.properties[{k}]");
            let p_ok = p["x-kubernetes-int-or-string"] == true
                || p["x-kubernetes-preserve-unknown-fields"] == true;
            if text(p, "/type").is_empty() && !p_ok {
                errs.push(FieldError::required(
                    format!("{p_path}.type"),
                    "must not be empty for specified object fields",
                ));
            }
            validate_structure(p, &p_path, false, errs);
        }
    }
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        let i_ok = items["x-kubernetes-int-or-string"] == true
            || items["x-kubernetes-preserve-unknown-fields"] == true;
        if text(items, "/type").is_empty() && !i_ok {
            errs.push(FieldError::required(
                format!("{path}.items.type"),
                "must not be empty for specified array items",
            ));
        }
        validate_structure(items, &format!("{path}.items"), false, errs);
    }
    if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
        validate_structure(a, &format!("{path}.additionalProperties"), false, errs);
    }
    if ty.is_empty() && !typeless_ok {
        return;
    }
    if let (Some(d), Ok(schema)) = (s.get("default"), Schema::parse(s)) {
        if !root {
            for e in validate_at(d, &schema, "") {
                errs.push(FieldError::invalid(
                    format!("{path}.default"),
                    d,
                    &e.message,
                ));
            }
        }
    }
}

fn validate_version(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let name = text(v, "/name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        dns1035(errs, &format!("{path}.name"), name, "");
    }
    let schema_path = format!("{path}.schema.openAPIV3Schema");
    match v.pointer("/schema/openAPIV3Schema") {
        Some(s) if s.is_object() => match Schema::parse(s) {
            Ok(_) => validate_structure(s, &schema_path, true, errs),
            Err(e) => errs.push(FieldError::invalid(&schema_path, &json!("..."), &e)),
        },
        _ => errs.push(FieldError::required(&schema_path, "schemas are required")),
    }
    if let Some(scale) = v.pointer("/subresources/scale").filter(|s| s.is_object()) {
        let sp = format!("{path}.subresources.scale");
        for (key, under) in [
            ("specReplicasPath", ".spec."),
            ("statusReplicasPath", ".status."),
        ] {
            let p = text(scale, &format!("/{key}"));
            if p.is_empty() {
                errs.push(FieldError::required(format!("{sp}.{key}"), ""));
            } else if !p.starts_with(under) {
                errs.push(FieldError::invalid_str(
                    format!("{sp}.{key}"),
                    p,
                    &format!("should be a json path under {}", &under[..under.len() - 1]),
                ));
            }
        }
        let sel = text(scale, "/labelSelectorPath");
        if !sel.is_empty() && !sel.starts_with(".spec.") && !sel.starts_with(".status.") {
            errs.push(FieldError::invalid_str(
                format!("{sp}.labelSelectorPath"),
                sel,
                "should be a json path under either .spec or .status",
            ));
        }
    }
    if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
        for (i, c) in cols.iter().enumerate() {
            let cp = format!("{path}.additionalPrinterColumns[{i}]");
            if text(c, "/name").is_empty() {
                errs.push(FieldError::required(format!("{cp}.name"), ""));
            }
            let ty = text(c, "/type");
            let types = ["integer", "number", "string", "boolean", "date"];
            if ty.is_empty() {
                errs.push(FieldError::required(format!("{cp}.type"), ""));
            } else if !types.contains(&ty) {
                errs.push(FieldError::not_supported(
                    format!("{cp}.type"),
                    &json!(ty),
                    &types,
                ));
            }
            let jp = text(c, "/jsonPath");
            if jp.is_empty() {
                errs.push(FieldError::required(format!("{cp}.jsonPath"), ""));
            } else if JsonPath::parse(jp).is_err() {
                errs.push(FieldError::invalid_str(
                    format!("{cp}.jsonPath"),
                    jp,
                    "must be a simple json path",
                ));
            }
        }
    }
}

pub fn validate_crd(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (name, group) = (text(crd, "/metadata/name"), text(crd, "/spec/group"));
    let plural = text(crd, "/spec/names/plural");
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid_str(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !is_dns1123_subdomain(group).is_empty() {
        let why = is_dns1123_subdomain(group).join(",");
        errs.push(FieldError::invalid_str("spec.group", group, &why));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid_str(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    let scope = text(crd, "/spec/scope");
    if scope.is_empty() {
        errs.push(FieldError::required("spec.scope", ""));
    } else if !matches!(scope, "Cluster" | "Namespaced") {
        errs.push(FieldError::not_supported(
            "spec.scope",
            &json!(scope),
            &["Cluster", "Namespaced"],
        ));
    }
    validate_names(
        &crd.pointer("/spec/names").cloned().unwrap_or_default(),
        &mut errs,
    );
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!([]),
            "must have at least one version",
        ));
    } else if versions.iter().filter(|v| v["storage"] == true).count() != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        if versions[..i].iter().any(|p| p["name"] == v["name"]) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &v["name"]));
        }
        validate_version(v, &path, &mut errs);
    }
    let strategy = text(crd, "/spec/conversion/strategy");
    if !strategy.is_empty() && strategy != "None" {
        // Conversion webhooks are not implemented: refuse rather than
        // serve objects unconverted.
        errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            &json!(strategy),
            &["None"],
        ));
    }
    errs
}

pub fn validate_crd_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_crd(new);
    let (scope, was) = (text(new, "/spec/scope"), text(old, "/spec/scope"));
    if scope != was {
        errs.push(FieldError::invalid_str(
            "spec.scope",
            scope,
            "field is immutable",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "replicas": {"type": "integer", "default": 1, "minimum": 0}}}}}}}]},
        })
    }

    #[test]
    fn a_good_definition_is_defaulted_and_passes() {
        let mut c = crd();
        default_crd(&mut c);
        assert_eq!(c["spec"]["names"]["singular"], "crontab");
        assert_eq!(c["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(c["spec"]["conversion"]["strategy"], "None");
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        assert!(validate_crd(&c).is_empty(), "{:?}", validate_crd(&c));
    }

    #[test]
    fn broken_definitions_are_refused() {
        let mut c = crd();
        c["metadata"]["name"] = json!("tabs.stable.example.com");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["x"] = json!({});
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["replicas"]["default"] = json!("one");
        default_crd(&mut c);
        let msgs: Vec<String> = validate_crd(&c).iter().map(|e| e.to_string()).collect();
        assert!(msgs.iter().any(|m| m.starts_with("metadata.name: Invalid value: \"tabs.stable.example.com\": must be spec.names.plural")), "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("must have exactly one version marked as storage version")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m == "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type: Required value: must not be empty for specified object fields"), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.starts_with("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default: Invalid value: \"one\"")), "{msgs:?}");

        let mut c = crd();
        c["spec"]["versions"][0]["schema"] = json!(null);
        c["spec"]["group"] = json!("nodot");
        let msgs: Vec<String> = validate_crd(&c).iter().map(|e| e.to_string()).collect();
        assert!(
            msgs.contains(
                &"spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"
                    .to_string()
            ),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(
                &"spec.group: Invalid value: \"nodot\": should be a domain with at least one dot"
                    .to_string()
            ),
            "{msgs:?}"
        );
    }
}
