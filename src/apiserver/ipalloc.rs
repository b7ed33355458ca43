//! Service ClusterIPs and NodePorts.
//!
//! Allocations are not stored on their own: they are rebuilt at start from
//! the stored Services, so they survive restarts exactly as the Services do.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use crate::apiserver::admission::validation::FieldError;

/// What one Service holds, for releasing it.
#[derive(Debug, Default, Clone)]
pub struct Held {
    pub ips: Vec<Ipv4Addr>,
    pub ports: Vec<u16>,
}

pub struct ServiceAllocator {
    cidr: Ipv4Net,
    ports: (u16, u16),
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ips: HashSet<Ipv4Addr>,
    ports: HashSet<u16>,
    next_ip: u32,
    next_port: u16,
}

fn invalid(field: &str, value: impl std::fmt::Display, why: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value}: {why}"),
    }
}

impl ServiceAllocator {
    pub fn new(cidr: Ipv4Net, ports: (u16, u16)) -> Self {
        ServiceAllocator {
            cidr,
            ports,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The first usable address: the `kubernetes` Service's ClusterIP.
    pub fn first_ip(&self) -> Ipv4Addr {
        offset_ip(self.cidr, 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record what a stored Service holds (at start).
    pub fn reserve_existing(&self, svc: &Value) {
        let held = held_by(svc);
        let mut inner = self.lock();
        inner.ips.extend(held.ips);
        inner.ports.extend(held.ports);
    }

    pub fn release(&self, held: &Held) {
        let mut inner = self.lock();
        for ip in &held.ips {
            inner.ips.remove(ip);
        }
        for p in &held.ports {
            inner.ports.remove(p);
        }
    }

    /// Fill in and take the ClusterIP and NodePorts of a new Service.
    pub fn allocate(&self, svc: &mut Value) -> Result<Held, Vec<FieldError>> {
        self.take(svc, &Held::default())
    }

    /// On update: take new NodePorts; returns (newly taken, no longer held).
    pub fn reallocate(
        &self,
        old: &Value,
        new: &mut Value,
    ) -> Result<(Held, Held), Vec<FieldError>> {
        let before = held_by(old);
        let taken = self.take(new, &before)?;
        let after = held_by(new);
        let freed = Held {
            ips: before
                .ips
                .iter()
                .filter(|ip| !after.ips.contains(ip))
                .copied()
                .collect(),
            ports: before
                .ports
                .iter()
                .filter(|p| !after.ports.contains(p))
                .copied()
                .collect(),
        };
        Ok((taken, freed))
    }

    /// Take what `svc` asks for beyond `keep`; all or nothing.
    fn take(&self, svc: &mut Value, keep: &Held) -> Result<Held, Vec<FieldError>> {
        let mut inner = self.lock();
        let mut taken = Held::default();
        let result = self
            .take_ip(&mut inner, svc, keep, &mut taken)
            .and_then(|_| self.take_ports(&mut inner, svc, keep, &mut taken));
        drop(inner);
        match result {
            Ok(()) => Ok(taken),
            Err(e) => {
                self.release(&taken);
                Err(e)
            }
        }
    }

    /// `keep` is what the Service held before this write: asking for it again
    /// is no conflict.
    fn take_ip(
        &self,
        inner: &mut Inner,
        svc: &mut Value,
        keep: &Held,
        held: &mut Held,
    ) -> Result<(), Vec<FieldError>> {
        if svc_type(svc) == "ExternalName" {
            return Ok(());
        }
        let requested = svc["spec"]
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if requested == "None" {
            svc["spec"]["clusterIPs"] = json!(["None"]);
            return Ok(());
        }
        let ip = if requested.is_empty() {
            self.next_free_ip(inner).ok_or_else(|| {
                vec![invalid(
                    "spec.clusterIPs",
                    "[]",
                    "failed to allocate IP: range is full",
                )]
            })?
        } else {
            let ip: Ipv4Addr = requested.parse().map_err(|_| {
                vec![invalid(
                    "spec.clusterIPs",
                    format!("[]string{{{requested:?}}}"),
                    "must be a valid IP address",
                )]
            })?;
            let field_value = format!("[]string{{{requested:?}}}");
            if keep.ips.contains(&ip) {
                return Ok(());
            }
            if !self.usable(ip) {
                return Err(vec![invalid(
                    "spec.clusterIPs",
                    field_value,
                    &format!(
                        "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                        self.cidr
                    ),
                )]);
            }
            if inner.ips.contains(&ip) {
                return Err(vec![invalid(
                    "spec.clusterIPs",
                    field_value,
                    &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                )]);
            }
            ip
        };
        inner.ips.insert(ip);
        held.ips.push(ip);
        svc["spec"]["clusterIP"] = json!(ip.to_string());
        svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
        Ok(())
    }

    fn take_ports(
        &self,
        inner: &mut Inner,
        svc: &mut Value,
        keep: &Held,
        held: &mut Held,
    ) -> Result<(), Vec<FieldError>> {
        let ty = svc_type(svc);
        let wants_ports = ty == "NodePort"
            || (ty == "LoadBalancer"
                && svc["spec"]
                    .get("allocateLoadBalancerNodePorts")
                    .and_then(Value::as_bool)
                    != Some(false));
        let Some(ports) = svc["spec"].get_mut("ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        let mut errors = Vec::new();
        for (i, port) in ports.iter_mut().enumerate() {
            if !wants_ports {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
                continue;
            }
            let field = format!("spec.ports[{i}].nodePort");
            match port.get("nodePort").and_then(Value::as_u64) {
                Some(n) => {
                    let n16 = u16::try_from(n).unwrap_or(0);
                    if n16 < self.ports.0 || n16 > self.ports.1 {
                        errors.push(invalid(
                            &field,
                            n,
                            &format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                self.ports.0, self.ports.1
                            ),
                        ));
                    } else if keep.ports.contains(&n16) {
                        // Kept from before this update.
                    } else if inner.ports.contains(&n16) {
                        errors.push(invalid(&field, n, "provided port is already allocated"));
                    } else {
                        inner.ports.insert(n16);
                        held.ports.push(n16);
                    }
                }
                None => match self.next_free_port(inner) {
                    Some(p) => {
                        inner.ports.insert(p);
                        held.ports.push(p);
                        port["nodePort"] = json!(p);
                    }
                    None => errors.push(invalid(&field, 0, "range is full")),
                },
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(&ip) && ip != self.cidr.network() && ip != self.cidr.broadcast()
    }

    fn next_free_ip(&self, inner: &mut Inner) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - self.cidr.prefix_len());
        // Offsets 0 and size-1 are the network and broadcast addresses; 1 is
        // the kubernetes Service's.
        let usable = size.saturating_sub(3) as u32;
        for step in 0..usable {
            let off = 2 + (inner.next_ip + step) % usable;
            let ip = offset_ip(self.cidr, off);
            if !inner.ips.contains(&ip) {
                inner.next_ip = (inner.next_ip + step + 1) % usable;
                return Some(ip);
            }
        }
        None
    }

    fn next_free_port(&self, inner: &mut Inner) -> Option<u16> {
        let span = u32::from(self.ports.1 - self.ports.0) + 1;
        for step in 0..span {
            let p = self.ports.0 + ((u32::from(inner.next_port) + step) % span) as u16;
            if !inner.ports.contains(&p) {
                inner.next_port = ((u32::from(inner.next_port) + step + 1) % span) as u16;
                return Some(p);
            }
        }
        None
    }
}

fn offset_ip(cidr: Ipv4Net, off: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()).wrapping_add(off))
}

fn svc_type(svc: &Value) -> &str {
    svc["spec"]
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

/// The ClusterIP is immutable; an update that leaves it out keeps the
/// stored one, as upstream does. Runs before validation.
pub fn carry_cluster_ip(old: &Value, new: &mut Value) {
    if svc_type(new) == "ExternalName" {
        return;
    }
    let unset = |v: Option<&Value>| {
        v.is_none_or(|v| {
            v.as_str().is_some_and(str::is_empty) || v.as_array().is_some_and(Vec::is_empty)
        })
    };
    if unset(new["spec"].get("clusterIP")) {
        if let Some(ip) = old["spec"].get("clusterIP") {
            new["spec"]["clusterIP"] = ip.clone();
        }
    }
    if unset(new["spec"].get("clusterIPs")) {
        if let Some(ips) = old["spec"].get("clusterIPs") {
            new["spec"]["clusterIPs"] = ips.clone();
        }
    }
}

/// The IPs and ports a stored Service holds.
pub fn held_by(svc: &Value) -> Held {
    let mut held = Held::default();
    if let Some(ips) = svc["spec"].get("clusterIPs").and_then(Value::as_array) {
        held.ips = ips
            .iter()
            .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
            .collect();
    } else if let Some(ip) = svc["spec"]
        .get("clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
    {
        held.ips.push(ip);
    }
    if let Some(ports) = svc["spec"].get("ports").and_then(Value::as_array) {
        held.ports = ports
            .iter()
            .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
            .filter_map(|n| u16::try_from(n).ok())
            .collect();
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> ServiceAllocator {
        ServiceAllocator::new("10.43.0.0/16".parse().expect("cidr"), (30000, 30002))
    }

    #[test]
    fn allocates_ips_and_ports_and_refuses_taken_ones() {
        let a = alloc();
        let mut s1 = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let held = a.allocate(&mut s1).expect("first");
        assert_eq!(s1["spec"]["clusterIP"], "10.43.0.2");
        assert_eq!(held.ports, vec![30000]);
        let mut s2 = json!({"spec": {"clusterIP": "10.43.0.2", "ports": [{"port": 80}]}});
        let errs = a.allocate(&mut s2).expect_err("taken");
        assert!(errs[0].message.contains("already allocated"), "{:?}", errs);
        let mut s3 = json!({"spec": {"clusterIP": "10.99.0.1"}});
        assert!(a.allocate(&mut s3).is_err());
        let mut s4 =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": 30000}]}});
        assert!(a.allocate(&mut s4).is_err());
        a.release(&held);
        assert!(a.allocate(&mut s4).is_ok());
    }

    #[test]
    fn headless_and_external_name_take_nothing() {
        let a = alloc();
        let mut h = json!({"spec": {"clusterIP": "None"}});
        assert!(a.allocate(&mut h).expect("headless").ips.is_empty());
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        let mut e = json!({"spec": {"type": "ExternalName", "externalName": "x.example"}});
        assert!(a.allocate(&mut e).expect("external").ips.is_empty());
    }

    #[test]
    fn update_keeps_its_own_ip_and_ports() {
        let a = alloc();
        let mut s = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        a.allocate(&mut s).expect("create");
        let mut new = s.clone();
        new["spec"]["type"] = json!("ClusterIP");
        carry_cluster_ip(&s, &mut new);
        let (taken, freed) = a.reallocate(&s, &mut new).expect("update");
        assert!(taken.ips.is_empty());
        assert_eq!(freed.ports, vec![30000]);
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
    }
}
