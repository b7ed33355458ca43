//! Server-side apply and field ownership (metadata.managedFields), after
//! upstream's sigs.k8s.io/structured-merge-diff: every write records what
//! its manager set, and an apply merges a configuration into the object,
//! removes what the applier dropped, and refuses to change fields another
//! manager owns unless forced.

mod fieldset;
mod managed;
#[cfg(test)]
mod tests;
mod types;
mod walk;

use std::sync::OnceLock;

use serde_json::Value;

use crate::api::registry::ResourceInfo;
use crate::apiserver::status::{ApiError, ApiResult};
use types::{TyRef, Types};
use walk::Scope;

pub use managed::{manager, Managed};

/// Who writes which object, through which subresource.
pub struct Target<'a> {
    pub info: &'a ResourceInfo,
    pub manager: &'a str,
    pub subresource: Option<&'a str>,
}

/// A custom resource version's type, converted from its schema once, on
/// the first write that needs it, rather than on every write (each one
/// records managedFields, which needs the type).
#[derive(Debug, Default)]
pub struct CustomTypes(OnceLock<Types>);

/// The type of a resource: built-in, or from a CRD's schema.
fn type_of(info: &ResourceInfo) -> TyRef<'_> {
    match &info.custom {
        Some(c) => c
            .ssa_types
            .0
            .get_or_init(|| Types::from_crd(c.schema.as_ref()))
            .root(),
        None => types::builtin().kind(&info.api_version(), info.kind),
    }
}

impl Target<'_> {
    fn with_writer<R>(&self, f: impl FnOnce(&managed::Writer) -> R) -> R {
        let api_version = self.info.api_version();
        let scope = match self.subresource {
            Some("status") => Scope::Status,
            _ => Scope::Main {
                status_apart: self.info.has_status,
            },
        };
        f(&managed::Writer {
            manager: self.manager,
            subresource: self.subresource.unwrap_or(""),
            api_version: &api_version,
            scope,
            ty: type_of(self.info),
        })
    }
}

/// Record an ordinary write in `new`'s managedFields.
pub fn record_update(t: &Target, old: Option<&Value>, new: &mut Value) {
    t.with_writer(|w| managed::record_update(w, old, new))
}

/// The object an apply configuration asks for (before defaulting);
/// `managed` holds `live`'s managedFields.
pub fn merge_apply(t: &Target, live: &Value, managed: &Managed, config: &Value) -> Value {
    t.with_writer(|w| managed::merge_apply(w, live, managed, config))
}

/// Settle ownership after an apply, or refuse it with a 409 conflict;
/// `managed` holds `live`'s managedFields.
pub fn record_apply(
    t: &Target,
    force: bool,
    config: &Value,
    live: Option<&Value>,
    managed: &Managed,
    new: &mut Value,
) -> ApiResult<()> {
    t.with_writer(|w| managed::record_apply(w, force, config, live, managed, new))
}

/// A 409 from an apply's field conflicts (not worth retrying), as opposed
/// to one from a concurrent writer.
pub fn is_apply_conflict(e: &ApiError) -> bool {
    e.code == 409 && e.message.starts_with("Apply failed")
}
