//! A pod's `securityContext.fsGroup` applied to its volumes, as upstream's
//! SetVolumeOwnership does: every file and folder of the volumes the
//! kubelet makes (emptyDir, configMap, secret, downwardAPI, projected)
//! belongs to the group, which may read them (and write those that are not
//! read-only), and folders are setgid so new files inherit the group.
//! hostPath volumes are the host's and stay untouched.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Volume};

const SETGID: u32 = 0o2000;
const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const DIR_EXEC: u32 = 0o110;

/// Applies the pod's fsGroup (if any) to the volumes the kubelet prepared.
/// emptyDirs hold the pod's own data, which may be large: they are done on
/// the `first` preparation only; the small file volumes on every refresh,
/// since an update writes new files.
pub fn apply(pod: &Pod, volumes: &HashMap<String, PathBuf>, first: bool) -> std::io::Result<()> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let Some(gid) = spec.security_context.as_ref().and_then(|s| s.fs_group) else {
        return Ok(());
    };
    for v in spec.volumes.iter().flatten() {
        let Some(read_only) = owned_kind(v) else {
            continue;
        };
        if !read_only && !first {
            continue;
        }
        if let Some(path) = volumes.get(&v.name) {
            let mask = if read_only { RO_MASK } else { RW_MASK };
            walk(path, gid as u32, mask)?;
        }
    }
    Ok(())
}

/// Whether the kubelet owns this volume's files, and if so whether they are
/// read-only for the pod.
fn owned_kind(v: &Volume) -> Option<bool> {
    if v.empty_dir.is_some() {
        Some(false)
    } else if v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
    {
        Some(true)
    } else {
        None
    }
}

fn walk(path: &Path, gid: u32, mask: u32) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    lchown(path, None, Some(gid))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mode = meta.permissions().mode() & 0o7777;
    mode |= mask;
    if meta.is_dir() {
        mode |= SETGID | DIR_EXEC;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            walk(&entry?.path(), gid, mask)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    #[test]
    fn volumes_get_the_group_and_its_permissions() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ed = tmp.path().join("scratch");
        fs::create_dir_all(ed.join("sub")).expect("mkdir");
        fs::write(ed.join("sub/f"), "x").expect("write");
        fs::set_permissions(ed.join("sub/f"), fs::Permissions::from_mode(0o600)).expect("chmod");
        let cm = tmp.path().join("cfg");
        fs::create_dir_all(cm.join("..data")).expect("mkdir");
        fs::write(cm.join("..data/key"), "v").expect("write");
        fs::set_permissions(cm.join("..data/key"), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        symlink("..data/key", cm.join("key")).expect("link");
        let host = tmp.path().join("host");
        fs::create_dir_all(&host).expect("mkdir");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"securityContext": {"fsGroup": 4321}, "containers": [],
                "volumes": [{"name": "scratch", "emptyDir": {}},
                            {"name": "cfg", "configMap": {"name": "c"}},
                            {"name": "host", "hostPath": {"path": "/x"}}]}}))
        .expect("pod");
        let vols: HashMap<String, PathBuf> = [
            ("scratch".to_string(), ed.clone()),
            ("cfg".to_string(), cm.clone()),
            ("host".to_string(), host.clone()),
        ]
        .into();
        apply(&pod, &vols, true).expect("apply");
        let m = |p: &Path| fs::symlink_metadata(p).expect("meta");
        assert_eq!(m(&ed).gid(), 4321);
        assert_eq!(m(&ed).mode() & 0o2000, 0o2000);
        assert_eq!(m(&ed.join("sub/f")).mode() & 0o7777, 0o660);
        assert_eq!(m(&cm.join("..data/key")).gid(), 4321);
        assert_eq!(m(&cm.join("..data/key")).mode() & 0o7777, 0o644);
        assert_eq!(m(&cm.join("key")).gid(), 4321);
        assert_ne!(m(&host).gid(), 4321);
    }
}
