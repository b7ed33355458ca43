//! The kubelet's events about pods and their containers (Pulling, Created,
//! Started, Killing, BackOff, Unhealthy, Failed, Evicted), reported as
//! component `kubelet` from this node like upstream's. Pod workers hand them
//! to one task that writes them in order, so a sync never waits on the API
//! for a courtesy.

use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod};
use tokio::sync::mpsc;

pub use crate::controllers::events::EventType;
use crate::controllers::events::{object_reference, Recorder};

struct Item {
    target: ObjectReference,
    type_: EventType,
    reason: &'static str,
    message: String,
}

#[derive(Clone)]
pub struct PodEvents {
    tx: mpsc::UnboundedSender<Item>,
}

impl PodEvents {
    pub fn start(client: kube::Client, node: &str) -> PodEvents {
        let recorder = Recorder::new(client, "kubelet").on_host(node);
        let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
        tokio::spawn(async move {
            while let Some(i) = rx.recv().await {
                recorder
                    .record_reference(i.target, i.type_, i.reason, &i.message)
                    .await;
            }
        });
        PodEvents { tx }
    }

    pub fn pod(&self, pod: &Pod, type_: EventType, reason: &'static str, message: String) {
        self.send(object_reference(pod), type_, reason, message);
    }

    /// An event about one container, pointed at by its field path
    /// (`spec.containers{name}` or `spec.initContainers{name}`) as upstream does.
    pub fn container(
        &self,
        pod: &Pod,
        c: &Container,
        type_: EventType,
        reason: &'static str,
        message: String,
    ) {
        let mut target = object_reference(pod);
        target.field_path = Some(field_path(pod, &c.name));
        self.send(target, type_, reason, message);
    }

    fn send(
        &self,
        target: ObjectReference,
        type_: EventType,
        reason: &'static str,
        message: String,
    ) {
        let _ = self.tx.send(Item {
            target,
            type_,
            reason,
            message,
        });
    }
}

fn field_path(pod: &Pod, name: &str) -> String {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.name == name));
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}
