//! Facts about this host's network, read from the kernel.

use std::net::{IpAddr, Ipv4Addr};

/// The interface that carries the IPv4 default route, from /proc/net/route.
pub fn default_route_interface() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() > 2 && cols[1] == "00000000").then(|| cols[0].to_string())
    })
}

/// IPv4 addresses of an interface.
pub fn interface_ipv4(name: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a linked list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut addrs) != 0 {
            return out;
        }
        let mut cur = addrs;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET {
                let ifname = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy();
                if ifname == name {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(addrs);
    }
    out
}

/// The address this host is reached at: the default route interface's
/// first IPv4, else loopback (a machine with no network).
pub fn primary_ip() -> IpAddr {
    default_route_interface()
        .and_then(|i| interface_ipv4(&i).into_iter().next())
        .map(IpAddr::V4)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_its_address() {
        assert!(interface_ipv4("lo").contains(&Ipv4Addr::LOCALHOST));
    }
}
