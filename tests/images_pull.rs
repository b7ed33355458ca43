//! `kone images pull` against Debian's docker-registry on 127.0.0.1 with
//! htpasswd basic auth: the project's test image pushed with skopeo, pulled
//! through a registries.yaml mirror with a rewrite, by tag, by digest and
//! through an OCI index; an unknown tag, a wrong password, a corrupt blob and
//! a stopped registry each fail with one clear line and leave the store as
//! it was; two concurrent pulls in one process fetch the layer once.
//!
//! Needs docker-registry, skopeo and htpasswd (apache2-utils); .ci/run
//! installs them. Only 127.0.0.1 is contacted: the mirrored registry's own
//! endpoint is disabled (`--disable-default-registry-endpoint`).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

impl Registry {
    fn start(dir: &Path, tls: Option<&Tls>) -> Registry {
        std::fs::create_dir_all(dir).expect("registry dir");
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils) is needed");
        assert!(htpasswd.status.success());
        std::fs::write(dir.join("htpasswd"), &htpasswd.stdout).expect("write htpasswd");
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
             http:\n  addr: 127.0.0.1:{port}\n  secret: kone-test\n{tls}\
             auth:\n  htpasswd:\n    realm: kone-test\n    path: {dir}/htpasswd\n",
            root = dir.join("storage").display(),
            dir = dir.display(),
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

    /// `skopeo copy SRC docker://127.0.0.1:PORT/DEST`.
    fn push(&self, src: &str, dest: &str) {
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
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
/// manifest) and library/busybox:oci (OCI manifest). None when the image
/// cannot be built here.
fn setup(tls: Option<&Tls>) -> Option<Setup> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let images = tmp.path().join("images");
    if !build_image(&images) {
        return None;
    }
    let reg = Registry::start(&tmp.path().join("registry"), tls);
    let docker = images.join("busybox-docker.tar");
    let oci = images.join("busybox-oci.tar");
    reg.push(
        &format!("docker-archive:{}", docker.display()),
        "library/busybox:1",
    );
    reg.push(
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
    let Some(mut s) = setup(None) else {
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
    let Some(s) = setup(None) else {
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
    let Some(s) = setup(Some(&tls)) else {
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
