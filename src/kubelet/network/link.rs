//! Link lookups shared by the node and pod sides.

use anyhow::{Context, Result};
use futures::TryStreamExt;
use rtnetlink::Handle;

/// The index of the link called `name`, or `None` when there is none.
pub async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>> {
    match handle
        .link()
        .get()
        .match_name(name)
        .execute()
        .try_next()
        .await
    {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(rtnetlink::Error::NetlinkError(e))
            if e.to_io().raw_os_error() == Some(libc::ENODEV) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("looking up link {name}")),
    }
}

/// Sets link `index` up.
pub async fn set_up(handle: &Handle, index: u32) -> Result<()> {
    handle
        .link()
        .set(rtnetlink::LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .with_context(|| format!("setting link {index} up"))
}
