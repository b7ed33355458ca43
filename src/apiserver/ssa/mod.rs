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

use serde_json::Value;

use crate::api::registry::ResourceInfo;
use crate::apiserver::status::{ApiError, ApiResult};
use types::{TyRef, Types};
use walk::Scope;

pub use managed::manager;

/// Who writes which object, through which subresource.
pub struct Target<'a> {
    pub info: &'a ResourceInfo,
    pub manager: &'a str,
    pub subresource: Option<&'a str>,
}

/// The type of a resource: built-in, or from a CRD's schema.
enum TypeOf {
    Builtin(TyRef<'static>),
    Custom(Types),
}

impl TypeOf {
    fn of(info: &ResourceInfo) -> TypeOf {
        match &info.custom {
            Some(c) => TypeOf::Custom(Types::from_crd(c.schema.as_ref())),
            None => TypeOf::Builtin(types::builtin().kind(&info.api_version(), info.kind)),
        }
    }

    fn root(&self) -> TyRef<'_> {
        match self {
            TypeOf::Builtin(t) => *t,
            TypeOf::Custom(t) => t.root(),
        }
    }
}

impl Target<'_> {
    fn with_writer<R>(&self, f: impl FnOnce(&managed::Writer) -> R) -> R {
        let ty = TypeOf::of(self.info);
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
            ty: ty.root(),
        })
    }
}

/// Record an ordinary write in `new`'s managedFields.
pub fn record_update(t: &Target, old: Option<&Value>, new: &mut Value) {
    t.with_writer(|w| managed::record_update(w, old, new))
}

/// The object an apply configuration asks for (before defaulting).
pub fn merge_apply(t: &Target, live: &Value, config: &Value) -> Value {
    t.with_writer(|w| managed::merge_apply(w, live, config))
}

/// Settle ownership after an apply, or refuse it with a 409 conflict.
pub fn record_apply(
    t: &Target,
    force: bool,
    config: &Value,
    live: Option<&Value>,
    new: &mut Value,
) -> ApiResult<()> {
    t.with_writer(|w| managed::record_apply(w, force, config, live, new))
}

/// A 409 from an apply's field conflicts (not worth retrying), as opposed
/// to one from a concurrent writer.
pub fn is_apply_conflict(e: &ApiError) -> bool {
    e.code == 409 && e.message.starts_with("Apply failed")
}
