//! Which names and addresses the serving certificate must cover.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Subject alternative names of the API serving certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SanConfig {
    pub hostnames: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl SanConfig {
    /// Add a name, sorting it into IPs or DNS names; duplicates are ignored.
    pub fn add(&mut self, name: &str) {
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        // "[::1]" is how people write IPv6 in URLs; accept it here too.
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.add_ip(ip),
            Err(_) if !name.is_ascii() => {
                // Certificates carry DNS names as IA5 (ASCII) strings; a
                // non-ASCII hostname would make issuing fail at startup.
                tracing::warn!(name, "not an ASCII DNS name; left out of the certificate");
            }
            Err(_) => {
                // DNS names compare case-insensitively, so store them folded
                // to keep "changed SANs" detection from firing on case alone.
                let lower = name.to_ascii_lowercase();
                if !self.hostnames.contains(&lower) {
                    self.hostnames.push(lower);
                }
            }
        }
    }

    pub fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    /// An order-independent view, for comparing with an existing certificate.
    pub(crate) fn canonical(&self) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
        (
            self.hostnames
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            self.ips.iter().copied().collect(),
        )
    }
}

/// The SANs k3s puts on its API certificate: loopback, this machine, every
/// `--tls-san`, the advertise address, and the in-cluster `kubernetes`
/// Service under all its DNS spellings and its ClusterIP.
pub fn default_sans(
    tls_sans: &[String],
    advertise: Option<IpAddr>,
    first_service_ip: IpAddr,
) -> SanConfig {
    let mut sans = SanConfig::default();
    sans.add("localhost");
    sans.add_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    sans.add_ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
    if let Ok(host) = hostname::get() {
        if let Some(host) = host.to_str() {
            sans.add(host);
        }
    }
    for name in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        sans.add(name);
    }
    sans.add_ip(first_service_ip);
    if let Some(ip) = advertise {
        sans.add_ip(ip);
    }
    for san in tls_sans {
        sans.add(san);
    }
    sans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_the_usual_names() {
        let sans = default_sans(
            &[
                "Example.COM".into(),
                "192.168.1.5".into(),
                "[fd00::1]".into(),
            ],
            Some("10.0.0.7".parse().unwrap()),
            "10.43.0.1".parse().unwrap(),
        );
        for h in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "example.com",
        ] {
            assert!(sans.hostnames.iter().any(|x| x == h), "missing {h}");
        }
        for ip in [
            "127.0.0.1",
            "::1",
            "10.43.0.1",
            "10.0.0.7",
            "192.168.1.5",
            "fd00::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(sans.ips.contains(&ip), "missing {ip}");
        }
        let host = hostname::get()
            .unwrap()
            .to_string_lossy()
            .to_ascii_lowercase();
        assert!(sans.hostnames.contains(&host));
    }

    #[test]
    fn duplicates_are_dropped() {
        let sans = default_sans(
            &["localhost".into(), "127.0.0.1".into()],
            Some("127.0.0.1".parse().unwrap()),
            "10.43.0.1".parse().unwrap(),
        );
        assert_eq!(
            sans.hostnames.iter().filter(|h| *h == "localhost").count(),
            1
        );
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(sans.ips.iter().filter(|i| **i == lo).count(), 1);
    }
}
