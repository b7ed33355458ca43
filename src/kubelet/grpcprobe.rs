//! gRPC probes: one `grpc.health.v1.Health/Check` call over cleartext
//! HTTP/2 (h2c), as upstream's prober makes it.
//!
//! The request and the answer are one-field protobuf messages, so they are
//! encoded here by hand over hyper's HTTP/2 client (already in the build for
//! the API server) rather than pulling in tonic, prost and their code
//! generation for two bytes of protobuf.

use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

const SERVING: u64 = 1;

/// Asks the health service at `host:port` about `service` ("" for the
/// server as a whole). Err carries upstream's message for the probe event.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    let target = format!("{host}:{port}");
    let call = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|_| Failure::Connect)?;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .map_err(|_| Failure::Connect)?;
        tokio::spawn(conn);
        let req = hyper::Request::post(format!("http://{target}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "kube-probe/1.33")
            .body(Full::new(frame(&request(service))))
            .map_err(|e| Failure::Rpc(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Failure::Rpc(e.to_string()))?;
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Rpc(e.to_string()))?;
        let trailers = body.trailers().cloned().unwrap_or_default();
        // A trailers-only answer carries grpc-status in the headers.
        let status = trailers
            .get("grpc-status")
            .or_else(|| headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_string();
        if status != "0" {
            let msg = trailers
                .get("grpc-message")
                .or_else(|| headers.get("grpc-message"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            return Err(Failure::Rpc(format!(
                "rpc error: code = {status} desc = {msg}"
            )));
        }
        Ok(serving_status(body.to_bytes()))
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(Some(SERVING))) => Ok(()),
        Ok(Ok(s)) => Err(format!(
            "service unhealthy (responded with \"{}\")",
            status_name(s)
        )),
        Ok(Err(Failure::Connect)) | Err(_) => Err(format!(
            "timeout: failed to connect service \"{target}\" within {}s",
            timeout.as_secs()
        )),
        Ok(Err(Failure::Rpc(m))) => Err(m),
    }
}

enum Failure {
    Connect,
    Rpc(String),
}

/// HealthCheckRequest { string service = 1; }
fn request(service: &str) -> Vec<u8> {
    if service.is_empty() {
        return vec![];
    }
    let mut out = vec![0x0a];
    varint(&mut out, service.len() as u64);
    out.extend_from_slice(service.as_bytes());
    out
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A gRPC length-prefixed message: not compressed, big-endian length.
fn frame(msg: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    Bytes::from(out)
}

/// The `status` field (1, varint) of the HealthCheckResponse in the first
/// message of the body; None when the answer is not one. An absent field is
/// protobuf's zero, UNKNOWN.
fn serving_status(mut body: Bytes) -> Option<u64> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    body.advance(1);
    let len = body.get_u32() as usize;
    let mut msg = body.get(..len)?;
    let mut status = 0;
    while !msg.is_empty() {
        let key = read_varint(&mut msg)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = read_varint(&mut msg)?,
            (_, 0) => {
                read_varint(&mut msg)?;
            }
            (_, 2) => {
                let n = read_varint(&mut msg)? as usize;
                msg = msg.get(n..)?;
            }
            _ => return None,
        }
    }
    Some(status)
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn status_name(s: Option<u64>) -> &'static str {
    match s {
        Some(0) => "UNKNOWN",
        Some(2) => "NOT_SERVING",
        Some(3) => "SERVICE_UNKNOWN",
        _ => "invalid response",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use std::convert::Infallible;

    /// A health server that answers NOT_SERVING for "down", grpc-status 5
    /// for "missing", SERVING otherwise.
    async fn serve(listener: tokio::net::TcpListener) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let body = req.into_body().collect().await.expect("body").to_bytes();
                    let service = String::from_utf8_lossy(&body[5..]).to_string();
                    let resp = if service.ends_with("missing") {
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .header("grpc-status", "5")
                            .header("grpc-message", "unknown service")
                            .body(Full::new(Bytes::new()))
                    } else {
                        let status = if service.ends_with("down") { 2 } else { 1 };
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .header("grpc-status", "0")
                            .body(Full::new(frame(&[0x08, status])))
                    };
                    Ok::<_, Infallible>(resp.expect("response"))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    }

    #[tokio::test]
    async fn health_check_answers_become_probe_results() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(serve(listener));
        let t = Duration::from_secs(2);
        assert_eq!(check("127.0.0.1", port, "", t).await, Ok(()));
        assert_eq!(check("127.0.0.1", port, "db", t).await, Ok(()));
        assert_eq!(
            check("127.0.0.1", port, "down", t).await,
            Err("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        assert_eq!(
            check("127.0.0.1", port, "missing", t).await,
            Err("rpc error: code = 5 desc = unknown service".into())
        );
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connect_timeout() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let err = check("127.0.0.1", port, "", Duration::from_secs(1))
            .await
            .expect_err("nobody listens");
        assert_eq!(
            err,
            format!("timeout: failed to connect service \"127.0.0.1:{port}\" within 1s")
        );
    }

    #[test]
    fn messages_encode_and_decode() {
        assert_eq!(request("ab"), vec![0x0a, 2, b'a', b'b']);
        assert_eq!(&frame(&[0x08, 1])[..], &[0, 0, 0, 0, 2, 0x08, 1]);
        assert_eq!(serving_status(frame(&[0x08, 1])), Some(1));
        assert_eq!(serving_status(frame(&[])), Some(0));
        // Unknown fields are skipped.
        assert_eq!(serving_status(frame(&[0x12, 1, b'x', 0x08, 2])), Some(2));
        assert_eq!(serving_status(Bytes::from_static(b"\x00\x00")), None);
    }
}
