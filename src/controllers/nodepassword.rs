//! Node passwords go with their Node (k3s's node controller does the
//! same): deleting a Node deletes `kube-system/<node>.node-password.kone`,
//! so a rebuilt machine with a new password can join under the old name.
//! A Node recreated under the same name (its kubelet registering again)
//! keeps the Secret.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, DeleteParams};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;

use super::informers::Informers;
use crate::join::password;

pub async fn run(informers: Informers) {
    let secrets: Api<Secret> = Api::namespaced(informers.client(), password::NAMESPACE);
    let informer = informers.get::<Node>();
    informer.ready().await;
    let store = informer.store();
    let mut changes = informer.changes().boxed();
    while let Some(node) = changes.next().await {
        if store.get(&ObjectRef::from_obj(&*node)).is_some() {
            continue;
        }
        let node = node.name_any();
        let name = password::secret_name(&node);
        match secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(%node, secret = %name, "deleted the password of a deleted node")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(error) => {
                tracing::warn!(%node, secret = %name, %error, "deleting a deleted node's password")
            }
        }
    }
}
