//! What representation a client asked for in its Accept header.

use http::HeaderMap;

use crate::apiserver::status::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The object (or list) itself, as JSON.
    Json,
    /// A meta.k8s.io Table at the given version ("v1" or "v1beta1").
    Table(&'static str),
    /// Only metadata: PartialObjectMetadata(List) at the given version.
    Metadata(&'static str),
}

impl Output {
    /// The meta.k8s.io version of a Table or metadata view ("v1" for JSON).
    pub fn version(self) -> &'static str {
        match self {
            Output::Json => "v1",
            Output::Table(v) | Output::Metadata(v) => v,
        }
    }
}

/// One media range of an Accept header, with the Kubernetes parameters.
pub struct MediaRange<'a> {
    pub mime: &'a str,
    /// `as=`: Table, PartialObjectMetadata, APIGroupDiscoveryList, …
    pub as_: &'a str,
    pub group: &'a str,
    pub version: &'a str,
}

/// The media ranges of the Accept header, in the client's order.
pub fn media_ranges(headers: &HeaderMap) -> Vec<MediaRange<'_>> {
    let Some(accept) = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Vec::new();
    };
    accept
        .split(',')
        .map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let mut r = MediaRange {
                mime: parts.next().unwrap_or(""),
                as_: "",
                group: "",
                version: "",
            };
            for p in parts {
                match p.split_once('=') {
                    Some(("as", x)) => r.as_ = x,
                    Some(("g", x)) => r.group = x,
                    Some(("v", x)) => r.version = x,
                    _ => {}
                }
            }
            r
        })
        .collect()
}

/// Pick the first acceptable representation, in the client's order.
pub fn output(headers: &HeaderMap) -> ApiResult<Output> {
    let ranges = media_ranges(headers);
    if ranges.is_empty() {
        return Ok(Output::Json);
    }
    for r in ranges {
        if !matches!(
            r.mime,
            "application/json" | "application/*" | "*/*" | "application/yaml"
        ) {
            continue;
        }
        let version = match r.version {
            "v1" => "v1",
            "v1beta1" => "v1beta1",
            _ => "",
        };
        match (r.as_, r.group) {
            ("", _) => return Ok(Output::Json),
            ("Table", "meta.k8s.io") if !version.is_empty() => return Ok(Output::Table(version)),
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io")
                if !version.is_empty() =>
            {
                return Ok(Output::Metadata(version))
            }
            _ => continue,
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/json;as=Table;g=meta.k8s.io, application/json;as=PartialObjectMetadata;g=meta.k8s.io",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(accept: &str) -> ApiResult<Output> {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, accept.parse().expect("header"));
        output(&h)
    }

    #[test]
    fn kubectl_table_request() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(with(a).ok(), Some(Output::Table("v1")));
        assert_eq!(with("application/json").ok(), Some(Output::Json));
        assert_eq!(
            with("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").ok(),
            Some(Output::Metadata("v1"))
        );
        assert_eq!(
            with("application/vnd.kubernetes.protobuf, */*").ok(),
            Some(Output::Json)
        );
        assert!(with("application/vnd.kubernetes.protobuf").is_err());
    }
}
