use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::certs::first_cert_der;
use super::*;

fn sans(extra: &[&str]) -> SanConfig {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    default_sans(&extra, None, "10.43.0.1".parse().unwrap())
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn leaf_der(chain_pem: &str) -> Vec<u8> {
    first_cert_der(chain_pem, "test").unwrap()
}

#[test]
fn first_start_lays_out_files() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("server/tls");
    let id = ensure_identity(&tls, &sans(&[])).unwrap();
    assert_eq!(mode(&tls), 0o700);
    for base in [
        "server-ca",
        "client-ca",
        "serving-kube-apiserver",
        "client-admin",
    ] {
        assert_eq!(mode(&tls.join(format!("{base}.key"))), 0o600, "{base}");
        assert!(tls.join(format!("{base}.crt")).exists(), "{base}");
    }
    assert_eq!(
        fs::read_to_string(tls.join("server-ca.crt")).unwrap(),
        id.server_ca_pem
    );
    let (_, ca) = x509_parser::parse_x509_certificate(&id.server_ca_der).unwrap();
    let cn = ca
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert!(cn.starts_with("kone-server-ca@"), "{cn}");
    assert!(ca.is_ca());
    let (_, cca) = x509_parser::parse_x509_certificate(&id.client_ca_der).unwrap();
    let cn = cca
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert!(cn.starts_with("kone-client-ca@"), "{cn}");

    // The serving cert is signed by the server CA and the chain ends in it.
    let serving_der = leaf_der(&id.serving_chain_pem);
    let (_, serving) = x509_parser::parse_x509_certificate(&serving_der).unwrap();
    serving.verify_signature(Some(ca.public_key())).unwrap();
    assert!(id.serving_chain_pem.ends_with(&id.server_ca_pem));

    let hash = hex::encode(Sha256::digest(fs::read(tls.join("server-ca.crt")).unwrap()));
    assert_eq!(id.ca_sha256_hex(), hash);
    assert_eq!(id.ca_sha256_hex().len(), 64);
    // Keys stay out of Debug output.
    assert!(!format!("{id:?}").contains("PRIVATE"));
}

#[test]
fn admin_cert_is_system_admin() {
    let dir = tempfile::tempdir().unwrap();
    let id = ensure_identity(dir.path(), &sans(&[])).unwrap();
    let user = user_from_cert_der(&leaf_der(&id.admin_cert_pem)).unwrap();
    assert_eq!(user.name, "system:admin");
    assert_eq!(user.groups, vec!["system:masters".to_string()]);
    let admin_der = leaf_der(&id.admin_cert_pem);
    let (_, admin) = x509_parser::parse_x509_certificate(&admin_der).unwrap();
    let (_, cca) = x509_parser::parse_x509_certificate(&id.client_ca_der).unwrap();
    admin.verify_signature(Some(cca.public_key())).unwrap();
    // Not a CA, and not usable by the server CA's trust: different issuer.
    let (_, sca) = x509_parser::parse_x509_certificate(&id.server_ca_der).unwrap();
    assert!(admin.verify_signature(Some(sca.public_key())).is_err());
}

#[test]
fn restart_reuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    let a = ensure_identity(dir.path(), &sans(&["example.com"])).unwrap();
    let b = ensure_identity(dir.path(), &sans(&["example.com"])).unwrap();
    assert_eq!(a.ca_sha256_hex(), b.ca_sha256_hex());
    assert_eq!(a.client_ca_pem, b.client_ca_pem);
    assert_eq!(a.serving_chain_pem, b.serving_chain_pem);
    assert_eq!(a.serving_key_pem, b.serving_key_pem);
    assert_eq!(a.admin_cert_pem, b.admin_cert_pem);
}

#[test]
fn san_change_reissues_only_serving_cert() {
    let dir = tempfile::tempdir().unwrap();
    let a = ensure_identity(dir.path(), &sans(&[])).unwrap();
    let b = ensure_identity(dir.path(), &sans(&["new.example.com", "192.0.2.9"])).unwrap();
    assert_eq!(a.server_ca_pem, b.server_ca_pem);
    assert_eq!(a.client_ca_pem, b.client_ca_pem);
    assert_eq!(a.admin_cert_pem, b.admin_cert_pem);
    assert_ne!(a.serving_chain_pem, b.serving_chain_pem);
    let cert_der = leaf_der(&b.serving_chain_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let text = format!("{:?}", san.value.general_names);
    assert!(text.contains("new.example.com"), "{text}");
    assert!(
        text.contains("kubernetes.default.svc.cluster.local"),
        "{text}"
    );
    let ip: IpAddr = "192.0.2.9".parse().unwrap();
    assert!(
        san.value.general_names.iter().any(|g| matches!(
            g,
            x509_parser::extensions::GeneralName::IPAddress(b) if *b == [192, 0, 2, 9]
        )),
        "{ip} missing"
    );
    // And it is stable again afterwards.
    let c = ensure_identity(dir.path(), &sans(&["new.example.com", "192.0.2.9"])).unwrap();
    assert_eq!(b.serving_chain_pem, c.serving_chain_pem);
}

#[test]
fn broken_leaf_is_reissued_but_broken_ca_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = ensure_identity(dir.path(), &sans(&[])).unwrap();
    fs::write(dir.path().join("client-admin.key"), "garbage").unwrap();
    let b = ensure_identity(dir.path(), &sans(&[])).unwrap();
    assert_ne!(a.admin_cert_pem, b.admin_cert_pem);
    assert_eq!(a.client_ca_pem, b.client_ca_pem);

    fs::remove_file(dir.path().join("server-ca.key")).unwrap();
    let err = ensure_identity(dir.path(), &sans(&[])).unwrap_err();
    assert!(format!("{err:#}").contains("server-ca.key"), "{err:#}");
}

