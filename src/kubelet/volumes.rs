//! Pod volumes on the node: emptyDir (disk or memory), hostPath (with type
//! checks), configMap, secret, downwardAPI and projected. File volumes are
//! written like upstream's atomic writer: a timestamped folder, a `..data`
//! symlink swapped atomically, and one `key -> ..data/key` link per entry,
//! so a running container sees an update all at once.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use kube::api::Api;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// An error the user must fix in the pod or its references
/// (CreateContainerConfigError).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn volumes_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("volumes")
}

/// Prepares (or refreshes) every volume; returns name → host path.
pub async fn prepare(
    client: &kube::Client,
    pod: &Pod,
    pod_dir: &Path,
) -> Result<HashMap<String, PathBuf>, ConfigError> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut out = HashMap::new();
    let vols = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for v in vols {
        let dir = volumes_dir(pod_dir).join(&v.name);
        let path = prepare_one(client, pod, &ns, &v, &dir)
            .await
            .map_err(|e| ConfigError(e.to_string()))?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

async fn prepare_one(
    client: &kube::Client,
    pod: &Pod,
    ns: &str,
    v: &Volume,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    if let Some(ed) = &v.empty_dir {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777))?;
        if ed.medium.as_deref() == Some("Memory") && !is_mountpoint(dir) {
            let mut opts = "mode=1777".to_string();
            if let Some(limit) = &ed.size_limit {
                let q = crate::api::quantity::parse_quantity(&limit.0)
                    .map_err(|e| anyhow::anyhow!("emptyDir {:?} sizeLimit: {e}", v.name))?;
                opts.push_str(&format!(",size={}", q.value()));
            }
            mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                MsFlags::empty(),
                Some(opts.as_str()),
            )?;
        }
        return Ok(dir.to_path_buf());
    }
    if let Some(claim) = &v.persistent_volume_claim {
        return super::claims::resolve(client, ns, &claim.claim_name).await;
    }
    if let Some(hp) = &v.host_path {
        let path = PathBuf::from(&hp.path);
        check_host_path(&path, hp.type_.as_deref().unwrap_or(""))?;
        return Ok(path);
    }
    if let Some(cm) = &v.config_map {
        let files = config_map_files(
            client,
            ns,
            &cm.name,
            cm.items.as_deref(),
            cm.optional.unwrap_or(false),
        )
        .await?;
        write_atomic(dir, &files, cm.default_mode.unwrap_or(0o644))?;
        return Ok(dir.to_path_buf());
    }
    if let Some(sec) = &v.secret {
        let name = sec.secret_name.clone().unwrap_or_default();
        let files = secret_files(
            client,
            ns,
            &name,
            sec.items.as_deref(),
            sec.optional.unwrap_or(false),
        )
        .await?;
        write_atomic(dir, &files, sec.default_mode.unwrap_or(0o644))?;
        return Ok(dir.to_path_buf());
    }
    if let Some(da) = &v.downward_api {
        let files = downward_files(pod, da.items.as_deref().unwrap_or_default())?;
        write_atomic(dir, &files, da.default_mode.unwrap_or(0o644))?;
        return Ok(dir.to_path_buf());
    }
    if let Some(p) = &v.projected {
        let mut files = BTreeMap::new();
        for src in p.sources.clone().unwrap_or_default() {
            if let Some(cm) = src.config_map {
                files.extend(
                    config_map_files(
                        client,
                        ns,
                        &cm.name,
                        cm.items.as_deref(),
                        cm.optional.unwrap_or(false),
                    )
                    .await?,
                );
            }
            if let Some(s) = src.secret {
                files.extend(
                    secret_files(
                        client,
                        ns,
                        &s.name,
                        s.items.as_deref(),
                        s.optional.unwrap_or(false),
                    )
                    .await?,
                );
            }
            if let Some(da) = src.downward_api {
                files.extend(downward_files(
                    pod,
                    da.items.as_deref().unwrap_or_default(),
                )?);
            }
            if let Some(t) = src.service_account_token {
                let token = super::satoken::token(client, pod, ns, &t, dir).await?;
                files.insert(t.path.clone(), (token, None));
            }
        }
        write_atomic(dir, &files, p.default_mode.unwrap_or(0o644))?;
        return Ok(dir.to_path_buf());
    }
    anyhow::bail!(
        "volume {:?}: this volume type is not supported by kone yet",
        v.name
    )
}

fn check_host_path(path: &Path, kind: &str) -> anyhow::Result<()> {
    let meta = fs::metadata(path);
    let ok = match kind {
        "" => true,
        "DirectoryOrCreate" => {
            fs::create_dir_all(path)?;
            true
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(d) = path.parent() {
                    fs::create_dir_all(d)?;
                }
                fs::File::create(path)?;
            }
            true
        }
        "Directory" => meta.as_ref().is_ok_and(|m| m.is_dir()),
        "File" => meta.as_ref().is_ok_and(|m| m.is_file()),
        "Socket" => meta
            .as_ref()
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())),
        "CharDevice" => meta
            .as_ref()
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type())),
        "BlockDevice" => meta
            .as_ref()
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type())),
        other => anyhow::bail!("hostPath type {other:?} is not known"),
    };
    if !ok {
        anyhow::bail!(
            "hostPath type check failed: {} is not a {kind}",
            path.display()
        );
    }
    Ok(())
}

