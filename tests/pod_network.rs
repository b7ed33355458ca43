//! Pod networking, each test inside network namespaces it creates: a "node"
//! namespace stands in for the host (the test body runs on a thread inside
//! it), and every pod gets its own namespace file under /run/netns. The
//! machine's own interfaces and nftables are never touched.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ipnet::Ipv4Net;
use kone::kubelet::network::PodNetwork;

/// A named network namespace, deleted on drop (which also removes every
/// interface left inside it).
struct Netns {
    name: String,
}

impl Netns {
    fn new(role: &str) -> Netns {
        let name = format!("kone-{role}-{:08x}", rand::random::<u32>());
        ok(
            &Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .expect("ip"),
            "ip netns add",
        );
        Netns { name }
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    fn run(&self, args: &[&str]) -> String {
        ok(&self.exec(args), args)
    }

    fn pings(&self, ip: impl ToString) -> bool {
        self.exec(&["busybox", "ping", "-c", "1", "-W", "2", &ip.to_string()])
            .status
            .success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn ok(out: &Output, what: impl std::fmt::Debug) -> String {
    assert!(
        out.status.success(),
        "{what:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `body` on a thread inside `node`, so the code under test takes that
/// namespace for the host's.
fn on_node<F, Fut>(node: &Netns, body: F)
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = ()>,
{
    let ns = std::fs::File::open(node.path()).expect("open node netns");
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(body());
        });
    });
}

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("cidr")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("ip")
}

