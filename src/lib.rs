//! kone: Kubernetes in one binary.

pub mod agent;
pub mod api;
pub mod apiserver;
pub mod bootstrap;
pub mod client;
pub mod config;
pub mod controllers;
pub mod datastore;
pub mod identity;
pub mod join;
pub mod kubectl;
pub mod kubelet;
pub mod malloc;
pub mod netinfo;
pub mod reconnect;
pub mod runtime;
pub mod scheduler;
pub mod server;
pub mod streaming;
