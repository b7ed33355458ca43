//! Choosing how a streaming request is served, and the `101 Switching
//! Protocols` answer: a WebSocket with a negotiated subprotocol, or a
//! SPDY/3.1 upgrade with a negotiated `X-Stream-Protocol-Version`, as
//! upstream's wsstream and httpstream handshakes do.

use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";
const SPDY: &str = "SPDY/3.1";

/// The connection a client asked for, with the protocol agreed on.
#[derive(Debug, PartialEq)]
pub enum Transport {
    WebSocket(String),
    Spdy(String),
}

/// A refused handshake: the status and message to answer with.
#[derive(Debug, PartialEq)]
pub struct Refused(pub StatusCode, pub String);

/// Every value of a header, comma lists split.
pub fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The first protocol of the client's list (its order of preference) that
/// the server speaks.
fn choose(client: &[String], server: &[&str]) -> Option<String> {
    client
        .iter()
        .find(|c| server.contains(&c.as_str()))
        .cloned()
}

/// Which transport and protocol serve this request, and the headers of the
/// 101 answer.
pub fn negotiate(
    headers: &HeaderMap,
    websocket: &[&str],
    spdy: &[&str],
) -> Result<(Transport, HeaderMap), Refused> {
    let upgrade = values(headers, UPGRADE.as_str());
    let mut answer = HeaderMap::new();
    answer.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let key = headers
            .get(SEC_WEBSOCKET_KEY)
            .ok_or_else(|| Refused(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key".into()))?;
        let offered = values(headers, SEC_WEBSOCKET_PROTOCOL.as_str());
        let protocol = choose(&offered, websocket).ok_or_else(|| {
            Refused(
                StatusCode::BAD_REQUEST,
                format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {websocket:?}"
                ),
            )
        })?;
        answer.insert(UPGRADE, HeaderValue::from_static("websocket"));
        answer.insert(
            SEC_WEBSOCKET_ACCEPT,
            header(&derive_accept_key(key.as_bytes()))?,
        );
        answer.insert(SEC_WEBSOCKET_PROTOCOL, header(&protocol)?);
        return Ok((Transport::WebSocket(protocol), answer));
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case(SPDY)) {
        let offered = values(headers, STREAM_PROTOCOL_HEADER);
        let protocol = choose(&offered, spdy).ok_or_else(|| {
            Refused(
                StatusCode::FORBIDDEN,
                format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {spdy:?}"
                ),
            )
        })?;
        answer.insert(UPGRADE, HeaderValue::from_static(SPDY));
        answer.insert(STREAM_PROTOCOL_HEADER, header(&protocol)?);
        return Ok((Transport::Spdy(protocol), answer));
    }
    Err(Refused(
        StatusCode::BAD_REQUEST,
        "Upgrade request required".into(),
    ))
}

fn header(v: &str) -> Result<HeaderValue, Refused> {
    HeaderValue::from_str(v)
        .map_err(|_| Refused(StatusCode::BAD_REQUEST, format!("bad header value {v:?}")))
}

/// The raw connection once the 101 answer went out.
pub async fn upgraded(on: OnUpgrade) -> hyper::Result<TokioIo<Upgraded>> {
    Ok(TokioIo::new(on.await?))
}

/// The server end of a WebSocket over an upgraded connection.
pub async fn websocket(io: TokioIo<Upgraded>) -> WebSocketStream<TokioIo<Upgraded>> {
    WebSocketStream::from_raw_socket(io, Role::Server, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn websocket_takes_the_clients_first_supported_protocol() {
        let h = req(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            (
                "sec-websocket-protocol",
                "v6.channel.k8s.io, v5.channel.k8s.io",
            ),
            ("sec-websocket-protocol", "v4.channel.k8s.io"),
        ]);
        let (t, answer) = negotiate(&h, &["v4.channel.k8s.io", "v5.channel.k8s.io"], &[]).unwrap();
        assert_eq!(t, Transport::WebSocket("v5.channel.k8s.io".into()));
        // RFC 6455's example key and accept value.
        assert_eq!(answer[SEC_WEBSOCKET_ACCEPT], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(answer[SEC_WEBSOCKET_PROTOCOL], "v5.channel.k8s.io");
        assert_eq!(answer[UPGRADE], "websocket");
    }

    #[test]
    fn spdy_negotiates_the_stream_protocol_header() {
        let h = req(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
        ]);
        let (t, answer) = negotiate(&h, &[], &["v4.channel.k8s.io"]).unwrap();
        assert_eq!(t, Transport::Spdy("v4.channel.k8s.io".into()));
        assert_eq!(answer[STREAM_PROTOCOL_HEADER], "v4.channel.k8s.io");
        assert_eq!(answer[UPGRADE], "SPDY/3.1");

        let old = req(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v2.channel.k8s.io"),
        ]);
        let Refused(code, msg) = negotiate(&old, &[], &["v4.channel.k8s.io"]).unwrap_err();
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert!(msg.contains("unable to negotiate protocol"), "{msg}");
    }

    #[test]
    fn a_plain_request_is_told_to_upgrade() {
        let Refused(code, msg) = negotiate(&HeaderMap::new(), &[V], &[V]).unwrap_err();
        assert_eq!(
            (code, msg.as_str()),
            (StatusCode::BAD_REQUEST, "Upgrade request required")
        );
    }

    const V: &str = "v4.channel.k8s.io";
}