#[test]
fn pods_on_the_bridge_reach_each_other_and_the_node() {
    let node = Netns::new("node");
    let (a, b) = (Netns::new("pod"), Netns::new("pod"));
    let state = tempfile::tempdir().expect("tempdir");
    on_node(&node, || async {
        let network =
            PodNetwork::new(state.path(), net("10.42.0.0/24"), net("10.42.0.0/16")).expect("new");
        network.ensure_node().await.expect("ensure_node");
        network.ensure_node().await.expect("ensure_node again");

        let ip_a = network.setup("pod-a", &a.path()).await.expect("setup a");
        let ip_b = network.setup("pod-b", &b.path()).await.expect("setup b");
        assert_ne!(ip_a, ip_b);
        for pod_ip in [ip_a, ip_b] {
            assert!(
                net("10.42.0.0/24").contains(&pod_ip) && pod_ip != ip("10.42.0.1"),
                "{pod_ip}"
            );
        }
        assert_eq!(
            network
                .setup("pod-a", &a.path())
                .await
                .expect("setup a again"),
            ip_a,
            "a second setup keeps the address"
        );
        assert_eq!(
            network.allocations().expect("allocations"),
            vec![("pod-a".to_string(), ip_a), ("pod-b".to_string(), ip_b)]
        );

        let bridge = node.run(&["ip", "-o", "-4", "addr", "show", "dev", "cni0", "up"]);
        assert!(bridge.contains("10.42.0.1/24"), "{bridge}");
        let eth0 = a.run(&["ip", "-o", "-4", "addr", "show", "dev", "eth0", "up"]);
        assert!(eth0.contains(&format!("{ip_a}/24")), "{eth0}");
        let routes = a.run(&["ip", "route", "show", "default"]);
        assert!(
            routes.contains("default via 10.42.0.1 dev eth0"),
            "{routes}"
        );
        assert_eq!(
            node.run(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
            "1"
        );

        assert!(a.pings("127.0.0.1"), "loopback is up in the pod");
        assert!(a.pings(ip_b), "pod a reaches pod b");
        assert!(b.pings(ip_a), "pod b reaches pod a");
        assert!(a.pings("10.42.0.1"), "pod a reaches the bridge");
        assert!(node.pings(ip_a), "the node reaches pod a");
        assert!(node.pings(ip_b), "the node reaches pod b");

        let table = node.run(&["nft", "list", "table", "ip", "kone"]);
        assert!(
            table.contains("ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/16 masquerade"),
            "{table}"
        );
        for rule in [
            "type nat hook postrouting priority srcnat; policy accept;",
            "type filter hook forward priority filter; policy accept;",
            "iifname \"cni0\" accept",
            "oifname \"cni0\" accept",
        ] {
            assert!(table.contains(rule), "{rule} in {table}");
        }
        assert_eq!(
            table.matches("masquerade").count(),
            1,
            "ensure_node twice leaves one rule: {table}"
        );
    });
}

#[test]
fn traffic_leaving_the_cluster_is_masqueraded() {
    let node = Netns::new("node");
    let outside = Netns::new("out");
    let pod = Netns::new("pod");
    // The outside world: a peer on 192.168.77.0/24 with no route back to the
    // pods, so it can only answer a pod whose packets carry the node's address.
    let link = format!("ko{:08x}", rand::random::<u32>());
    node.run(&[
        "ip",
        "link",
        "add",
        &link,
        "type",
        "veth",
        "peer",
        "name",
        "eth9",
        "netns",
        &outside.name,
    ]);
    node.run(&["ip", "addr", "add", "192.168.77.1/24", "dev", &link]);
    node.run(&["ip", "link", "set", &link, "up"]);
    outside.run(&["ip", "addr", "add", "192.168.77.2/24", "dev", "eth9"]);
    outside.run(&["ip", "link", "set", "eth9", "up"]);
    let state = tempfile::tempdir().expect("tempdir");
    on_node(&node, || async {
        let network =
            PodNetwork::new(state.path(), net("10.42.0.0/24"), net("10.42.0.0/16")).expect("new");
        network.ensure_node().await.expect("ensure_node");
        let pod_ip = network.setup("pod", &pod.path()).await.expect("setup");
        assert!(
            !outside.pings(pod_ip),
            "the outside has no route to the pods"
        );
        assert!(
            pod.pings("192.168.77.2"),
            "the pod reaches outside the cluster"
        );
    });
}

#[test]
fn addresses_persist_across_restarts_and_are_released() {
    let node = Netns::new("node");
    let pods: Vec<Netns> = (0..6).map(|_| Netns::new("pod")).collect();
    let state = tempfile::tempdir().expect("tempdir");
    // A /29: the bridge takes .1, which leaves .2 to .6 for five pods.
    let pod_cidr = net("10.42.0.0/29");
    on_node(&node, || async {
        let first = PodNetwork::new(state.path(), pod_cidr, net("10.42.0.0/16")).expect("new");
        first.ensure_node().await.expect("ensure_node");
        let mut given = Vec::new();
        for (i, pod) in pods[..5].iter().enumerate() {
            given.push(
                first
                    .setup(&format!("pod-{i}"), &pod.path())
                    .await
                    .expect("setup"),
            );
        }
        let expected: Vec<Ipv4Addr> = (2..=6).map(|n| Ipv4Addr::new(10, 42, 0, n)).collect();
        assert_eq!(given, expected);
        let full = first.setup("pod-5", &pods[5].path()).await;
        assert!(
            full.as_ref()
                .is_err_and(|e| e.to_string().contains("no free address")),
            "{full:?}"
        );

        first.teardown("pod-1").await.expect("teardown");
        first.teardown("pod-1").await.expect("teardown again");
        assert!(
            !state.path().join("10.42.0.3").exists(),
            "the allocation file is gone"
        );
        assert!(state.path().join("10.42.0.2").exists());
        let links = node.run(&["ip", "-o", "link", "show", "type", "veth"]);
        assert_eq!(
            links.lines().count(),
            4,
            "the torn-down pod's veth is gone: {links}"
        );

        // A restarted kubelet: a new instance over the same state directory
        // must hand out only the released address.
        let restarted = PodNetwork::new(state.path(), pod_cidr, net("10.42.0.0/16")).expect("new");
        assert_eq!(restarted.allocations().expect("allocations").len(), 4);
        let reused = restarted
            .setup("pod-5", &pods[5].path())
            .await
            .expect("setup");
        assert_eq!(reused, ip("10.42.0.3"));
        assert!(pods[5].pings("10.42.0.2"), "the new pod reaches an old one");

        // A pod whose namespace is already gone still gets its address back.
        ok(
            &Command::new("ip")
                .args(["netns", "del", &pods[0].name])
                .output()
                .expect("ip"),
            "ip netns del",
        );
        restarted
            .teardown("pod-0")
            .await
            .expect("teardown without a netns");
        assert!(!state.path().join("10.42.0.2").exists());
        assert_eq!(restarted.allocations().expect("allocations").len(), 4);
    });
}
