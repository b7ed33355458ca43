//! Cluster identity: certificate authorities, certificates, kubeconfigs,
//! join tokens and static token users.
//!
//! On disk (like k3s's server/tls): server-ca.{crt,key}, client-ca.{crt,key},
//! serving-kube-apiserver.{crt,key}, client-admin.{crt,key}; keys are 0600
//! and the directory 0700. The join token lives at server/token.

mod ca;
mod certs;
pub(crate) mod fsutil;
mod kubeconfig;
mod node;
mod sans;
pub mod satoken;
mod store;
mod tls;
mod token;
mod tokenfile;
mod user;

pub use kubeconfig::{kubeconfig_yaml, kubeconfig_yaml_for, write_kubeconfig};
pub use node::{node_cert_problem, KeptCert};
pub use sans::{default_sans, SanConfig};
pub use satoken::TokenIssuer;
pub use store::{ensure_identity, Identity, ADMIN_GROUP, ADMIN_USER};
pub use tls::{install_crypto_provider, server_tls_config};
pub use token::{
    ensure_server_token, format_server_token, parse_token, parse_token_parts, ParsedToken,
};
pub use tokenfile::load_token_auth_file;
pub use user::{user_from_cert_der, UserInfo};

#[cfg(test)]
mod tests;
