//! The authenticated user, as the authorizer and audit see it.

/// Who made a request: the Kubernetes `user.Info` (name, uid, groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The user a client certificate stands for: CN is the name, every O is a
/// group, as kube-apiserver's x509 authenticator maps them.
///
/// Only call this on certificates already verified against the client CA;
/// this function checks nothing but the syntax. A certificate without a CN
/// authenticates no one (kube-apiserver does the same).
pub fn user_from_cert_der(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(UserInfo {
        name,
        uid: String::new(),
        groups,
    })
}
