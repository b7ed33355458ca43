//! Reading one built-in object straight from the store, for server code
//! that needs another object than the one a request names (authentication,
//! admission lookups, subresources that refer elsewhere).

use serde_json::Value;

use crate::api::registry;
use crate::apiserver::object;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::datastore::Backend;

/// The core/v1 object `plural` named `name` (in `ns` if namespaced), or None.
pub async fn core_object(
    store: &dyn Backend,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> ApiResult<Option<Value>> {
    let info = registry::lookup("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))?;
    let Some(kv) = store.get(&info.key(ns, name)).await? else {
        return Ok(None);
    };
    object::from_stored(&kv.value, kv.mod_revision)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("decoding stored {}: {e}", kv.key)))
}
