//! Certificate issuing and inspection: the rcgen and x509-parser glue.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::sans::SanConfig;

/// Leaf certificates live a year and CAs ten, as in k3s.
pub(crate) const LEAF_DAYS: i64 = 365;
pub(crate) const CA_DAYS: i64 = 3650;
/// A leaf closer than this to expiry is reissued at startup (k3s uses 90 days),
/// so a server restarted now and then never serves an expired certificate.
pub(crate) const RENEW_BEFORE_DAYS: i64 = 90;
const DAY: i64 = 86_400;

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// ECDSA P-256, as k3s uses: small keys, fast handshakes on a Pi.
pub(crate) fn new_key() -> anyhow::Result<KeyPair> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating ECDSA P-256 key")
}

pub(crate) fn parse_key(pem: &str, what: &str) -> anyhow::Result<KeyPair> {
    KeyPair::from_pem(pem).with_context(|| format!("parsing private key {what}"))
}

/// The first certificate of a PEM bundle, as DER.
pub(crate) fn first_cert_der(pem: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut rd = pem.as_bytes();
    let first = rustls_pemfile::certs(&mut rd).next();
    match first {
        Some(Ok(der)) => Ok(der.to_vec()),
        Some(Err(e)) => Err(e).with_context(|| format!("parsing certificate {what}")),
        None => bail!("no certificate found in {what}"),
    }
}

fn base_params(cn: &str, org: Option<&str>, days: i64) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    params.distinguished_name = dn;
    // rcgen has no clock of its own; x509-parser's ASN1Time converts a unix
    // timestamp into the `time` type rcgen wants, without another dependency.
    let now = unix_now();
    // Back-date an hour so a peer whose clock lags slightly accepts the cert.
    params.not_before = x509_parser::time::ASN1Time::from_timestamp(now - 3600)
        .context("certificate start time")?
        .to_datetime();
    params.not_after = x509_parser::time::ASN1Time::from_timestamp(now + days * DAY)
        .context("certificate end time")?
        .to_datetime();
    // Random serials: reissued certs must never repeat a serial.
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params)
}

/// A self-signed CA: returns (cert PEM, key PEM).
pub(crate) fn generate_ca(cn: &str) -> anyhow::Result<(String, String)> {
    let key = new_key()?;
    let mut params = base_params(cn, None, CA_DAYS)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .with_context(|| format!("self-signing CA {cn}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What a leaf certificate is for.
#[derive(Clone, Debug)]
pub(crate) enum LeafSpec {
    Serving(SanConfig),
    /// Kubernetes reads the user from CN and groups from O. rcgen keeps one
    /// value per attribute type, so a client cert carries at most one group,
    /// which is all the Kubernetes component identities need.
    Client {
        name: String,
        group: Option<String>,
    },
}

/// Issue a leaf signed by `issuer`: returns (cert PEM, key PEM).
pub(crate) fn issue_leaf(
    spec: &LeafSpec,
    issuer: &Issuer<'_, &KeyPair>,
) -> anyhow::Result<(String, String)> {
    let key = new_key()?;
    let mut params = match spec {
        LeafSpec::Serving(sans) => {
            // kube-apiserver's serving certs are named after the service.
            let mut p = base_params("kube-apiserver", None, LEAF_DAYS)?;
            p.subject_alt_names = san_types(sans)?;
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            p
        }
        LeafSpec::Client { name, group } => {
            let mut p = base_params(name, group.as_deref(), LEAF_DAYS)?;
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            p
        }
    };
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, issuer)
        .context("signing leaf certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn san_types(sans: &SanConfig) -> anyhow::Result<Vec<SanType>> {
    let mut out = Vec::with_capacity(sans.hostnames.len() + sans.ips.len());
    for h in &sans.hostnames {
        let name = h
            .clone()
            .try_into()
            .with_context(|| format!("{h:?} is not a valid DNS name for a certificate"))?;
        out.push(SanType::DnsName(name));
    }
    out.extend(sans.ips.iter().copied().map(SanType::IpAddress));
    Ok(out)
}

/// Why an existing leaf must be replaced, or None if it is still good.
pub(crate) fn leaf_problem(
    cert_der: &[u8],
    key: &KeyPair,
    ca_der: &[u8],
    spec: &LeafSpec,
) -> Option<String> {
    let (_, cert) = match x509_parser::parse_x509_certificate(cert_der) {
        Ok(c) => c,
        Err(e) => return Some(format!("unparseable certificate: {e}")),
    };
    let (_, ca) = match x509_parser::parse_x509_certificate(ca_der) {
        Ok(c) => c,
        Err(e) => return Some(format!("unparseable CA certificate: {e}")),
    };
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Some("private key does not match certificate".into());
    }
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Some("not signed by the current CA".into());
    }
    let not_after = cert.validity().not_after.timestamp();
    if not_after - unix_now() < RENEW_BEFORE_DAYS * DAY {
        return Some("expires within 90 days".into());
    }
    match spec {
        LeafSpec::Serving(want) => {
            let have = cert_sans(&cert);
            let want = want.canonical();
            if have != want {
                return Some(format!(
                    "SANs changed (have {:?} {:?}, want {:?} {:?})",
                    have.0, have.1, want.0, want.1
                ));
            }
        }
        LeafSpec::Client { name, group } => {
            let user = super::user::user_from_cert_der(cert_der);
            let ok = user.is_some_and(|u| {
                u.name == *name && u.groups.first() == group.as_ref() && u.groups.len() <= 1
            });
            if !ok {
                return Some("subject changed".into());
            }
        }
    }
    None
}

fn cert_sans(cert: &X509Certificate<'_>) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
    let mut names = BTreeSet::new();
    let mut ips = BTreeSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for gn in &ext.value.general_names {
            match gn {
                GeneralName::DNSName(n) => {
                    names.insert(n.to_ascii_lowercase());
                }
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        ips.insert(IpAddr::from(a));
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        ips.insert(IpAddr::from(a));
                    }
                }
                _ => {}
            }
        }
    }
    (names, ips)
}
