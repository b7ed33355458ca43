//! `registries.yaml` in the k3s format: per-registry mirrors (endpoint lists
//! and repository rewrites) and per-host settings (auth, TLS), and the list
//! of endpoints a pull tries for one image.
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000", "https://mirror.example.com"]
//!     rewrite:
//!       "^library/(.*)": "mirrored/$1"
//! configs:
//!   "127.0.0.1:5000":
//!     auth: {username: u, password: p}     # or auth: base64("u:p")
//!     tls: {ca_file: /ca.pem, insecure_skip_verify: false}
//! ```
//!
//! As in k3s, an endpoint given with `http://` is plain HTTP, one without a
//! scheme is HTTPS; mirrors are tried in order, then the registry's own
//! (default) endpoint unless that is disabled; `*` mirrors and configs apply
//! to registries without their own entry. Rewrites apply to mirror endpoints
//! only. A registry on loopback is reached over plain HTTP.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use regex::Regex;
use serde::Deserialize;

/// Where k3s users keep the file.
pub const DEFAULT_PATH: &str = "/etc/kone/registries.yaml";

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// One place to try for an image.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    pub plain_http: bool,
    /// The repository at this endpoint (after rewrites).
    pub repository: String,
    pub credentials: Option<Credentials>,
    /// Extra CA certificates (PEM) trusted for this host.
    pub ca_pem: Vec<Vec<u8>>,
    pub insecure_skip_verify: bool,
}

impl Endpoint {
    /// `http://host` or `https://host`, for messages.
    pub fn url(&self) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }
}

/// A parsed and checked `registries.yaml`.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    mirrors: BTreeMap<String, Mirror>,
    hosts: BTreeMap<String, HostSettings>,
    /// When false, registries that have mirrors are pulled from the mirrors
    /// only (k3s's `--disable-default-registry-endpoint`).
    default_endpoint: bool,
}

#[derive(Debug, Clone)]
struct Mirror {
    /// (plain_http, host)
    endpoints: Vec<(bool, String)>,
    rewrites: Vec<(Regex, String)>,
}

#[derive(Debug, Clone, Default)]
struct HostSettings {
    credentials: Option<Credentials>,
    ca_pem: Vec<Vec<u8>>,
    insecure_skip_verify: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    mirrors: BTreeMap<String, FileMirror>,
    #[serde(default)]
    configs: BTreeMap<String, FileConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMirror {
    #[serde(default)]
    endpoint: Vec<String>,
    /// A mapping, kept in file order: the first matching rewrite applies.
    #[serde(default)]
    rewrite: serde_yaml_ng::Mapping,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    auth: Option<FileAuth>,
    tls: Option<FileTls>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
    identitytoken: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

impl RegistryConfig {
    /// Read the file given by `--private-registry`, or the default path when
    /// none was given. A missing default file is no configuration; a missing
    /// file that was asked for is an error.
    pub fn load(path: Option<&Path>) -> anyhow::Result<RegistryConfig> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => RegistryConfig::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(RegistryConfig::default().with_default_endpoint(true))
            }
            Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
        }
    }

    /// Parse the text of a `registries.yaml` read from `origin`.
    pub fn parse(text: &str, origin: &Path) -> anyhow::Result<RegistryConfig> {
        let at = || origin.display().to_string();
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml_ng::from_str(text).with_context(|| format!("parsing {}", at()))?
        };
        let mut mirrors = BTreeMap::new();
        for (registry, m) in file.mirrors {
            let endpoints = m
                .endpoint
                .iter()
                .map(|e| parse_endpoint(e))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("{}: mirrors.{registry}", at()))?;
            let mut rewrites = Vec::new();
            for (k, v) in m.rewrite {
                let (Some(pattern), Some(replacement)) = (k.as_str(), v.as_str()) else {
                    bail!(
                        "{}: mirrors.{registry}.rewrite: patterns and replacements must be strings",
                        at()
                    );
                };
                let re = Regex::new(pattern)
                    .with_context(|| format!("{}: mirrors.{registry}.rewrite {pattern:?}", at()))?;
                rewrites.push((re, replacement.to_string()));
            }
            mirrors.insert(
                registry,
                Mirror {
                    endpoints,
                    rewrites,
                },
            );
        }
        let mut hosts = BTreeMap::new();
        for (host, c) in file.configs {
            let settings = host_settings(c).with_context(|| format!("{}: configs.{host}", at()))?;
            hosts.insert(host, settings);
        }
        Ok(RegistryConfig {
            mirrors,
            hosts,
            default_endpoint: true,
        })
    }

    /// Whether registries with mirrors fall back to their own endpoint.
    pub fn with_default_endpoint(mut self, enabled: bool) -> RegistryConfig {
        self.default_endpoint = enabled;
        self
    }

    /// How many registries have mirrors, and how many hosts have settings.
    pub fn summary(&self) -> (usize, usize) {
        (self.mirrors.len(), self.hosts.len())
    }

    /// The endpoints to try, in order, for `repository` of `registry` (as in
    /// a normalised name: `docker.io`, `library/busybox`). `upstream_auth`
    /// (from a pod's imagePullSecrets) is for the registry's own endpoint
    /// only: mirrors use their configured auth, never a pod's secret.
    pub fn endpoints(
        &self,
        registry: &str,
        repository: &str,
        upstream_auth: Option<&Credentials>,
    ) -> Vec<Endpoint> {
        let mut out = Vec::new();
        let mirror = self.mirrors.get(registry).or_else(|| self.mirrors.get("*"));
        if let Some(m) = mirror {
            for (plain_http, host) in &m.endpoints {
                let repository = m
                    .rewrites
                    .iter()
                    .find(|(re, _)| re.is_match(repository))
                    .map_or_else(
                        || repository.to_string(),
                        |(re, to)| re.replace_all(repository, to.as_str()).into_owned(),
                    );
                out.push(self.endpoint(host, *plain_http, repository, None, None));
            }
        }
        if mirror.is_none() || self.default_endpoint {
            let host = if registry == "docker.io" {
                "registry-1.docker.io"
            } else {
                registry
            };
            out.push(self.endpoint(
                host,
                is_loopback(host),
                repository.to_string(),
                Some(registry),
                upstream_auth,
            ));
        }
        out
    }

    fn endpoint(
        &self,
        host: &str,
        plain_http: bool,
        repository: String,
        registry: Option<&str>,
        auth: Option<&Credentials>,
    ) -> Endpoint {
        let settings = self
            .hosts
            .get(host)
            .or_else(|| registry.and_then(|r| self.hosts.get(r)))
            .or_else(|| self.hosts.get("*"))
            .cloned()
            .unwrap_or_default();
        Endpoint {
            host: host.to_string(),
            plain_http,
            repository,
            credentials: auth.cloned().or(settings.credentials),
            ca_pem: settings.ca_pem,
            insecure_skip_verify: settings.insecure_skip_verify,
        }
    }
}

