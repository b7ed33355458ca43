//! Container resource requests and limits: names, quantities, and
//! requests ≤ limits.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::quantity::{parse_quantity_value, Quantity};

use super::field_error::FieldError;
use super::syntax::is_qualified_name;

/// Resources with a domain prefix outside kubernetes.io are "extended"
/// (GPUs and the like): whole units only, and never overcommitted.
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn overcommit_allowed(name: &str) -> bool {
    !is_extended(name) && !is_hugepages(name)
}

fn validate_name(name: &str, path: &str) -> Vec<FieldError> {
    let mut errs: Vec<FieldError> = is_qualified_name(name)
        .iter()
        .map(|m| FieldError::invalid_str(path, name, m))
        .collect();
    if errs.is_empty()
        && !name.contains('/')
        && !matches!(name, "cpu" | "memory" | "ephemeral-storage")
        && !is_hugepages(name)
    {
        errs.push(FieldError::invalid_str(
            path,
            name,
            "must be a standard resource for containers",
        ));
    }
    errs
}

/// A quantity field: parseable, not negative, whole for extended
/// resources. Returns the quantity when it is usable.
pub fn validate_quantity(name: &str, v: &Value, path: &str) -> (Option<Quantity>, Vec<FieldError>) {
    let q = match parse_quantity_value(v) {
        Ok(q) => q,
        Err(e) => return (None, vec![FieldError::invalid(path, v, &e)]),
    };
    let mut errs = Vec::new();
    if q.is_negative() {
        errs.push(FieldError::invalid_str(
            path,
            &q.canonical(),
            "must be greater than or equal to 0",
        ));
    }
    if is_extended(name) && q.milli_value() % 1000 != 0 {
        errs.push(FieldError::invalid_str(
            path,
            &q.canonical(),
            "must be an integer",
        ));
    }
    (Some(q), errs)
}

fn parse_list(
    list: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    for (name, v) in list.and_then(Value::as_object).into_iter().flatten() {
        let p = format!("{path}[{name}]");
        errs.extend(validate_name(name, &p));
        let (q, e) = validate_quantity(name, v, &p);
        errs.extend(e);
        if let Some(q) = q {
            out.insert(name.clone(), q);
        }
    }
    out
}

/// A container's `resources` at `path`.
pub fn validate_resource_requirements(res: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(res) = res else {
        return errs;
    };
    let lim_path = format!("{path}.limits");
    let req_path = format!("{path}.requests");
    let limits = parse_list(res.get("limits"), &lim_path, &mut errs);
    let requests = parse_list(res.get("requests"), &req_path, &mut errs);
    for (name, req) in &requests {
        match limits.get(name) {
            Some(lim) if !overcommit_allowed(name) && req != lim => {
                errs.push(FieldError::invalid_str(
                    &req_path,
                    &req.canonical(),
                    &format!("must be equal to {name} limit of {}", lim.canonical()),
                ))
            }
            Some(lim) if req > lim => errs.push(FieldError::invalid_str(
                &req_path,
                &req.canonical(),
                &format!(
                    "must be less than or equal to {name} limit of {}",
                    lim.canonical()
                ),
            )),
            None if !overcommit_allowed(name) => errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            _ => {}
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(res: Value) -> Vec<String> {
        validate_resource_requirements(Some(&res), "spec.containers[0].resources")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn requests_within_limits() {
        assert!(errs(json!({"requests": {"cpu": "500m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}))
            .is_empty());
        assert_eq!(
            errs(json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})),
            vec!["spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"]
        );
    }

    #[test]
    fn bad_quantities_and_names() {
        let e = errs(json!({"limits": {"memory": "1Gb"}}));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(
                "spec.containers[0].resources.limits[memory]: Invalid value: \"1Gb\": "
            ),
            "{e:?}"
        );
        assert_eq!(
            errs(json!({"requests": {"cpu": "-1"}})),
            vec!["spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"]
        );
        assert_eq!(
            errs(json!({"limits": {"cpus": "1"}})),
            vec!["spec.containers[0].resources.limits[cpus]: Invalid value: \"cpus\": must be a standard resource for containers"]
        );
    }

    #[test]
    fn extended_resources() {
        assert!(errs(
            json!({"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}})
        )
        .is_empty());
        assert_eq!(errs(json!({"requests": {"nvidia.com/gpu": "1"}})).len(), 1);
        assert_eq!(errs(json!({"limits": {"nvidia.com/gpu": "500m"}})).len(), 1);
    }
}