#[test]
fn issued_component_certs() {
    let dir = tempfile::tempdir().unwrap();
    let id = ensure_identity(dir.path(), &sans(&[])).unwrap();
    let (cert, key) = id
        .issue_client_cert("system:node:pi1", Some("system:nodes"))
        .unwrap();
    assert!(key.contains("PRIVATE KEY"));
    let u = user_from_cert_der(&leaf_der(&cert)).unwrap();
    assert_eq!(u.name, "system:node:pi1");
    assert_eq!(u.groups, vec!["system:nodes".to_string()]);
    let (cert, _) = id.issue_serving_cert(&sans(&["pi1"])).unwrap();
    let c_der = leaf_der(&cert);
    let (_, c) = x509_parser::parse_x509_certificate(&c_der).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&id.server_ca_der).unwrap();
    c.verify_signature(Some(ca.public_key())).unwrap();
}

#[test]
fn kubeconfig_modes_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let id = ensure_identity(&dir.path().join("tls"), &sans(&[])).unwrap();
    let path = dir.path().join("etc/kone/kone.yaml");
    write_kubeconfig(&path, 0o644, "https://127.0.0.1:6443", &id).unwrap();
    assert_eq!(mode(&path), 0o644);
    write_kubeconfig(&path, 0o600, "https://127.0.0.1:6443", &id).unwrap();
    assert_eq!(mode(&path), 0o600);

    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, kubeconfig_yaml("https://127.0.0.1:6443", &id));
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    assert_eq!(kc.current_context.as_deref(), Some("default"));
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster.certificate_authority_data.as_ref().unwrap())
        .unwrap();
    assert_eq!(ca, id.server_ca_pem.as_bytes());
    let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
    assert!(user.client_certificate_data.is_some());
    assert!(user.client_key_data.is_some());
}

#[test]
fn tls_config_offers_h2() {
    let dir = tempfile::tempdir().unwrap();
    let id = ensure_identity(dir.path(), &sans(&[])).unwrap();
    let cfg = server_tls_config(&id).unwrap();
    assert_eq!(
        cfg.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn kept_node_certs_serve_only_their_node_and_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let id = ensure_identity(&dir.path().join("a"), &sans(&[])).unwrap();
    let other = ensure_identity(&dir.path().join("b"), &sans(&[])).unwrap();
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let (client_chain, client_key) = id.issue_node_client_cert("pi1").unwrap();
    let (serving_chain, serving_key) = id.issue_kubelet_serving_cert("pi1", ip).unwrap();
    let problem = |name: &str, ip: IpAddr, client_ca: &str, server_ca: &str| {
        node_cert_problem(
            name,
            ip,
            &KeptCert {
                chain_pem: &client_chain,
                key_pem: &client_key,
                ca_pem: client_ca,
            },
            &KeptCert {
                chain_pem: &serving_chain,
                key_pem: &serving_key,
                ca_pem: server_ca,
            },
        )
    };
    let (cca, sca) = (id.client_ca_pem.as_str(), id.server_ca_pem.as_str());
    assert_eq!(problem("pi1", ip, cca, sca), None);
    let renamed = problem("pi2", ip, cca, sca).unwrap();
    assert!(
        renamed.contains("client certificate: subject changed"),
        "{renamed}"
    );
    let moved = problem("pi1", "192.0.2.8".parse().unwrap(), cca, sca).unwrap();
    assert!(
        moved.contains("serving certificate: SANs changed"),
        "{moved}"
    );
    let rebuilt = problem("pi1", ip, cca, &other.server_ca_pem).unwrap();
    assert!(
        rebuilt.contains("not signed by the current CA"),
        "{rebuilt}"
    );
    let broken = node_cert_problem(
        "pi1",
        ip,
        &KeptCert {
            chain_pem: &client_chain,
            key_pem: &serving_key,
            ca_pem: cca,
        },
        &KeptCert {
            chain_pem: &serving_chain,
            key_pem: &serving_key,
            ca_pem: sca,
        },
    )
    .unwrap();
    assert!(broken.contains("does not match"), "{broken}");
}