/// `http://host:port`, `https://host`, `host:port` (HTTPS); a path may only
/// be `/` or `/v2`.
fn parse_endpoint(e: &str) -> anyhow::Result<(bool, String)> {
    let (plain_http, rest) = if let Some(r) = e.strip_prefix("http://") {
        (true, r)
    } else if let Some(r) = e.strip_prefix("https://") {
        (false, r)
    } else if e.contains("://") {
        bail!("endpoint {e:?}: only http:// and https:// are supported");
    } else {
        (false, e)
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(path.trim_end_matches('/'), "" | "v2") {
        bail!("endpoint {e:?}: a path other than /v2 is not supported");
    }
    if host.is_empty() || host.contains(['@', '?', '#', ' ']) {
        bail!("endpoint {e:?}: not a host[:port]");
    }
    Ok((plain_http, host.to_string()))
}

fn host_settings(c: FileConfig) -> anyhow::Result<HostSettings> {
    let mut s = HostSettings::default();
    if let Some(a) = c.auth {
        if a.identitytoken.is_some() {
            bail!("auth.identitytoken is not supported yet; use username and password");
        }
        s.credentials = match (a.username, a.password, a.auth) {
            (Some(username), password, None) => Some(Credentials {
                username,
                password: password.unwrap_or_default(),
            }),
            (None, None, Some(encoded)) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| anyhow!("auth.auth is not base64"))?;
                let text = String::from_utf8(raw).map_err(|_| anyhow!("auth.auth is not UTF-8"))?;
                let (username, password) = text
                    .split_once(':')
                    .ok_or_else(|| anyhow!("auth.auth must encode user:password"))?;
                Some(Credentials {
                    username: username.to_string(),
                    password: password.to_string(),
                })
            }
            (None, None, None) => None,
            _ => bail!("auth: give either username and password, or auth"),
        };
    }
    if let Some(t) = c.tls {
        if t.cert_file.is_some() || t.key_file.is_some() {
            bail!("tls.cert_file/key_file: client certificates are not supported yet");
        }
        if let Some(ca) = t.ca_file {
            let pem = std::fs::read(&ca)
                .with_context(|| format!("tls.ca_file: reading {}", ca.display()))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                bail!("tls.ca_file: {} holds no PEM certificate", ca.display());
            }
            s.ca_pem.push(pem);
        }
        s.insecure_skip_verify = t.insecure_skip_verify;
    }
    Ok(s)
}

