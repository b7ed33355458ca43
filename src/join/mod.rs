//! Joining a node to the cluster, the k3s way: the agent fetches the server
//! CA from `/cacerts` and pins it by the SHA-256 in its join token
//! (`K10<ca-sha256>::server:<secret>`), then proves it knows the secret
//! (HTTP Basic `node:<secret>`) to get its node identity: a client
//! certificate `system:node:<name>` in `system:nodes`, a kubelet serving
//! certificate from the server CA, the client CA its kubelet trusts the API
//! server's calls with, and its podCIDR.

pub mod client;
pub mod password;
pub mod serve;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub const CACERTS_PATH: &str = "/cacerts";
pub const NODE_IDENTITY_PATH: &str = "/v1-kone/node-identity";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    pub node_name: String,
    pub node_ip: IpAddr,
    /// The agent's own random password (see password.rs).
    pub node_password: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeIdentity {
    pub client_cert: String,
    pub client_key: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub client_ca: String,
    /// As text (ipnet is built without its serde feature). The node's own
    /// podCIDR comes later from the node IPAM controller.
    pub cluster_cidr: String,
}
