//! Control loops, each a task talking to the API through a kube client.
pub mod crd;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod informers;
pub mod job;
pub mod localpath;
pub mod namespace;
pub mod namespace_defaults;
pub mod nodelifecycle;
pub mod podfailure;
pub mod pods;
pub mod replicaset;
pub mod revisions;
pub mod statefulset;
pub mod volumebinder;
pub mod writes;

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use kube::Client;

/// Starts every control loop of `kone server` and the scheduler; loops
/// built on watched state share one set of informers.
/// `ca_pem` is the API server's CA, published in every namespace;
/// local-path volumes go under `storage_dir`.
pub fn start(client: Client, ca_pem: String, storage_dir: PathBuf) {
    let informers = informers::Informers::new(client.clone());
    tokio::spawn(namespace::run(client.clone()));
    tokio::spawn(crd::run(client.clone()));
    tokio::spawn(events::run_ttl(client));
    tokio::spawn(namespace_defaults::run(informers.clone(), ca_pem));
    tokio::spawn(endpoints::run(informers.clone()));
    tokio::spawn(nodelifecycle::run(informers.clone()));
    tokio::spawn(gc::run(informers.clone()));
    tokio::spawn(replicaset::run::<ReplicaSet>(
        informers.clone(),
        "replicaset-controller",
    ));
    tokio::spawn(replicaset::run::<ReplicationController>(
        informers.clone(),
        "replication-controller",
    ));
    tokio::spawn(deployment::run(informers.clone()));
    tokio::spawn(statefulset::run(informers.clone()));
    tokio::spawn(daemonset::run(informers.clone()));
    tokio::spawn(volumebinder::run(informers.clone(), storage_dir));
    tokio::spawn(job::run(informers.clone()));
    tokio::spawn(cronjob::run(informers.clone()));
    tokio::spawn(crate::scheduler::run(informers));
}
