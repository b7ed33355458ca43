//! A byte stream carried in a WebSocket's binary messages, as kubectl 1.30+
//! tunnels SPDY for port-forward (`SPDY/3.1+portforward.k8s.io`): every
//! write is one message, and messages are read back to back.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The byte stream inside `ws`; the WebSocket closes when it is dropped.
pub fn bytes<S>(ws: WebSocketStream<S>) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut sink, mut source) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(theirs);
    let inbound = tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
        inbound.abort();
    });
    ours
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[tokio::test]
    async fn bytes_cross_in_binary_messages() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let mut inner = bytes(server);

        client
            .send(Message::Binary(bytes::Bytes::from_static(b"he")))
            .await
            .unwrap();
        client
            .send(Message::Binary(bytes::Bytes::from_static(b"llo")))
            .await
            .unwrap();
        let mut got = [0u8; 5];
        inner.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");

        inner.write_all(b"back").await.unwrap();
        match client.next().await.unwrap().unwrap() {
            Message::Binary(d) => assert_eq!(&d[..], b"back"),
            other => panic!("unexpected {other:?}"),
        }
        // Dropping the stream closes the WebSocket.
        drop(inner);
        loop {
            match client.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
}