type Files = BTreeMap<String, (Vec<u8>, Option<i32>)>;

fn pick(
    all: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    what: &str,
) -> anyhow::Result<Files> {
    match items {
        None => Ok(all.into_iter().map(|(k, v)| (k, (v, None))).collect()),
        Some(items) => items
            .iter()
            .map(|i| match all.get(&i.key) {
                Some(v) => Ok((i.path.clone(), (v.clone(), i.mode))),
                None => Err(anyhow::anyhow!("{what} has no key {:?}", i.key)),
            })
            .collect(),
    }
}

async fn config_map_files(
    client: &kube::Client,
    ns: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
) -> anyhow::Result<Files> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await? {
        Some(cm) => {
            let mut all: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            all.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            pick(all, items, &format!("configmap {name:?}"))
        }
        None if optional => Ok(Files::new()),
        None => anyhow::bail!("configmap {name:?} not found"),
    }
}

async fn secret_files(
    client: &kube::Client,
    ns: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
) -> anyhow::Result<Files> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await? {
        Some(s) => {
            let all = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            pick(all, items, &format!("secret {name:?}"))
        }
        None if optional => Ok(Files::new()),
        None => anyhow::bail!("secret {name:?} not found"),
    }
}

fn downward_files(pod: &Pod, items: &[DownwardAPIVolumeFile]) -> anyhow::Result<Files> {
    let mut out = Files::new();
    for i in items {
        let value = match (&i.field_ref, &i.resource_field_ref) {
            (Some(f), _) => {
                super::container::field_value(pod, &f.field_path, None).ok_or_else(|| {
                    anyhow::anyhow!("downwardAPI: unsupported fieldPath {:?}", f.field_path)
                })?
            }
            (None, Some(r)) => super::container::resource_value(pod, r)?,
            _ => anyhow::bail!("downwardAPI item {:?} has no source", i.path),
        };
        out.insert(i.path.clone(), (value.into_bytes(), i.mode));
    }
    Ok(out)
}

/// Upstream's AtomicWriter layout: `..<stamp>/files`, `..data` → it, and
/// `<top> -> ..data/<top>` for each top-level entry.
fn write_atomic(dir: &Path, files: &Files, default_mode: i32) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let data = dir.join("..data");
    // Unchanged content: nothing to do (keeps the symlink stable).
    if let Ok(current) = fs::read_link(&data) {
        let cur = dir.join(&current);
        let same = files
            .iter()
            .all(|(k, (v, _))| fs::read(cur.join(k)).ok().as_deref() == Some(v.as_slice()))
            && count_files(&cur) == files.len();
        if same {
            return Ok(());
        }
    }
    let stamp = format!("..{}", chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S.%9f"));
    let new = dir.join(&stamp);
    fs::create_dir_all(&new)?;
    for (rel, (bytes, mode)) in files {
        if rel.split('/').any(|p| p == ".." || p.is_empty()) {
            anyhow::bail!("invalid volume file path {rel:?}");
        }
        let p = new.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&p, bytes)?;
        fs::set_permissions(
            &p,
            fs::Permissions::from_mode(mode.unwrap_or(default_mode) as u32 & 0o7777),
        )?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    symlink(&stamp, &tmp)?;
    let old = fs::read_link(&data).ok();
    fs::rename(&tmp, &data)?;
    let tops: std::collections::BTreeSet<&str> =
        files.keys().filter_map(|k| k.split('/').next()).collect();
    for top in &tops {
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(top), &link)?;
        }
    }
    // Links of keys that are gone, and the previous timestamped folder.
    for e in fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(name.as_str()) {
            let _ = fs::remove_file(e.path());
        }
    }
    if let Some(old) = old {
        if old != Path::new(&stamp) {
            let _ = fs::remove_dir_all(dir.join(old));
        }
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    fn walk(d: &Path) -> usize {
        fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(dir)
}

fn is_mountpoint(path: &Path) -> bool {
    let Ok(target) = fs::canonicalize(path) else {
        return false;
    };
    fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .any(|p| Path::new(p) == target)
        })
        .unwrap_or(false)
}

/// Unmounts memory-backed emptyDirs and removes the pod's folder.
pub fn cleanup(pod_dir: &Path) {
    if let Ok(rd) = fs::read_dir(volumes_dir(pod_dir)) {
        for e in rd.flatten() {
            if is_mountpoint(&e.path()) {
                let _ = umount2(&e.path(), MntFlags::MNT_DETACH);
            }
        }
    }
    let _ = fs::remove_dir_all(pod_dir);
}
