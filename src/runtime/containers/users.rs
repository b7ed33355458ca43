//! Resolves the user a container runs as: the image's `User` ("name",
//! "uid", "name:group", "uid:gid") looked up in the image's own /etc/passwd
//! and /etc/group, then overridden by runAsUser/runAsGroup, as containerd does.

use std::fs;
use std::path::PathBuf;

use anyhow::bail;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

struct Entry {
    name: String,
    id: u32,
    gid: u32,
    members: Vec<String>,
}

/// The first copy of `rel` in the layers (top first) wins, like overlayfs.
fn read_image_file(lowerdirs: &[PathBuf], rel: &str) -> String {
    lowerdirs
        .iter()
        .find_map(|d| fs::read_to_string(d.join(rel)).ok())
        .unwrap_or_default()
}

/// passwd: name:x:uid:gid:…; group: name:x:gid:members.
fn parse(text: &str, group_file: bool) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let id = f[2].parse().ok()?;
            Some(Entry {
                name: f[0].to_string(),
                id,
                gid: if group_file { id } else { f[3].parse().ok()? },
                members: if group_file {
                    f[3].split(',')
                        .filter(|m| !m.is_empty())
                        .map(String::from)
                        .collect()
                } else {
                    vec![]
                },
            })
        })
        .collect()
}

pub fn resolve(
    image_user: &str,
    run_as_user: Option<u32>,
    run_as_group: Option<u32>,
    supplemental: &[u32],
    lowerdirs: &[PathBuf],
) -> anyhow::Result<Identity> {
    let passwd = parse(&read_image_file(lowerdirs, "etc/passwd"), false);
    let groups = parse(&read_image_file(lowerdirs, "etc/group"), true);
    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };

    let mut uid = 0;
    let mut gid = None;
    let mut user_name = None;
    if !user_part.is_empty() {
        if let Ok(n) = user_part.parse::<u32>() {
            uid = n;
        } else {
            let Some(e) = passwd.iter().find(|e| e.name == user_part) else {
                bail!("image user {user_part:?} not found in the image's /etc/passwd");
            };
            uid = e.id;
        }
    }
    if let Some(u) = run_as_user {
        uid = u;
    }
    if let Some(e) = passwd.iter().find(|e| e.id == uid) {
        gid = Some(e.gid);
        user_name = Some(e.name.clone());
    }
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = Some(match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match groups.iter().find(|e| e.name == g) {
                Some(e) => e.id,
                None => bail!("image group {g:?} not found in the image's /etc/group"),
            },
        });
    }
    if let Some(g) = run_as_group {
        gid = Some(g);
    }
    let mut additional: Vec<u32> = match &user_name {
        Some(name) => groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
            .map(|g| g.id)
            .collect(),
        None => vec![],
    };
    additional.extend_from_slice(supplemental);
    additional.sort_unstable();
    additional.dedup();
    Ok(Identity {
        uid,
        gid: gid.unwrap_or(0),
        additional_gids: additional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\n",
        )
        .unwrap();
        fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nweb:x:34:\nextra:x:50:www\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn names_numbers_and_overrides() {
        let d = rootfs();
        let dirs = [d.path().to_path_buf()];
        let www = resolve("www", None, None, &[], &dirs).unwrap();
        assert_eq!(
            (www.uid, www.gid, www.additional_gids.clone()),
            (33, 34, vec![50])
        );
        assert_eq!(resolve("1000:web", None, None, &[], &dirs).unwrap().gid, 34);
        let over = resolve("www", Some(7), Some(8), &[9], &dirs).unwrap();
        assert_eq!((over.uid, over.gid, over.additional_gids), (7, 8, vec![9]));
        assert_eq!(
            resolve("", None, None, &[], &dirs).unwrap(),
            Identity::default()
        );
        assert!(resolve("nobody-here", None, None, &[], &dirs).is_err());
    }
}