fn is_loopback(host: &str) -> bool {
    let bare = match host.rsplit_once(':') {
        // `[::1]:5000`, `127.0.0.1:5000`, `localhost:5000`
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
mirrors:
  registry.example.test:
    endpoint:
      - "http://127.0.0.1:5000"
      - "mirror.example.test:8443/v2"
    rewrite:
      "^mirrored/(.*)": "library/$1"
      "^(.*)$": "never/$1"
  "*":
    endpoint: ["http://127.0.0.1:6000"]
configs:
  "127.0.0.1:5000":
    auth: {username: u, password: p}
  mirror.example.test:8443:
    auth: {auth: "dTI6cDI="}
    tls: {insecure_skip_verify: true}
  docker.io:
    auth: {username: hub, password: secret}
"#;

    #[test]
    fn mirrors_rewrites_and_auth() {
        let c = RegistryConfig::parse(YAML, Path::new("r.yaml")).expect("parse");
        let eps = c.endpoints("registry.example.test", "mirrored/busybox", None);
        assert_eq!(eps.len(), 3);
        assert_eq!(eps[0].url(), "http://127.0.0.1:5000");
        assert_eq!(eps[0].repository, "library/busybox");
        let u = |e: &Endpoint| e.credentials.as_ref().map(|c| c.username.clone());
        assert_eq!(u(&eps[0]).as_deref(), Some("u"));
        assert_eq!(eps[1].url(), "https://mirror.example.test:8443");
        assert_eq!(u(&eps[1]).as_deref(), Some("u2"));
        assert!(eps[1].insecure_skip_verify);
        // The default endpoint: no rewrite, no mirror's auth.
        assert_eq!(eps[2].url(), "https://registry.example.test");
        assert_eq!(eps[2].repository, "mirrored/busybox");
        assert_eq!(u(&eps[2]), None);

        let c = c.with_default_endpoint(false);
        assert_eq!(
            c.endpoints("registry.example.test", "x", None).len(),
            2,
            "no fallback to the default endpoint"
        );
        // `*` covers registries without a mirror of their own.
        let eps = c.endpoints("docker.io", "library/busybox", None);
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].url(), "http://127.0.0.1:6000");
    }

    #[test]
    fn default_endpoints_and_pull_secrets() {
        let c = RegistryConfig::default().with_default_endpoint(true);
        let eps = c.endpoints("docker.io", "library/busybox", None);
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].url(), "https://registry-1.docker.io");
        let eps = c.endpoints("localhost:5000", "a", None);
        assert_eq!(eps[0].url(), "http://localhost:5000");
        let eps = c.endpoints("[::1]:5000", "a", None);
        assert!(eps[0].plain_http);
        let secret = Credentials {
            username: "pod".into(),
            password: "s".into(),
        };
        let c = RegistryConfig::parse(YAML, Path::new("r.yaml")).expect("parse");
        // docker.io's config applies to its default endpoint; a pod's
        // secret overrides it.
        let eps = c.endpoints("quay.io", "a/b", None);
        assert_eq!(eps.last().expect("ep").url(), "https://quay.io");
        let eps = c.endpoints("registry.example.test", "a", Some(&secret));
        assert_eq!(
            eps[0].credentials.as_ref().map(|c| c.username.as_str()),
            Some("u")
        );
        assert_eq!(
            eps[2].credentials.as_ref().map(|c| c.username.as_str()),
            Some("pod")
        );
    }

    #[test]
    fn bad_files_are_errors() {
        for (yaml, what) in [
            ("mirrors: {a: {endpoint: [\"ftp://x\"]}}", "only http"),
            ("mirrors: {a: {endpoint: [\"https://x/prefix\"]}}", "path"),
            ("mirrors: {a: {rewrite: {\"(\": x}}}", "rewrite"),
            ("configs: {a: {auth: {identitytoken: t}}}", "identitytoken"),
            (
                "configs: {a: {tls: {cert_file: /c}}}",
                "client certificates",
            ),
            ("configs: {a: {auth: {auth: \"!!\"}}}", "base64"),
            ("mirror: {}", "unknown field"),
        ] {
            let err = RegistryConfig::parse(yaml, Path::new("r.yaml")).expect_err(yaml);
            assert!(format!("{err:#}").contains(what), "{yaml}: {err:#}");
        }
        assert!(RegistryConfig::load(Some(Path::new("/nonexistent/kone-r.yaml"))).is_err());
        let empty = RegistryConfig::parse("", Path::new("r.yaml")).expect("empty file");
        assert_eq!(empty.summary(), (0, 0));
    }
}
