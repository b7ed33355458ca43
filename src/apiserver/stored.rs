//! Reading one built-in object straight from the store, for server code
//! that needs another object than the one a request names (authentication,
//! admission lookups, subresources that refer elsewhere).

use std::sync::Arc;

use serde_json::Value;

use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::object;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::datastore::Backend;

/// The served resource `plural` of `group`/`version`; the built-in ones
/// always are, so a miss is the server's own fault (500).
pub fn info(group: &str, version: &str, plural: &str) -> ApiResult<Arc<ResourceInfo>> {
    registry::lookup(group, version, plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))
}

/// The core/v1 object `plural` named `name` (in `ns` if namespaced), or None.
pub async fn core_object(
    store: &dyn Backend,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> ApiResult<Option<Value>> {
    let info = info("", "v1", plural)?;
    let Some(kv) = store.get(&info.key(ns, name)).await? else {
        return Ok(None);
    };
    object::from_stored(&kv.value, kv.mod_revision)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("decoding stored {}: {e}", kv.key)))
}
