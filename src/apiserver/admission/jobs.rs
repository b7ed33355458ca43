//! Jobs and CronJobs: run-to-completion pods, so templates must not
//! restart forever, and a Job's pods are fixed once it starts.

use serde_json::{json, Value};

use crate::api::labels::LabelSelector;

use super::cron::CronSchedule;
use super::field_error::{go_label_selector, FieldError};
use super::json::{s, semantic_eq};
use super::pod::validate_pod_template;
use super::selector::{template_matches, validate_label_selector};
use super::syntax::max_len_error;

fn nonnegative(spec: &Value, key: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(v) = spec.get(key).and_then(Value::as_i64) {
        if v < 0 {
            errs.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(v),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// The parts of a Job spec checked both for Jobs and CronJob templates.
fn validate_job_spec_common(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        nonnegative(spec, key, path, errs);
    }
    if let Some(ads) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if ads <= 0 {
            errs.push(FieldError::invalid(
                format!("{path}.activeDeadlineSeconds"),
                &json!(ads),
                "must be greater than zero",
            ));
        }
    }
    match spec.get("completionMode").and_then(Value::as_str) {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.get("completions").is_none_or(Value::is_null) {
                errs.push(FieldError::required(
                    format!("{path}.completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            format!("{path}.completionMode"),
            &json!(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(p) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        if p != "TerminatingOrFailed" && p != "Failed" {
            errs.push(FieldError::not_supported(
                format!("{path}.podReplacementPolicy"),
                &json!(p),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let tpath = format!("{path}.template");
    let template = spec.get("template").filter(|t| !t.is_null());
    errs.extend(validate_pod_template(template, &tpath));
    if let Some(t) = template {
        let rp = t
            .pointer("/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("");
        if rp != "OnFailure" && rp != "Never" {
            errs.push(FieldError::not_supported(
                format!("{tpath}.spec.restartPolicy"),
                &json!(rp),
                &["OnFailure", "Never"],
            ));
        }
    }
}

/// A Job after `default_job_selector` ran: its selector must exist and
/// select the template's pods.
pub fn validate_job(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    match spec.get("selector").filter(|v| !v.is_null()) {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            let syntax = validate_label_selector(sel, "spec.selector");
            if syntax.is_empty() {
                if let Ok(ls) = LabelSelector::from_label_selector_json(sel) {
                    errs.extend(template_matches(&ls, spec.get("template"), "spec.template"));
                }
            }
            errs.extend(syntax);
        }
    }
    validate_job_spec_common(spec, "spec", &mut errs);
    errs
}

/// A running Job keeps its pods' shape: selector, template, completions
/// and completion mode are fixed.
pub fn validate_job_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (ns, os) = (
        new.get("spec").unwrap_or(&Value::Null),
        old.get("spec").unwrap_or(&Value::Null),
    );
    if !semantic_eq(ns.get("selector"), os.get("selector")) {
        errs.push(FieldError::invalid_rendered(
            "spec.selector",
            go_label_selector(ns.get("selector")),
            "field is immutable",
        ));
    }
    for key in [
        "completions",
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
    ] {
        if !semantic_eq(ns.get(key), os.get(key)) {
            errs.push(FieldError::invalid(
                format!("spec.{key}"),
                ns.get(key).unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
    if !semantic_eq(ns.get("template"), os.get("template")) {
        errs.push(FieldError::invalid(
            "spec.template",
            ns.get("template").unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
    errs
}

pub fn validate_cron_job(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // Job names get an 11-character timestamp suffix and must stay label
    // values (63).
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.len() > 52 {
        errs.push(FieldError::invalid_str(
            "metadata.name",
            name,
            &max_len_error(52),
        ));
    }
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let schedule = s(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        if let Err(e) = CronSchedule::parse(schedule) {
            errs.push(FieldError::invalid_str("spec.schedule", schedule, &e));
        }
        if schedule.contains("TZ") {
            errs.push(FieldError::invalid_str(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    match s(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            &json!(other),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        nonnegative(spec, key, "spec", &mut errs);
    }
    if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
        if tz.is_empty() || tz.contains(' ') || tz.starts_with('/') || tz.contains("..") {
            errs.push(FieldError::invalid_str(
                "spec.timeZone",
                tz,
                "unknown time zone",
            ));
        }
    }
    let jt = spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null);
    if let Some(sel) = jt.get("selector").filter(|v| !v.is_null()) {
        if jt.get("manualSelector").and_then(Value::as_bool) != Some(true) {
            errs.push(FieldError::invalid_rendered(
                "spec.jobTemplate.spec.selector",
                go_label_selector(Some(sel)),
                "`selector` will be auto-generated",
            ));
        }
    }
    validate_job_spec_common(jt, "spec.jobTemplate.spec", &mut errs);
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::admission::defaults::{apply_defaults, default_job_selector};

    fn job() -> Value {
        let mut j = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "pi", "image": "perl"}]
        }}}});
        apply_defaults("batch", "Job", &mut j);
        default_job_selector(&mut j, "u-1");
        j
    }

    fn text(e: Vec<FieldError>) -> Vec<String> {
        e.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaulted_job_is_valid() {
        assert_eq!(text(validate_job(&job())), Vec::<String>::new());
    }

    #[test]
    fn job_rules() {
        let mut j = job();
        j["spec"]["parallelism"] = json!(-1);
        j["spec"]["backoffLimit"] = json!(-2);
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        assert_eq!(
            text(validate_job(&j)),
            vec![
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            ]
        );
        let mut j = job();
        j["spec"]["selector"] = json!({"matchLabels": {"x": "y"}});
        assert_eq!(validate_job(&j)[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn job_template_immutable() {
        let old = job();
        let mut new = job();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
        new["spec"]["completions"] = json!(3);
        let e = text(validate_job_update(&new, &old));
        assert_eq!(
            e[0],
            "spec.completions: Invalid value: 3: field is immutable"
        );
        assert!(e[1].starts_with("spec.template: Invalid value: "));
        assert!(e[1].ends_with(": field is immutable"));
        let mut new = job();
        new["spec"]["suspend"] = json!(true);
        assert!(validate_job_update(&new, &old).is_empty());
    }

    #[test]
    fn cron_job_rules() {
        let mut cj = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]
        }}}}}});
        apply_defaults("batch", "CronJob", &mut cj);
        assert_eq!(text(validate_cron_job(&cj)), Vec::<String>::new());
        cj["spec"]["schedule"] = json!("61 * * * *");
        assert_eq!(
            text(validate_cron_job(&cj)),
            vec!["spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"]
        );
        cj["spec"]["schedule"] = json!("");
        cj["spec"]["concurrencyPolicy"] = json!("Sometimes");
        cj["metadata"]["name"] = json!("x".repeat(53));
        let e = text(validate_cron_job(&cj));
        assert_eq!(
            e[0],
            format!(
                "metadata.name: Invalid value: \"{}\": must be no more than 52 characters",
                "x".repeat(53)
            )
        );
        assert_eq!(e[1], "spec.schedule: Required value");
        assert!(e[2].starts_with("spec.concurrencyPolicy: Unsupported value: \"Sometimes\""));
        cj["spec"]["schedule"] = json!("@daily");
        cj["spec"]["concurrencyPolicy"] = json!("Forbid");
        cj["metadata"]["name"] = json!("c");
        assert!(validate_cron_job(&cj).is_empty());
        cj["spec"]["schedule"] = json!("TZ=UTC 0 * * * *");
        assert_eq!(
            text(validate_cron_job(&cj)),
            vec!["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]
        );
    }
}
