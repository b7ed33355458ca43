//! Image names, normalised the way containerd and docker do:
//! `busybox` → `docker.io/library/busybox:latest`,
//! `kone.test/busybox:1` stays as it is.

/// Normalise an image reference to its full form, `domain/path:tag` or
/// `domain/path[:tag]@sha256:…`.
pub fn normalize(name: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid image name {name:?}: {why}");
    if name.is_empty() || name.len() > 255 {
        return Err(bad("empty or longer than 255 characters"));
    }
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => {
            super::Digest::parse(d).map_err(|e| bad(&e))?;
            (r, Some(d))
        }
        None => (name, None),
    };
    // The tag is after the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    let (domain, path) = match repo.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, path.to_string())
        }
        _ => ("docker.io", repo.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if !valid_domain(domain) {
        return Err(bad("bad registry host"));
    }
    if path.is_empty() || !path.split('/').all(valid_path_component) {
        return Err(bad(
            "repository must be lowercase letters, digits and separators",
        ));
    }
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(bad("bad tag"));
        }
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), Some(d)) => out.push_str(&format!(":{t}@{d}")),
        (Some(t), None) => out.push_str(&format!(":{t}")),
        (None, Some(d)) => out.push_str(&format!("@{d}")),
        (None, None) => out.push_str(":latest"),
    }
    Ok(out)
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or runs of '-'.
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalises_like_containerd() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            (
                "rancher/klipper-lb:v0.4",
                "docker.io/rancher/klipper-lb:v0.4",
            ),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("kone.test/busybox:1", "kone.test/busybox:1"),
            ("localhost/foo", "localhost/foo:latest"),
            ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("quay.io/a/b/c", "quay.io/a/b/c:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
        let d = format!("sha256:{}", "0".repeat(64));
        assert_eq!(
            normalize(&format!("busybox@{d}")),
            Ok(format!("docker.io/library/busybox@{d}"))
        );
        assert_eq!(
            normalize(&format!("busybox:1@{d}")),
            Ok(format!("docker.io/library/busybox:1@{d}"))
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "BusyBox",
            "busybox:",
            "busybox@sha256:1",
            "a//b",
            "-a",
            "busybox:-x",
            "a/../b",
            "a b",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
