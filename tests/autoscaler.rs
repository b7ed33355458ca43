//! HorizontalPodAutoscaler without a metrics API: the target is kept
//! within minReplicas..maxReplicas and the status says why it cannot do
//! more, as upstream reports missing metrics.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

fn get(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&all)).expect("kubectl json")
}

fn condition<'a>(hpa: &'a Value, type_: &str) -> Option<&'a Value> {
    hpa["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[test]
fn autoscaler_honours_bounds_and_reports_missing_metrics() {
    let s = Server::start();
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=kone.test/busybox:1",
        "--replicas=1",
    ]);
    s.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=4",
        "--cpu-percent=50",
    ]);

    let deadline = Instant::now() + Duration::from_secs(60);
    let hpa = loop {
        let replicas = get(&s, &["get", "deployment", "web"])["spec"]["replicas"].clone();
        let hpa = get(&s, &["get", "hpa.v2.autoscaling", "web"]);
        let inactive = condition(&hpa, "ScalingActive").is_some_and(|c| c["status"] == "False");
        if replicas == 2 && inactive {
            break hpa;
        }
        assert!(Instant::now() < deadline, "replicas {replicas}, hpa {hpa}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let able = condition(&hpa, "AbleToScale").expect("AbleToScale");
    assert_eq!(able["status"], "True", "{hpa}");
    let active = condition(&hpa, "ScalingActive").expect("ScalingActive");
    assert_eq!(active["reason"], "FailedGetResourceMetric", "{hpa}");
    let message = active["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu"),
        "{message}"
    );
    assert_eq!(hpa["status"]["desiredReplicas"], 2, "{hpa}");

    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=HorizontalPodAutoscaler",
    ]);
    assert!(
        events.contains("New size: 2; reason: Current number of replicas below Spec.MinReplicas"),
        "{events}"
    );
    assert!(events.contains("FailedGetResourceMetric"), "{events}");

    // Above the maximum comes back down to it.
    s.ok(&["scale", "deployment", "web", "--replicas=7"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&s, &["get", "deployment", "web"])["spec"]["replicas"] != 4 {
        assert!(
            Instant::now() < deadline,
            "never scaled down to maxReplicas"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
