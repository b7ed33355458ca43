//! Query parameters of API requests.

use std::collections::HashMap;

use crate::api::fields::FieldSelector;
use crate::api::labels::LabelSelector;
use crate::api::registry::ResourceInfo;
use crate::apiserver::status::{ApiError, ApiResult};

/// The parameters that shape reads and writes, parsed once.
#[derive(Debug, Default, Clone)]
pub struct Query {
    raw: HashMap<String, String>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let mut raw = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            raw.insert(decode(k), decode(v));
        }
        Query { raw }
    }

    /// A copy without the given parameters.
    pub fn without(mut self, keys: &[&str]) -> Query {
        for k in keys {
            self.raw.remove(*k);
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(
            self.raw.get(key).map(String::as_str),
            Some("true" | "1" | "")
        ) && self.raw.contains_key(key)
    }

    pub fn watch(&self) -> bool {
        self.flag("watch")
    }

    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}. Only \"All\" is allowed"
            ))),
        }
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.get("resourceVersion")
    }

    pub fn limit(&self) -> ApiResult<usize> {
        match self.get("limit") {
            None => Ok(0),
            Some(l) => l
                .parse::<i64>()
                .map(|n| n.max(0) as usize)
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}"))),
        }
    }

    pub fn timeout_seconds(&self) -> Option<u64> {
        self.get("timeoutSeconds").and_then(|s| s.parse().ok())
    }

    pub fn label_selector(&self) -> ApiResult<Option<LabelSelector>> {
        match self.get("labelSelector") {
            None => Ok(None),
            Some(s) => LabelSelector::parse(s)
                .map(Some)
                .map_err(ApiError::bad_request),
        }
    }

    pub fn field_selector(&self, info: &ResourceInfo) -> ApiResult<Option<FieldSelector>> {
        match self.get("fieldSelector") {
            None => Ok(None),
            Some(s) => {
                let sel = FieldSelector::parse(s).map_err(ApiError::bad_request)?;
                sel.validate_for(info.group, info.plural)
                    .map_err(ApiError::bad_request)?;
                Ok(Some(sel))
            }
        }
    }

    /// fieldValidation: Strict, Warn or Ignore. kubectl sends Strict by default.
    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.get("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

fn decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// %XX escapes decoded; a malformed escape is kept as it is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&limit=5&dryRun=All",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.watch());
        assert_eq!(q.limit().ok(), Some(5));
        assert!(matches!(q.dry_run(), Ok(true)));
        assert!(!Query::parse(Some("watch=false")).watch());
        assert!(Query::parse(Some("dryRun=Some")).dry_run().is_err());
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("a%3Ab"), "a:b");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
