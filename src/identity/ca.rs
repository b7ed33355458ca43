//! The cluster's certificate authorities.
//!
//! A CA is created once and then never replaced automatically: every agent,
//! kubeconfig and join token trusts it, so losing it means re-joining the
//! whole cluster. Anything wrong with an existing CA is an error, not a
//! reason to regenerate.

use std::path::Path;

use anyhow::{bail, Context};
use rcgen::{Issuer, KeyPair};
use rustls::pki_types::CertificateDer;

use super::certs::{self, first_cert_der, parse_key, unix_now};
use super::fsutil::{read_optional, write_atomic};

pub(crate) struct Ca {
    /// The certificate file exactly as stored (it may be a bundle if the
    /// operator provided their own CA).
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    key: KeyPair,
}

impl Ca {
    /// Load `<dir>/<base>.crt` and `.key`, or create them with CN
    /// `<cn_prefix>@<unix time>` (the k3s naming) if the certificate is absent.
    pub fn load_or_create(dir: &Path, base: &str, cn_prefix: &str) -> anyhow::Result<Ca> {
        let crt_path = dir.join(format!("{base}.crt"));
        let key_path = dir.join(format!("{base}.key"));
        let (cert_pem, key_pem) = match read_optional(&crt_path)? {
            Some(cert_pem) => {
                let key_pem = read_optional(&key_path)?.with_context(|| {
                    format!(
                        "{} exists but its key {} is missing",
                        crt_path.display(),
                        key_path.display()
                    )
                })?;
                (cert_pem, key_pem)
            }
            None => {
                let cn = format!("{cn_prefix}@{}", unix_now());
                let (cert_pem, key_pem) = certs::generate_ca(&cn)?;
                // Key first: a crash between the two writes leaves no
                // certificate, so the next start simply generates again.
                write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
                write_atomic(&crt_path, cert_pem.as_bytes(), 0o644)?;
                tracing::info!(cn, path = %crt_path.display(), "generated certificate authority");
                (cert_pem, key_pem)
            }
        };
        Ca::from_pems(cert_pem, key_pem, &crt_path.display().to_string())
    }

    /// Build from PEMs, checking that key and certificate belong together.
    pub fn from_pems(cert_pem: String, key_pem: String, what: &str) -> anyhow::Result<Ca> {
        let cert_der = first_cert_der(&cert_pem, what)?;
        let key = parse_key(&key_pem, &format!("of {what}"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| anyhow::anyhow!("parsing {what}: {e}"))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            bail!("the private key of {what} does not match its certificate");
        }
        Ok(Ca {
            cert_pem,
            cert_der,
            key_pem,
            key,
        })
    }

    pub fn issuer(&self) -> anyhow::Result<Issuer<'_, &KeyPair>> {
        Issuer::from_ca_cert_der(&CertificateDer::from(self.cert_der.as_slice()), &self.key)
            .context("loading CA as issuer")
    }
}
