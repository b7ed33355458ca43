//! Authorization: the one place every resource request is checked.
//!
//! RBAC is a later stage; until then every authenticated user may do
//! everything and anonymous users nothing beyond the public paths.

use crate::apiserver::path::ResourceTarget;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::identity::UserInfo;

pub fn authorize(user: &UserInfo, verb: &str, target: &ResourceTarget) -> ApiResult<()> {
    if user.groups.iter().any(|g| g == "system:authenticated") {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "{} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\"",
        target.info.plural,
        user.name,
        verb.to_lowercase(),
        target.info.plural,
        target.info.group
    )))
}
