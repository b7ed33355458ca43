//! Defaulting and validation of built-in kinds.
//!
//! `defaults` and `validation` are the entry points the write path calls;
//! the other modules hold one concept each.
pub mod config_data;
pub mod crd;
pub mod cron;
pub mod default_class;
pub mod defaults;
pub mod field_error;
pub mod jobs;
mod json;
pub mod limit_range;
pub mod metadata;
pub mod names;
pub mod plugins;
pub mod pod;
pub mod pod_defaults;
pub mod pod_update;
pub mod priority;
pub mod qos;
pub mod quota;
pub mod rbac;
pub mod resources;
pub mod selector;
pub mod service;
pub mod service_account;
pub mod storage;
pub mod syntax;
pub mod tolerations;
pub mod validation;
pub mod workloads;
