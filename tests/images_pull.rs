//! `kone images pull` against Debian's docker-registry on 127.0.0.1 with
//! htpasswd basic auth: the project's test image pushed with skopeo, pulled
//! through a registries.yaml mirror with a rewrite, by tag, by digest and
//! through an OCI index; an unknown tag, a wrong password, a corrupt blob and
//! a stopped registry each fail with one clear line and leave the store as
//! it was; two concurrent pulls in one process fetch the layer once. Also
//! HTTPS with a CA from registries.yaml, and bearer tokens from a token
//! server (the registry token spec) instead of basic auth.
//!
//! Needs docker-registry, skopeo and htpasswd (apache2-utils); .ci/run
//! installs them. Only 127.0.0.1 is contacted: the mirrored registry's own
//! endpoint is disabled (`--disable-default-registry-endpoint`).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::images::{build_image, fails, kone_images, listing, ok};
use kone::runtime::images::{Puller, RegistryConfig, Store};

const USER: &str = "kone";
const PASSWORD: &str = "s3cret-pw";
const MIRRORED: &str = "registry.example.test/mirrored/busybox";

/// A docker-registry process, killed on drop.
struct Registry {
    child: Option<Child>,
    port: u16,
    https: bool,
    dir: PathBuf,
}

/// A certificate and key for the registry's HTTPS, and the CA that signed it.
struct Tls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Tls {
    fn new() -> Tls {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("leaf params")
            .signed_by(&key, &ca)
            .expect("leaf");
        Tls {
            ca_pem: ca.pem(),
            cert_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A token server for the registry's bearer-token auth (the Docker
/// registry token spec): checks basic credentials, answers with an ES256
/// JWT whose x5c certificate a test CA signed. Stops on drop.
struct TokenServer {
    port: u16,
    ca_pem: String,
    /// Token requests answered with a token.
    issued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const SERVICE: &str = "kone-test-registry";
const ISSUER: &str = "kone-test-issuer";

impl TokenServer {
    fn start() -> TokenServer {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["token-signer".to_string()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("signer cert");
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let issued = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (issued.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    answer_token_request(conn, &key, &x5c, &count);
                }
            }
        });
        TokenServer {
            port,
            ca_pem: ca.pem(),
            issued,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer_token_request(
    mut conn: TcpStream,
    key: &rcgen::KeyPair,
    x5c: &str,
    issued: &AtomicUsize,
) {
    use std::io::{BufRead, BufReader, Write};
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    let _ = reader.read_line(&mut request_line);
    let mut authorized = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                let want =
                    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
                authorized = value.trim() == format!("Basic {want}");
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let access: Vec<serde_json::Value> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("scope="))
        .map(percent_decode)
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind, "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let (status, body) = if authorized {
        let n = issued.fetch_add(1, Ordering::SeqCst);
        let token = sign_jwt(key, x5c, access, n);
        (
            "200 OK",
            serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                .to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"details":"bad credentials"}"#.to_string(),
        )
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An ES256 JWS: ring signs ECDSA as DER, JWS wants r and s, 32 bytes each.
fn sign_jwt(key: &rcgen::KeyPair, x5c: &str, access: Vec<serde_json::Value>, n: usize) -> String {
    use rcgen::SigningKey as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": USER, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{n}"), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let der = key.sign(signing_input.as_bytes()).expect("sign");
    // SEQUENCE { INTEGER r, INTEGER s }, short lengths for P-256.
    let int_at = |at: usize| -> (Vec<u8>, usize) {
        assert_eq!(der[at], 0x02, "DER integer");
        let len = der[at + 1] as usize;
        let v = &der[at + 2..at + 2 + len];
        let v = &v[v.len().saturating_sub(32)..];
        let mut out = vec![0u8; 32 - v.len()];
        out.extend_from_slice(v);
        (out, at + 2 + len)
    };
    let (r, next) = int_at(2);
    let (sig_s, _) = int_at(next);
    format!("{signing_input}.{}", b64(&[r, sig_s].concat()))
}

impl Registry {
    /// A registry with htpasswd basic auth, or bearer tokens from `token`.
    fn start(dir: &Path, tls: Option<&Tls>, token: Option<&TokenServer>) -> Registry {
        std::fs::create_dir_all(dir).expect("registry dir");
        let auth = match token {
            None => {
                let htpasswd = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASSWORD])
                    .output()
                    .expect("htpasswd (apache2-utils) is needed");
                assert!(htpasswd.status.success());
                std::fs::write(dir.join("htpasswd"), &htpasswd.stdout).expect("htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: kone-test\n    path: {}/htpasswd\n",
                    dir.display()
                )
            }
            Some(t) => {
                std::fs::write(dir.join("token-ca.pem"), &t.ca_pem).expect("token ca");
                format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    \
                     service: {SERVICE}\n    issuer: {ISSUER}\n    \
                     rootcertbundle: {}/token-ca.pem\n",
                    t.port,
                    dir.display()
                )
            }
        };
        let port = common::free_port();
        let tls = match tls {
            Some(t) => {
                std::fs::write(dir.join("cert.pem"), &t.cert_pem).expect("cert");
                std::fs::write(dir.join("key.pem"), &t.key_pem).expect("key");
                format!(
                    "  tls:\n    certificate: {d}/cert.pem\n    key: {d}/key.pem\n",
                    d = dir.display()
                )
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {root}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: kone-test\n{tls}{auth}",
            root = dir.join("storage").display(),
        );
        std::fs::write(dir.join("config.yml"), config).expect("write registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("docker-registry is needed");
        let mut reg = Registry {
            child: Some(child),
            port,
            https: !tls.is_empty(),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg.ensure_running();
        reg
    }

    fn ensure_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            assert!(
                c.try_wait().expect("try_wait").is_none(),
                "registry exited: {}",
                self.log()
            );
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// `skopeo copy [EXTRA] SRC docker://127.0.0.1:PORT/DEST`.
    fn push(&self, extra: &[&str], src: &str, dest: &str) {
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("--dest-creds={USER}:{PASSWORD}"))
            .arg(src)
            .arg(format!("docker://{}/{dest}", self.host()))
            .stdin(Stdio::null())
            .output()
            .expect("skopeo is needed");
        assert!(
            out.status.success(),
            "skopeo copy {src}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Requests in the access log for a path.
    fn gets(&self, path: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(&format!("\"GET {path} ")))
            .count()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// registries.yaml mirroring registry.example.test to the local registry,
/// `mirrored/X` → `library/X`, with basic auth.
fn registries_yaml(reg: &Registry, password: &str) -> String {
    registries_yaml_tls(reg, password, "")
}

/// [`registries_yaml`] with a `tls:` block (its lines indented by 4).
fn registries_yaml_tls(reg: &Registry, password: &str, tls: &str) -> String {
    format!(
        "mirrors:\n  registry.example.test:\n    endpoint:\n      - \"{url}\"\n    \
         rewrite:\n      \"^mirrored/(.*)\": \"library/$1\"\n\
         configs:\n  \"{host}\":\n    auth:\n      username: {USER}\n      password: {password}\n{tls}",
        url = reg.url(),
        host = reg.host()
    )
}

fn http_client() -> reqwest::Client {
    kone::identity::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Fetch a manifest (docker or OCI) from the registry: (bytes, digest).
async fn manifest(reg: &Registry, reference: &str) -> (Vec<u8>, String) {
    let res = http_client()
        .get(format!(
            "http://{}/v2/library/busybox/manifests/{reference}",
            reg.host()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, \
             application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await
        .expect("GET manifest");
    assert!(res.status().is_success(), "{}", res.status());
    let bytes = res.bytes().await.expect("manifest body").to_vec();
    let digest = format!("sha256:{}", sha256_hex(&bytes));
    (bytes, digest)
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// Push an OCI index as `library/busybox:multi`: the docker manifest for
/// this host's platform, the OCI one labelled for another platform.
async fn push_index(reg: &Registry, docker: (&[u8], &str), oci: (&[u8], &str)) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": oci.1, "size": oci.0.len(),
             "platform": {"os": "linux", "architecture": "mips64le"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "digest": docker.1, "size": docker.0.len(),
             "platform": {"os": "linux", "architecture": arch}},
        ],
    });
    let res = http_client()
        .put(format!(
            "http://{}/v2/library/busybox/manifests/multi",
            reg.host()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(serde_json::to_vec(&index).expect("json"))
        .send()
        .await
        .expect("PUT index");
    let status = res.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        res.text().await.unwrap_or_default()
    );
}

struct Setup {
    tmp: tempfile::TempDir,
    reg: Registry,
    images: PathBuf,
}

/// A registry holding the test image as library/busybox:1 (docker
/// manifest, gzip layer), library/busybox:oci (OCI manifest) and
/// library/zbox:1 (OCI, zstd layer). None when the image cannot be built
/// here.
fn setup(tls: Option<&Tls>, token: Option<&TokenServer>) -> Option<Setup> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let images = tmp.path().join("images");
    if !build_image(&images) {
        return None;
    }
    let reg = Registry::start(&tmp.path().join("registry"), tls, token);
    let docker = images.join("busybox-docker.tar");
    let oci = images.join("busybox-oci.tar");
    // First, while the registry has no gzip copy of the layer for skopeo
    // to reuse instead.
    reg.push(
        &["--dest-compress", "--dest-compress-format=zstd"],
        &format!("oci-archive:{}", oci.display()),
        "library/zbox:1",
    );
    reg.push(
        &[],
        &format!("docker-archive:{}", docker.display()),
        "library/busybox:1",
    );
    reg.push(
        &[],
        &format!("oci-archive:{}", oci.display()),
        "library/busybox:oci",
    );
    Some(Setup { tmp, reg, images })
}

fn inspect(data: &Path, name: &str) -> serde_json::Value {
    let out = ok(&kone_images(data, &["inspect", name]));
    serde_json::from_str(&out).expect("inspect json")
}

/// The IMAGE ID column of `kone images ls` for a name (columns are
/// aligned: the cell starts where its header does).
fn image_id(ls: &str, name: &str) -> String {
    let header = ls.lines().next().expect("header");
    let at = header.find("IMAGE ID").expect("IMAGE ID column");
    let row = ls
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not listed: {ls}"));
    let cell = row[at..].split_whitespace().next().expect("cell");
    assert!(cell.starts_with("sha256:"), "{ls}");
    cell.to_string()
}

#[test]
fn pull_through_mirror_with_basic_auth() {
    let Some(mut s) = setup(None, None) else {
        return;
    };
    let data = s.tmp.path().join("data");
    let good = s.tmp.path().join("registries.yaml");
    std::fs::write(&good, registries_yaml(&s.reg, PASSWORD)).expect("write");
    let good = good.to_str().expect("utf-8").to_string();
    let pull = |data: &Path, file: &str, reference: &str| {
        kone_images(
            data,
            &[
                "pull",
                "--private-registry",
                file,
                "--disable-default-registry-endpoint",
                reference,
            ],
        )
    };

    // By tag, through the mirror with the rewrite and basic auth.
    let tagged = format!("{MIRRORED}:1");
    let out = ok(&pull(&data, &good, &tagged));
    assert!(
        out.contains(&format!("from http://{}", s.reg.host())),
        "{out}"
    );
    assert!(
        out.contains("  layer sha256:") && out.contains("fetched"),
        "{out}"
    );
    assert!(
        out.contains("  snapshot sha256:") && out.contains("unpacked"),
        "{out}"
    );
    assert!(out.contains(&format!("pulled {tagged} ")), "{out}");

    // The same image imported from the archive: same image id (config
    // digest) and the same snapshot, although the pushed layer was
    // recompressed by skopeo and the manifest differs.
    let docker = s.images.join("busybox-docker.tar");
    ok(&kone_images(
        &data,
        &["import", docker.to_str().expect("utf-8")],
    ));
    let ls = ok(&kone_images(&data, &["ls"]));
    assert_eq!(
        image_id(&ls, &tagged),
        image_id(&ls, "kone.test/busybox:1"),
        "{ls}"
    );
    let pulled = inspect(&data, &tagged);
    let imported = inspect(&data, "kone.test/busybox:1");
    assert_eq!(pulled["config_digest"], imported["config_digest"]);
    assert_eq!(pulled["snapshots"], imported["snapshots"]);
    assert_eq!(
        pulled["media_type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let snap = PathBuf::from(pulled["snapshots"][0].as_str().expect("snapshot"));
    assert!(snap.starts_with(data.join("agent/snapshots")));
    let bb = snap.join("bin/busybox");
    assert!(bb.is_file(), "no bin/busybox in {}", snap.display());
    assert!(Command::new(&bb)
        .arg("true")
        .status()
        .expect("run")
        .success());

    // A zstd layer: same image id, same snapshot.
    let zstd = "registry.example.test/mirrored/zbox:1";
    ok(&pull(&data, &good, zstd));
    let z = inspect(&data, zstd);
    assert_eq!(
        z["layers"][0]["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(z["config_digest"], imported["config_digest"]);
    assert_eq!(z["snapshots"], imported["snapshots"]);

    // By digest.
    let digest = pulled["digest"].as_str().expect("digest").to_string();
    let by_digest = format!("{MIRRORED}@{digest}");
    let out = ok(&pull(&data, &good, &by_digest));
    assert!(out.contains("(already present)"), "{out}");
    assert_eq!(inspect(&data, &by_digest)["digest"], digest.as_str());

    // An OCI index: the entry for this host's platform is picked.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (docker_m, docker_d) = manifest(&s.reg, "1").await;
        let (oci_m, oci_d) = manifest(&s.reg, "oci").await;
        assert_eq!(docker_d, digest);
        push_index(&s.reg, (&docker_m, &docker_d), (&oci_m, &oci_d)).await;
    });
    ok(&pull(&data, &good, &format!("{MIRRORED}:multi")));
    assert_eq!(
        inspect(&data, &format!("{MIRRORED}:multi"))["digest"],
        digest.as_str()
    );

    // Failures: one line each, exit 1, the store untouched.
    let before = listing(&data);
    let err = fails(&pull(&data, &good, &format!("{MIRRORED}:nope")));
    assert!(
        err.contains("not found") && err.contains("manifest unknown"),
        "{err}"
    );
    assert_eq!(listing(&data), before, "unknown tag changed the store");

    let bad = s.tmp.path().join("wrong-password.yaml");
    std::fs::write(&bad, registries_yaml(&s.reg, "wrong")).expect("write");
    let err = fails(&pull(&data, bad.to_str().expect("utf-8"), &tagged));
    assert!(err.contains("unauthorized (401)"), "{err}");
    assert_eq!(listing(&data), before, "401 changed the store");

    // A blob corrupted in the registry's storage: refused by digest, into
    // a fresh store that has nothing of the image yet.
    let layer = pulled["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .trim_start_matches("sha256:")
        .to_string();
    let blob = s.reg.dir.join(format!(
        "storage/docker/registry/v2/blobs/sha256/{}/{layer}/data",
        &layer[..2]
    ));
    let mut bytes = std::fs::read(&blob).expect("registry blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&blob, &bytes).expect("corrupt blob");
    let fresh = s.tmp.path().join("fresh");
    ok(&kone_images(&fresh, &["ls"]));
    let empty = listing(&fresh);
    let err = fails(&pull(&fresh, &good, &tagged));
    assert!(err.contains("does not match its digest"), "{err}");
    assert_eq!(listing(&fresh), empty, "a corrupt blob left state behind");
    bytes[mid] ^= 0x55;
    std::fs::write(&blob, &bytes).expect("restore blob");

    // The registry stopped.
    s.reg.stop();
    let err = fails(&pull(&data, &good, &tagged));
    assert!(err.contains("connection refused"), "{err}");
    assert_eq!(listing(&data), before, "a down registry changed the store");

    // A registries.yaml asked for but missing is an error too.
    let err = fails(&pull(&data, "/nonexistent/registries.yaml", &tagged));
    assert!(err.contains("/nonexistent/registries.yaml"), "{err}");
}

#[test]
fn concurrent_pulls_share_one_download() {
    let Some(s) = setup(None, None) else {
        return;
    };
    let yaml = registries_yaml(&s.reg, PASSWORD);
    let config = RegistryConfig::parse(&yaml, Path::new("registries.yaml"))
        .expect("parse")
        .with_default_endpoint(false);
    let store = Store::open(&s.tmp.path().join("data")).expect("store");
    let puller = Puller::new(store, config);
    let tagged = format!("{MIRRORED}:1");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (a, b) = rt.block_on(async {
        let other = puller.clone();
        tokio::join!(puller.pull(&tagged, None), other.pull(&tagged, None))
    });
    let (a, b) = (a.expect("first pull"), b.expect("second pull"));
    assert_eq!(a, b);
    let layer = format!("/v2/library/busybox/blobs/{}", a.layers[0].digest);
    let manifest = "/v2/library/busybox/manifests/1";
    assert_eq!(
        s.reg.gets(&layer),
        1,
        "layer fetched once:\n{}",
        s.reg.log()
    );
    assert_eq!(s.reg.gets(manifest), 1, "manifest fetched once");

    // A later pull asks for the manifest again but finds the layer stored.
    let c = rt.block_on(puller.pull(&tagged, None)).expect("third pull");
    assert_eq!(c.digest, a.digest);
    assert_eq!(s.reg.gets(&layer), 1);
    assert_eq!(s.reg.gets(manifest), 2);
}

#[test]
fn pull_over_https_with_ca_file() {
    let tls = Tls::new();
    let Some(s) = setup(Some(&tls), None) else {
        return;
    };
    let ca = s.tmp.path().join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).expect("ca");
    let data = s.tmp.path().join("data");
    let tagged = format!("{MIRRORED}:1");
    let pull = |name: &str, tls_block: &str| {
        let file = s.tmp.path().join(name);
        std::fs::write(&file, registries_yaml_tls(&s.reg, PASSWORD, tls_block)).expect("write");
        kone_images(
            &data,
            &[
                "pull",
                "--private-registry",
                file.to_str().expect("utf-8"),
                "--disable-default-registry-endpoint",
                &tagged,
            ],
        )
    };

    // The registry's CA is not trusted by default.
    ok(&kone_images(&data, &["ls"]));
    let before = listing(&data);
    let err = fails(&pull("no-ca.yaml", ""));
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(listing(&data), before);

    let out = ok(&pull(
        "ca.yaml",
        &format!("    tls:\n      ca_file: {}\n", ca.display()),
    ));
    assert!(
        out.contains(&format!("from https://{}", s.reg.host())),
        "{out}"
    );
    ok(&kone_images(&data, &["rm", &tagged]));

    let out = ok(&pull(
        "insecure.yaml",
        "    tls:\n      insecure_skip_verify: true\n",
    ));
    assert!(out.contains(&format!("pulled {tagged} ")), "{out}");
}

#[test]
fn pull_with_bearer_token_auth() {
    let tokens = TokenServer::start();
    let Some(s) = setup(None, Some(&tokens)) else {
        return;
    };
    let pushed = tokens.issued.load(Ordering::SeqCst);
    assert!(pushed > 0, "skopeo's push went through the token server");
    let data = s.tmp.path().join("data");
    let tagged = format!("{MIRRORED}:1");
    let pull = |name: &str, password: &str| {
        let file = s.tmp.path().join(name);
        std::fs::write(&file, registries_yaml(&s.reg, password)).expect("write");
        kone_images(
            &data,
            &[
                "pull",
                "--private-registry",
                file.to_str().expect("utf-8"),
                "--disable-default-registry-endpoint",
                &tagged,
            ],
        )
    };
    let out = ok(&pull("good.yaml", PASSWORD));
    assert!(out.contains(&format!("pulled {tagged} ")), "{out}");
    assert!(
        tokens.issued.load(Ordering::SeqCst) > pushed,
        "kone fetched a token"
    );
    let before = listing(&data);
    let issued = tokens.issued.load(Ordering::SeqCst);
    let err = fails(&pull("bad.yaml", "wrong"));
    assert!(err.contains("unauthorized (401)"), "{err}");
    assert_eq!(tokens.issued.load(Ordering::SeqCst), issued);
    assert_eq!(listing(&data), before);
}
