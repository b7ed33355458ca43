//! Port forwarding over a SPDY session (`portforward.k8s.io`): for every
//! local connection the client opens an error stream and a data stream with
//! the same `requestid` and the pod `port` in their headers; the server
//! connects to the port and copies bytes until either side ends, and writes
//! anything that went wrong on the error stream.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::spdy::headers::get;
use super::spdy::{Session, Stream};

pub const PROTOCOL: &str = "portforward.k8s.io";
/// kubectl 1.30+ tunnels the SPDY connection in a WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

/// Serves forwards until the client closes the connection. `pod` names the
/// target in error messages; `connect` opens a connection to a port of it.
pub async fn serve<C, F>(mut session: Session, pod: String, connect: C)
where
    C: Fn(u16) -> F + Send + Sync + 'static,
    F: Future<Output = io::Result<TcpStream>> + Send + 'static,
{
    let connect = Arc::new(connect);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    while let Some(s) = session.streams.recv().await {
        let kind = get(&s.headers, "streamtype")
            .unwrap_or_default()
            .to_string();
        let port = get(&s.headers, "port").and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port.filter(|p| *p > 0) else {
            tracing::debug!(stream = s.id, "port-forward stream without a valid port");
            let _ = s.tx.reset().await;
            continue;
        };
        // Clients before request ids: pair an error stream with the data
        // stream opened right after it, as upstream does.
        let id = match get(&s.headers, "requestid") {
            Some(r) => r.to_string(),
            None if kind == "data" => s.id.saturating_sub(2).to_string(),
            None => s.id.to_string(),
        };
        let pair = pairs.entry(id.clone()).or_default();
        match kind.as_str() {
            "error" if pair.error.is_none() => pair.error = Some(s),
            "data" if pair.data.is_none() => pair.data = Some(s),
            _ => {
                let _ = s.tx.reset().await;
                continue;
            }
        }
        if pair.error.is_some() && pair.data.is_some() {
            if let Some(Pair {
                error: Some(error),
                data: Some(data),
            }) = pairs.remove(&id)
            {
                let pod = pod.clone();
                let fut = connect(port);
                tokio::spawn(forward(error, data, port, pod, fut));
            }
        }
    }
    session.close().await;
}

async fn forward(
    error: Stream,
    data: Stream,
    port: u16,
    pod: String,
    connect: impl Future<Output = io::Result<TcpStream>>,
) {
    match connect.await {
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {pod}: {e}");
            tracing::debug!(%msg, "port-forward");
            let _ = error.tx.write(msg.as_bytes()).await;
        }
        Ok(tcp) => {
            let (mut r, mut w) = tcp.into_split();
            let mut from_client = data.rx;
            let to_pod = tokio::spawn(async move {
                while let Some(b) = from_client.recv().await {
                    if w.write_all(&b).await.is_err() {
                        break;
                    }
                }
                let _ = w.shutdown().await;
            });
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if data.tx.write(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            to_pod.abort();
        }
    }
    let _ = data.tx.close().await;
    let _ = error.tx.close().await;
}
