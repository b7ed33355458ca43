//! Admission plugins that read other objects (upstream's LimitRanger,
//! ServiceAccount, Priority, DefaultTolerationSeconds, DefaultStorageClass
//! and ResourceQuota), run on create after an object's defaults and
//! validation, in upstream's order: the mutating ones first, quota last,
//! once the object is final.

use serde_json::Value;

use crate::api::registry::ResourceInfo;
use crate::apiserver::state::ApiState;
use crate::apiserver::status::{qualified, ApiError, ApiResult};
use crate::apiserver::{object, stored};

use super::{default_class, limit_range, priority, qos, quota, service_account, tolerations};

/// An object being created, as the plugins see it.
pub struct Admitted<'a> {
    pub state: &'a ApiState,
    pub info: &'a ResourceInfo,
    pub namespace: &'a str,
    /// The name errors show: the generateName while the name is generated,
    /// as upstream (whose plugins run before names are generated).
    pub shown_name: &'a str,
    pub dry_run: bool,
}

impl Admitted<'_> {
    fn is_core(&self, kind: &str) -> bool {
        self.info.group.is_empty() && self.info.kind == kind && self.info.custom.is_none()
    }

    /// An admission plugin's refusal: 403 `<resource> "<name>" is
    /// forbidden: <why>`.
    pub fn forbidden(&self, why: &str) -> ApiError {
        let mut e = ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: {why}",
            qualified(self.info),
            self.shown_name
        ));
        let mut details = serde_json::json!({"name": self.shown_name, "kind": self.info.plural});
        if !self.info.group.is_empty() {
            details["group"] = serde_json::json!(self.info.group);
        }
        e.details = Some(details);
        e
    }
}

/// Runs the plugins on a new, defaulted and validated object; the
/// mutating ones may change it. `revalidate` defaults and validates it
/// again when LimitRange defaults changed its resources (they can break
/// requests ≤ limits), as upstream validates after mutating admission.
pub async fn admit_create(
    a: &Admitted<'_>,
    obj: &mut Value,
    revalidate: impl FnOnce(&mut Value) -> ApiResult<()>,
) -> ApiResult<()> {
    if a.is_core("Pod") {
        priority::admit(a, obj).await?;
        tolerations::admit(obj);
        if limit_range::default(a, obj).await? {
            revalidate(obj)?;
            // The class follows the final resources (upstream fixes it
            // after admission).
            obj["status"]["qosClass"] = serde_json::json!(qos::pod_qos_class(obj));
        }
        service_account::admit(a, obj).await?;
    }
    if a.is_core("PersistentVolumeClaim") {
        default_class::admit(a, obj).await?;
    }
    limit_range::check(a, obj).await?;
    quota::charge(a, obj).await
}

/// The stored objects of one kind in a namespace, with their revisions.
pub async fn list_in(
    state: &ApiState,
    group: &str,
    version: &str,
    plural: &str,
    namespace: Option<&str>,
) -> ApiResult<(std::sync::Arc<ResourceInfo>, Vec<(Value, i64)>)> {
    let info = stored::info(group, version, plural)?;
    let listed = state
        .store
        .list(&info.list_prefix(namespace), None, 0, None)
        .await?;
    let mut out = Vec::with_capacity(listed.items.len());
    for kv in &listed.items {
        let obj = object::from_stored(&kv.value, kv.mod_revision)
            .map_err(|e| ApiError::internal(format!("decoding stored {}: {e}", kv.key)))?;
        out.push((obj, kv.mod_revision));
    }
    Ok((info, out))
}
