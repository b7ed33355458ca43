//! Host-local IP address management, persisted like CNI's host-local plugin:
//! one file per allocated address, named by the address and holding the pod
//! id, plus `last_reserved_ip` so allocation goes round the range instead of
//! handing a just-released address straight to the next pod.
//!
//! A file is created by hard-linking a fully written temporary file to the
//! address's name: the link either fails because the address is taken or
//! appears atomically with its content, so a crash never leaves an address
//! without its owner and a restart never hands out a taken address.

use std::fs;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;

const LAST_RESERVED: &str = "last_reserved_ip";

pub struct Ipam {
    dir: PathBuf,
    range: Ipv4Net,
    gateway: Ipv4Addr,
    /// Serialises lookup-then-allocate so one pod cannot get two addresses.
    lock: Mutex<()>,
}

impl Ipam {
    pub fn new(dir: &Path, range: Ipv4Net, gateway: Ipv4Addr) -> Ipam {
        Ipam {
            dir: dir.to_path_buf(),
            range,
            gateway,
            lock: Mutex::new(()),
        }
    }

    /// The address of `pod_id`, allocating one if it has none.
    pub fn allocate(&self, pod_id: &str) -> Result<Ipv4Addr> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        if let Some(ip) = self.find(pod_id)? {
            return Ok(ip);
        }
        let tmp = self.dir.join(format!(".alloc-{}", std::process::id()));
        fs::write(&tmp, pod_id).with_context(|| format!("writing {}", tmp.display()))?;
        let result = self.claim_free(&tmp);
        // Best effort: a leftover temporary file is never read as an allocation.
        let _ = fs::remove_file(&tmp);
        let ip = result?;
        fs::write(self.dir.join(LAST_RESERVED), ip.to_string())
            .context("recording the last reserved address")?;
        Ok(ip)
    }

    /// Links `tmp` to the first free address after the last reserved one.
    fn claim_free(&self, tmp: &Path) -> Result<Ipv4Addr> {
        let candidates: Vec<Ipv4Addr> = self
            .range
            .hosts()
            .filter(|ip| *ip != self.gateway)
            .collect();
        let last = fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok());
        let start = last
            .and_then(|l| candidates.iter().position(|ip| *ip == l))
            .map_or(0, |i| i + 1);
        for ip in candidates[start..].iter().chain(&candidates[..start]) {
            match fs::hard_link(tmp, self.dir.join(ip.to_string())) {
                Ok(()) => return Ok(*ip),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("allocating {ip}")),
            }
        }
        bail!("no free address left in {}", self.range)
    }

    /// Releases the address of `pod_id`; returns it, or `None` if it had none.
    pub fn release(&self, pod_id: &str) -> Result<Option<Ipv4Addr>> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(ip) = self.find(pod_id)? else {
            return Ok(None);
        };
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => Ok(Some(ip)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Some(ip)),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    fn find(&self, pod_id: &str) -> Result<Option<Ipv4Addr>> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(owner, _)| owner == pod_id)
            .map(|(_, ip)| ip))
    }

    /// Every allocated address with its pod id.
    pub fn allocations(&self) -> Result<Vec<(String, Ipv4Addr)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", self.dir.display()))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let owner = fs::read_to_string(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            found.push((owner, ip));
        }
        found.sort_by_key(|(_, ip)| *ip);
        Ok(found)
    }
}
