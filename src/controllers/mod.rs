//! Control loops, each a task talking to the API through a kube client.
pub mod crd;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod informers;
pub mod job;
pub mod leader;
pub mod localpath;
pub mod namespace;
pub mod namespace_defaults;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod nodepassword;
pub mod podautoscaler;
pub mod podfailure;
pub mod pods;
pub mod replicaset;
pub mod resourcequota;
pub mod retry;
pub mod revisions;
pub mod statefulset;
pub mod tainteviction;
pub mod volumebinder;
pub mod writes;

use std::path::PathBuf;

use ipnet::Ipv4Net;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use kube::Client;

/// What the control loops need to know about the cluster.
pub struct Settings {
    /// The API server's CA, published in every namespace.
    pub ca_pem: String,
    /// Pod ranges of the nodes are cut from it.
    pub cluster_cidr: Ipv4Net,
    /// Who holds the leader Leases (stable across restarts, so a restarted
    /// server takes its own Leases back at once).
    pub identity: String,
    /// Local-path volumes go under it.
    pub storage_dir: PathBuf,
}

/// Starts every control loop of `kone server` and the scheduler; loops
/// built on watched state share one set of informers. The controller
/// manager's loops and the scheduler each run only while this process
/// holds their Lease (kube-controller-manager, kube-scheduler); the CRD
/// name controller and the event TTL belong to the API server and always run.
pub fn start(client: Client, settings: Settings) {
    let informers = informers::Informers::new(client.clone());
    tokio::spawn(crd::run(client.clone()));
    tokio::spawn(events::run_ttl(client.clone()));
    let manager = leader::Elector::new(
        client.clone(),
        "kube-controller-manager",
        &settings.identity,
    );
    let scheduler = leader::Elector::new(client.clone(), "kube-scheduler", &settings.identity);
    let (ca_pem, cidr, storage) = (settings.ca_pem, settings.cluster_cidr, settings.storage_dir);
    let shared = informers.clone();
    tokio::spawn(manager.run(move |loops| {
        let informers = shared.clone();
        loops.spawn(namespace::run(informers.client()));
        loops.spawn(namespace_defaults::run(informers.clone(), ca_pem.clone()));
        loops.spawn(endpoints::run(informers.clone()));
        loops.spawn(nodelifecycle::run(informers.clone()));
        loops.spawn(tainteviction::run(informers.clone()));
        loops.spawn(nodeipam::run(informers.clone(), cidr));
        loops.spawn(nodepassword::run(informers.clone()));
        loops.spawn(gc::run(informers.clone()));
        loops.spawn(replicaset::run::<ReplicaSet>(
            informers.clone(),
            "replicaset-controller",
        ));
        loops.spawn(replicaset::run::<ReplicationController>(
            informers.clone(),
            "replication-controller",
        ));
        loops.spawn(deployment::run(informers.clone()));
        loops.spawn(statefulset::run(informers.clone()));
        loops.spawn(daemonset::run(informers.clone()));
        loops.spawn(volumebinder::run(informers.clone(), storage.clone()));
        loops.spawn(job::run(informers.clone()));
        loops.spawn(cronjob::run(informers.clone()));
        loops.spawn(disruption::run(informers.clone()));
        loops.spawn(resourcequota::run(informers.clone()));
        loops.spawn(podautoscaler::run(informers));
    }));
    tokio::spawn(scheduler.run(move |loops| {
        loops.spawn(crate::scheduler::run(informers.clone()));
    }));
}
