//! Prometheus metrics of the API server, served at /metrics.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::datastore::StoreStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub resource: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<VerbLabels, Histogram>,
    pub watches: Gauge<i64, AtomicI64>,
    revision: Gauge<i64, AtomicI64>,
    db_size: Gauge<i64, AtomicI64>,
    live_keys: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<VerbLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
            ])
        });
        let watches = Gauge::default();
        let revision = Gauge::default();
        let db_size = Gauge::default();
        let live_keys = Gauge::default();
        registry.register(
            "apiserver_request",
            "API requests by verb, resource and code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "API request latency by verb (watches excluded)",
            latency.clone(),
        );
        registry.register(
            "apiserver_registered_watchers",
            "Open watches",
            watches.clone(),
        );
        registry.register(
            "kone_store_revision",
            "Current datastore revision",
            revision.clone(),
        );
        registry.register(
            "kone_store_size_bytes",
            "Datastore file size",
            db_size.clone(),
        );
        registry.register(
            "kone_store_live_keys",
            "Live keys in the datastore",
            live_keys.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            watches,
            revision,
            db_size,
            live_keys,
        }
    }
}

impl Metrics {
    pub fn observe(&self, verb: &str, resource: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                resource: resource.to_string(),
                code: code.to_string(),
            })
            .inc();
        if verb != "WATCH" {
            self.latency
                .get_or_create(&VerbLabels {
                    verb: verb.to_string(),
                })
                .observe(seconds);
        }
    }

    pub fn render(&self, stats: &StoreStats) -> String {
        self.revision.set(stats.current_revision);
        self.db_size.set(stats.db_size_bytes as i64);
        self.live_keys.set(stats.live_keys as i64);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
