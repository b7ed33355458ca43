//! The node identity an agent keeps between runs, laid out like k3s's
//! agent directory: client-kubelet.{crt,key}, serving-kubelet.{crt,key},
//! client-ca.crt, server-ca.crt, and cluster-cidr. A restarted agent starts
//! from it without the server, so its pods stay supervised while the
//! server is down. Keys are 0600. Each file is replaced atomically; a set
//! torn by a crash between files fails the certificate checks and the
//! agent joins again.

use std::net::IpAddr;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::identity::fsutil::{read_optional, write_atomic};
use crate::identity::{node_cert_problem, KeptCert, ParsedToken};
use crate::join::NodeIdentity;

const CLIENT_CERT: &str = "client-kubelet.crt";
const CLIENT_KEY: &str = "client-kubelet.key";
const SERVING_CERT: &str = "serving-kubelet.crt";
const SERVING_KEY: &str = "serving-kubelet.key";
const CLIENT_CA: &str = "client-ca.crt";
const SERVER_CA: &str = "server-ca.crt";
const CLUSTER_CIDR: &str = "cluster-cidr";

/// The server CA the identity was issued under, and the identity.
#[derive(Clone)]
pub struct Kept {
    pub server_ca: String,
    pub id: NodeIdentity,
}

impl Kept {
    /// Whatever of it is there; None if any part is missing.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Kept>> {
        let read = |name: &str| read_optional(&dir.join(name));
        let (
            Some(client_cert),
            Some(client_key),
            Some(serving_cert),
            Some(serving_key),
            Some(client_ca),
            Some(server_ca),
            Some(cluster_cidr),
        ) = (
            read(CLIENT_CERT)?,
            read(CLIENT_KEY)?,
            read(SERVING_CERT)?,
            read(SERVING_KEY)?,
            read(CLIENT_CA)?,
            read(SERVER_CA)?,
            read(CLUSTER_CIDR)?,
        )
        else {
            return Ok(None);
        };
        Ok(Some(Kept {
            server_ca,
            id: NodeIdentity {
                client_cert,
                client_key,
                serving_cert,
                serving_key,
                client_ca,
                cluster_cidr: cluster_cidr.trim().to_string(),
            },
        }))
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let id = &self.id;
        for (name, contents, mode) in [
            (CLIENT_KEY, &id.client_key, 0o600),
            (CLIENT_CERT, &id.client_cert, 0o644),
            (SERVING_KEY, &id.serving_key, 0o600),
            (SERVING_CERT, &id.serving_cert, 0o644),
            (CLIENT_CA, &id.client_ca, 0o644),
            (SERVER_CA, &self.server_ca, 0o644),
            (CLUSTER_CIDR, &id.cluster_cidr, 0o644),
        ] {
            write_atomic(&dir.join(name), contents.as_bytes(), mode)?;
        }
        Ok(())
    }

    /// Why this identity cannot serve `node_name` at `node_ip` under
    /// `token` any more, or None if it can.
    pub fn problem(&self, token: &ParsedToken, node_name: &str, node_ip: IpAddr) -> Option<String> {
        if let Some(want) = &token.ca_hash {
            let have = hex::encode(Sha256::digest(self.server_ca.as_bytes()));
            if !want.eq_ignore_ascii_case(&have) {
                return Some("the join token pins another server CA".into());
            }
        }
        if self.id.cluster_cidr.parse::<ipnet::Ipv4Net>().is_err() {
            return Some(format!("bad cluster CIDR {:?}", self.id.cluster_cidr));
        }
        node_cert_problem(
            node_name,
            node_ip,
            &KeptCert {
                chain_pem: &self.id.client_cert,
                key_pem: &self.id.client_key,
                ca_pem: &self.id.client_ca,
            },
            &KeptCert {
                chain_pem: &self.id.serving_cert,
                key_pem: &self.id.serving_key,
                ca_pem: &self.server_ca,
            },
        )
    }
}
