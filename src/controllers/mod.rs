//! Control loops, each a task talking to the API through a kube client.
pub mod crd;
pub mod cronjob;
pub mod deployment;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod informers;
pub mod job;
pub mod namespace;
pub mod pods;
pub mod replicaset;

use kube::Client;

/// Starts every control loop of `kone server` and the scheduler; loops
/// built on watched state share one set of informers.
pub fn start(client: Client) {
    let informers = informers::Informers::new(client.clone());
    tokio::spawn(namespace::run(client.clone()));
    tokio::spawn(crd::run(client.clone()));
    tokio::spawn(events::run_ttl(client));
    tokio::spawn(gc::run(informers.clone()));
    tokio::spawn(replicaset::run(informers.clone()));
    tokio::spawn(deployment::run(informers.clone()));
    tokio::spawn(job::run(informers.clone()));
    tokio::spawn(cronjob::run(informers.clone()));
    tokio::spawn(crate::scheduler::run(informers));
}
