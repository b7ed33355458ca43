//! Control loops, each a task talking to the API through a kube client.
pub mod crd;
pub mod cronjob;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod informers;
pub mod job;
pub mod namespace;
pub mod namespace_defaults;
pub mod nodelifecycle;
pub mod podautoscaler;
pub mod pods;
pub mod replicaset;
pub mod resourcequota;

use kube::Client;

/// Starts every control loop of `kone server` and the scheduler; loops
/// built on watched state share one set of informers.
/// `ca_pem` is the API server's CA, published in every namespace.
pub fn start(client: Client, ca_pem: String) {
    let informers = informers::Informers::new(client.clone());
    tokio::spawn(namespace::run(client.clone()));
    tokio::spawn(crd::run(client.clone()));
    tokio::spawn(events::run_ttl(client));
    tokio::spawn(namespace_defaults::run(informers.clone(), ca_pem));
    tokio::spawn(endpoints::run(informers.clone()));
    tokio::spawn(nodelifecycle::run(informers.clone()));
    tokio::spawn(gc::run(informers.clone()));
    tokio::spawn(replicaset::run(informers.clone()));
    tokio::spawn(deployment::run(informers.clone()));
    tokio::spawn(job::run(informers.clone()));
    tokio::spawn(cronjob::run(informers.clone()));
    tokio::spawn(disruption::run(informers.clone()));
    tokio::spawn(resourcequota::run(informers.clone()));
    tokio::spawn(podautoscaler::run(informers.clone()));
    tokio::spawn(crate::scheduler::run(informers));
}
