//! Joining a node to the cluster, the k3s way: the agent fetches the server
//! CA from `/cacerts` and pins it by the SHA-256 in its join token
//! (`K10<ca-sha256>::server:<secret>`), then proves it knows the secret
//! (HTTP Basic `node:<secret>`) to get its node identity: a client
//! certificate `system:node:<name>` in `system:nodes`, a kubelet serving
//! certificate from the server CA, the client CA its kubelet trusts the API
//! server's calls with, and its podCIDR.

pub mod client;
pub mod serve;

use std::net::IpAddr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub const CACERTS_PATH: &str = "/cacerts";
pub const NODE_IDENTITY_PATH: &str = "/v1-kone/node-identity";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    pub node_name: String,
    pub node_ip: IpAddr,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeIdentity {
    pub client_cert: String,
    pub client_key: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub client_ca: String,
    /// CIDRs as text (ipnet is built without its serde feature).
    pub pod_cidr: String,
    pub cluster_cidr: String,
}

/// The first /24 of the cluster CIDR: the server's own node's.
pub fn first_pod_cidr(cluster: Ipv4Net) -> Ipv4Net {
    cluster
        .subnets(24)
        .ok()
        .and_then(|mut s| s.next())
        .unwrap_or(cluster)
}

/// The first /24 of `cluster` nobody holds.
pub fn free_pod_cidr(cluster: Ipv4Net, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    cluster.subnets(24).ok()?.find(|c| !taken.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_are_handed_out_in_order() {
        let cluster: Ipv4Net = "10.42.0.0/16".parse().unwrap();
        let first = first_pod_cidr(cluster);
        assert_eq!(first.to_string(), "10.42.0.0/24");
        let next = free_pod_cidr(cluster, &[first]).unwrap();
        assert_eq!(next.to_string(), "10.42.1.0/24");
        let small: Ipv4Net = "10.42.0.0/24".parse().unwrap();
        assert_eq!(free_pod_cidr(small, &[small]), None);
    }
}
