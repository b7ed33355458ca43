//! A Job's podFailurePolicy: the first rule matching a failed pod, by the
//! exit codes of its terminated containers or by its conditions (such as
//! DisruptionTarget), says whether the failure fails the Job, is ignored
//! or counts toward backoffLimit (upstream's matchPodFailurePolicy).

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Fail the Job at once, with this message.
    FailJob(String),
    /// Do not count the failure.
    Ignore,
    /// Count it toward backoffLimit (also when no rule matches).
    Count,
}

/// Why a rule matched, in upstream's words, if it did.
fn matches(rule: &PodFailurePolicyRule, pod: &Pod, index: usize) -> Option<String> {
    let status = pod.status.as_ref()?;
    let pod_name = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    if let Some(req) = &rule.on_exit_codes {
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for c in containers {
            let Some(code) = c
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code)
            else {
                continue;
            };
            if code == 0 || req.container_name.as_ref().is_some_and(|n| *n != c.name) {
                continue;
            }
            let listed = req.values.contains(&code);
            if (req.operator == "In") == listed {
                return Some(format!(
                    "Container {} for pod {pod_name} failed with exit code {code} matching {} rule at index {index}",
                    c.name, rule.action
                ));
            }
        }
    }
    for pattern in rule.on_pod_conditions.iter().flatten() {
        let want = if pattern.status.is_empty() {
            "True"
        } else {
            pattern.status.as_str()
        };
        let has = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == pattern.type_ && c.status == want);
        if has {
            return Some(format!(
                "Pod {pod_name} has condition {} matching {} rule at index {index}",
                pattern.type_, rule.action
            ));
        }
    }
    None
}

/// The verdict on one failed pod.
pub fn judge(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::Count;
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        if let Some(message) = matches(rule, pod, i) {
            return match rule.action.as_str() {
                "FailJob" => Verdict::FailJob(message),
                "Ignore" => Verdict::Ignore,
                _ => Verdict::Count,
            };
        }
    }
    Verdict::Count
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> PodFailurePolicy {
        serde_json::from_value(json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}},
        ]}))
        .unwrap()
    }

    fn failed(code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [{
                "name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code}},
            }]},
        }))
        .unwrap()
    }

    #[test]
    fn first_matching_rule_decides() {
        let p = policy();
        assert_eq!(
            judge(Some(&p), &failed(42, json!([]))),
            Verdict::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
                    .into()
            )
        );
        let disrupted = json!([{"type": "DisruptionTarget", "status": "True"}]);
        assert_eq!(judge(Some(&p), &failed(42, disrupted)), Verdict::Ignore);
        assert_eq!(judge(Some(&p), &failed(3, json!([]))), Verdict::Count);
        assert_eq!(judge(Some(&p), &failed(1, json!([]))), Verdict::Ignore);
        assert_eq!(judge(None, &failed(42, json!([]))), Verdict::Count);
    }
}
