//! Events as client-go's recorder writes them: core/v1 Events (what
//! `kubectl describe` and `kubectl get events` read), repeats folded into
//! one object with a growing count, and a TTL that removes old ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

/// kube-apiserver's default --event-ttl.
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// Repeats remembered for folding; client-go's cache holds 4096 too.
const MAX_REMEMBERED: usize = 4096;

/// Normal or Warning, as upstream spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct RepeatKey {
    uid: String,
    kind: String,
    namespace: String,
    name: String,
    field_path: Option<String>,
    reason: String,
    message: String,
    type_: EventType,
}

struct Remembered {
    event_name: String,
    count: i32,
}

/// Records events for one component (`default-scheduler`,
/// `deployment-controller`, `kubelet`, …).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: Option<String>,
    seen: Arc<Mutex<HashMap<RepeatKey, Remembered>>>,
}

impl Recorder {
    pub fn new(client: Client, component: &str) -> Self {
        Self {
            client,
            component: component.to_string(),
            host: None,
            seen: Arc::default(),
        }
    }

    /// The node a kubelet's events come from (`source.host`).
    pub fn on_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }

    /// Records an event about `obj`. Failures are logged, never returned:
    /// an event is a courtesy, and losing one must not fail a reconcile.
    pub async fn record<K>(&self, obj: &K, type_: EventType, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        self.record_reference(object_reference(obj), type_, reason, message)
            .await
    }

    /// Records an event about what `target` points at, which may be a part
    /// of an object (a kubelet's `spec.containers{name}`).
    pub async fn record_reference(
        &self,
        target: ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        if let Err(error) = self.write(target, type_, reason, message).await {
            tracing::debug!(component = %self.component, reason, %error, "event not recorded");
        }
    }

    async fn write(
        &self,
        target: ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let namespace = target
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let key = RepeatKey {
            uid: target.uid.clone().unwrap_or_default(),
            kind: target.kind.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            name: target.name.clone().unwrap_or_default(),
            field_path: target.field_path.clone(),
            reason: reason.to_string(),
            message: message.to_string(),
            type_,
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Timestamp::now();
        let repeat = self.remembered(&key);
        if let Some((event_name, count)) = repeat {
            let patch = json!({"count": count + 1, "lastTimestamp": Time(now)});
            match api
                .patch(&event_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(key, event_name, count + 1);
                    return Ok(());
                }
                // Gone (TTL or someone deleted it): start a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event_name = format!(
            "{}.{:x}",
            target.name.as_deref().unwrap_or("object"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name.clone()),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: target,
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(type_.as_str().to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            ..Default::default()
        };
        api.create(&PostParams::default(), &event).await?;
        self.remember(key, event_name, 1);
        Ok(())
    }

    fn remembered(&self, key: &RepeatKey) -> Option<(String, i32)> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(key).map(|r| (r.event_name.clone(), r.count))
    }

    fn remember(&self, key: RepeatKey, event_name: String, count: i32) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_REMEMBERED && !seen.contains_key(&key) {
            // Forgetting everything is cheap and only costs a new event
            // object for the next repeat of each.
            seen.clear();
        }
        seen.insert(key, Remembered { event_name, count });
    }
}

/// The reference an event points at, as client-go's reference.GetReference builds it.
pub fn object_reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(K::kind(&()).to_string()),
        name: Some(obj.name_any()),
        namespace: obj.namespace(),
        uid: obj.uid(),
        resource_version: obj.resource_version(),
        field_path: None,
    }
}

/// Removes events whose last occurrence is older than the TTL.
pub async fn run_ttl(client: Client) {
    let api: Api<Event> = Api::all(client.clone());
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(error) => {
                tracing::warn!(%error, "listing events for the TTL failed");
                continue;
            }
        };
        let cutoff = Timestamp::now() - SignedDuration::from_secs(EVENT_TTL.as_secs() as i64);
        for ev in list.items.iter().filter(|e| last_seen(e) < Some(cutoff)) {
            let ns: Api<Event> = Api::namespaced(
                client.clone(),
                ev.metadata.namespace.as_deref().unwrap_or(""),
            );
            if let Err(error) = ns.delete(&ev.name_any(), &DeleteParams::default()).await {
                tracing::debug!(event = %ev.name_any(), %error, "expired event not deleted");
            }
        }
    }
}

fn last_seen(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}
