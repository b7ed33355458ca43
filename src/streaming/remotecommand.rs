//! One exec or attach session, whatever carries it: stdin and terminal
//! sizes from the client, stdout and stderr to it, and at the end the
//! outcome as a metav1.Status on the error stream (v4+: JSON, a non-zero
//! exit as reason NonZeroExitCode with an `ExitCode` cause).
//!
//! Over SPDY every stream is its own SPDY stream named by a `streamtype`
//! header; over a WebSocket they are the numbered channels of
//! [`super::channels`].

use std::collections::HashMap;
use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::channels::{self, Incoming, ERROR, RESIZE, STDERR, STDIN, STDOUT};
use super::spdy::{self, Session, StreamWriter};

/// Protocols served over a WebSocket, best first.
pub const WEBSOCKET_PROTOCOLS: &[&str] = &[channels::V5, channels::V4];
/// Protocols served over SPDY (v5 is v4 there: its close signal is a
/// WebSocket matter).
pub const SPDY_PROTOCOLS: &[&str] = &[channels::V5, channels::V4];

/// How long a SPDY client has to open the streams it asked for.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Which streams the client asked for (query `stdin`, `stdout`, `stderr`,
/// `tty`; "1" or "true").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Options {
    pub fn from_query(pairs: &[(String, String)]) -> Result<Options, String> {
        let flag = |k: &str| {
            pairs
                .iter()
                .any(|(n, v)| n == k && (v == "1" || v.eq_ignore_ascii_case("true")))
        };
        let tty = flag("tty");
        let o = Options {
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            // A terminal has one output; upstream drops stderr silently.
            stderr: flag("stderr") && !tty,
            tty,
        };
        if !o.stdin && !o.stdout && !o.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(o)
    }
}

/// A terminal size as clients send it (JSON objects, one after another).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct TermSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Splits the resize stream into sizes, across message boundaries.
#[derive(Default)]
pub struct ResizeDecoder {
    pending: Vec<u8>,
}

impl ResizeDecoder {
    pub fn feed(&mut self, data: &[u8]) -> Vec<TermSize> {
        self.pending.extend_from_slice(data);
        let mut sizes = Vec::new();
        let mut stream =
            serde_json::Deserializer::from_slice(&self.pending).into_iter::<TermSize>();
        let mut used = 0;
        loop {
            match stream.next() {
                Some(Ok(s)) => {
                    sizes.push(s);
                    used = stream.byte_offset();
                }
                // Incomplete: wait for the rest.
                Some(Err(e)) if e.is_eof() => break,
                // Garbage: drop what we have rather than stall forever.
                Some(Err(_)) => {
                    used = self.pending.len();
                    break;
                }
                None => {
                    used = self.pending.len();
                    break;
                }
            }
        }
        self.pending.drain(..used);
        sizes
    }
}

/// The Status for a command that exited 0, or an attach that ended.
pub fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The Status for a non-zero exit (kubectl exits with `code`).
pub fn exit_status(code: i32, command: &[String]) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The Status for a session that failed before or around its command.
pub fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

enum Msg {
    Data(u8, Bytes),
    Finish(Value, oneshot::Sender<()>),
}

/// The client's side of a session, as the runtime end sees it.
pub struct Streams {
    /// What the client types; ends when it closes stdin.
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub resize: mpsc::Receiver<TermSize>,
    pub output: Output,
}

/// The client went away (or the session ended).
#[derive(Debug)]
pub struct ClientGone;

/// Writes to the client; cheap to clone into the output copiers.
#[derive(Clone)]
pub struct Output {
    tx: mpsc::Sender<Msg>,
}

impl Output {
    /// Data for stdout (or stderr); Err once the client is gone.
    pub async fn write(&self, stderr: bool, data: &[u8]) -> Result<(), ClientGone> {
        let channel = if stderr { STDERR } else { STDOUT };
        self.tx
            .send(Msg::Data(channel, Bytes::copy_from_slice(data)))
            .await
            .map_err(|_| ClientGone)
    }

    /// Completes when the client is gone (the session's connection ended).
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Sends `status` on the error stream and closes the connection once
    /// everything before it went out.
    pub async fn finish(self, status: Value) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Msg::Finish(status, done_tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(15), done_rx).await;
        }
    }
}

/// A session over an upgraded SPDY connection: waits for the client's
/// streams (error, then those `opts` asked for, resize with a terminal).
pub async fn serve_spdy<IO>(io: IO, opts: Options) -> anyhow::Result<Streams>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut session = Session::start(io)?;
    let expected = 1 + [opts.stdin, opts.stdout, opts.stderr, opts.tty]
        .iter()
        .filter(|b| **b)
        .count();
    let mut by_type = HashMap::new();
    let collect = async {
        while by_type.len() < expected {
            let Some(s) = session.streams.recv().await else {
                bail!("the client closed the connection before opening its streams");
            };
            let kind = spdy::headers::get(&s.headers, "streamtype").unwrap_or_default();
            match kind {
                "error" | "stdin" | "stdout" | "stderr" | "resize" => {
                    by_type.insert(kind.to_string(), s);
                }
                other => tracing::debug!(stream = other, "unexpected stream type"),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(STREAM_CREATION_TIMEOUT, collect).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            session.close().await;
            return Err(e);
        }
        Err(_) => {
            session.close().await;
            bail!("timed out waiting for client to create streams");
        }
    }
    let stdin = by_type.remove("stdin").map(|s| s.rx);
    let (resize_tx, resize_rx) = mpsc::channel(4);
    if let Some(mut r) = by_type.remove("resize") {
        tokio::spawn(async move {
            let mut dec = ResizeDecoder::default();
            while let Some(data) = r.rx.recv().await {
                for size in dec.feed(&data) {
                    if resize_tx.send(size).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    let writer = |k: &str| by_type.get(k).map(|s| s.tx.clone());
    let (error, stdout, stderr) = (writer("error"), writer("stdout"), writer("stderr"));
    drop(by_type);
    let (tx, mut rx) = mpsc::channel::<Msg>(32);
    tokio::spawn(async move {
        let pick = |ch: u8| -> Option<&StreamWriter> {
            match ch {
                STDOUT => stdout.as_ref(),
                STDERR => stderr.as_ref(),
                _ => None,
            }
        };
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Data(ch, data) => {
                    if let Some(w) = pick(ch) {
                        if w.write(&data).await.is_err() {
                            break;
                        }
                    }
                }
                Msg::Finish(status, done) => {
                    for w in [&stdout, &stderr].into_iter().flatten() {
                        let _ = w.close().await;
                    }
                    if let Some(e) = &error {
                        let _ = e.write(status.to_string().as_bytes()).await;
                        let _ = e.close().await;
                    }
                    session.close().await;
                    let _ = done.send(());
                    return;
                }
            }
        }
        session.close().await;
    });
    Ok(Streams {
        stdin,
        resize: resize_rx,
        output: Output { tx },
    })
}

/// A session over a WebSocket that negotiated `protocol`.
pub async fn serve_websocket<S>(
    ws: WebSocketStream<S>,
    protocol: &str,
    opts: Options,
) -> anyhow::Result<Streams>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let v5 = protocol == channels::V5;
    let (mut sink, mut source) = ws.split();
    // An empty message on the first output channel tells the client the
    // session is up (as upstream does).
    let first = if opts.stdout {
        STDOUT
    } else if opts.stderr {
        STDERR
    } else {
        ERROR
    };
    sink.send(Message::Binary(channels::frame(first, b"").into()))
        .await?;

    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel(4);
    let reader = tokio::spawn(async move {
        let mut stdin_tx = opts.stdin.then_some(stdin_tx);
        let mut dec = ResizeDecoder::default();
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(d) => d,
                Message::Close(_) => break,
                _ => continue,
            };
            match channels::parse(&data, v5) {
                Some(Incoming::Data(STDIN, b)) => {
                    if let Some(tx) = &stdin_tx {
                        if tx.send(Bytes::copy_from_slice(b)).await.is_err() {
                            stdin_tx = None;
                        }
                    }
                }
                Some(Incoming::Data(RESIZE, b)) => {
                    for size in dec.feed(b) {
                        let _ = resize_tx.send(size).await;
                    }
                }
                Some(Incoming::Close(STDIN)) => stdin_tx = None,
                _ => {}
            }
        }
    });
    let (tx, mut rx) = mpsc::channel::<Msg>(32);
    tokio::spawn(async move {
        let wanted = |ch: u8| (ch == STDOUT && opts.stdout) || (ch == STDERR && opts.stderr);
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Data(ch, data) => {
                    if wanted(ch)
                        && sink
                            .send(Message::Binary(channels::frame(ch, &data).into()))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
                Msg::Finish(status, done) => {
                    let body = channels::frame(ERROR, status.to_string().as_bytes());
                    let _ = sink.send(Message::Binary(body.into())).await;
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        })))
                        .await;
                    let _ = sink.close().await;
                    reader.abort();
                    let _ = done.send(());
                    return;
                }
            }
        }
        reader.abort();
    });
    Ok(Streams {
        stdin: opts.stdin.then_some(stdin_rx),
        resize: resize_rx,
        output: Output { tx },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_from_the_query() {
        let o = Options::from_query(&q(&[
            ("stdout", "true"),
            ("stderr", "1"),
            ("command", "ls"),
        ]))
        .unwrap();
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        // A terminal has no separate stderr.
        let t = Options::from_query(&q(&[
            ("stdin", "true"),
            ("stderr", "true"),
            ("tty", "true"),
        ]))
        .unwrap();
        assert!(t.tty && t.stdin && !t.stderr);
        assert!(Options::from_query(&q(&[("tty", "true")])).is_err());
    }

    #[test]
    fn resize_events_split_across_messages() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.feed(b"{\"Width\":80,\"Hei"), vec![]);
        assert_eq!(
            d.feed(b"ght\":24}\n{\"Width\":100,\"Height\":40}\n"),
            vec![
                TermSize {
                    width: 80,
                    height: 24
                },
                TermSize {
                    width: 100,
                    height: 40
                }
            ]
        );
        assert_eq!(
            d.feed(b"{\"Width\":1,\"Height\":2}"),
            vec![TermSize {
                width: 1,
                height: 2
            }]
        );
        assert_eq!(d.feed(b"nonsense"), vec![]);
        assert_eq!(
            d.feed(b"{\"Width\":3,\"Height\":4}"),
            vec![TermSize {
                width: 3,
                height: 4
            }]
        );
    }

    #[test]
    fn exit_codes_travel_as_a_cause() {
        let s = exit_status(3, &["sh".into(), "-c".into(), "exit 3".into()]);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(success()["status"], "Success");
    }

    async fn next(c: &mut WebSocketStream<tokio::io::DuplexStream>) -> Option<Vec<u8>> {
        match c.next().await {
            Some(Ok(Message::Binary(d))) => Some(d.to_vec()),
            Some(Ok(Message::Close(_))) | None => None,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The channel multiplexing end to end: a client WebSocket on one side,
    /// the session's streams on the other.
    #[tokio::test]
    async fn websocket_channels_carry_each_stream() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let opts = Options {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let server = tokio::spawn(async move {
            let ws = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
            serve_websocket(ws, channels::V5, opts).await.unwrap()
        });
        let mut client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let mut streams = server.await.unwrap();
        assert_eq!(
            next(&mut client).await.unwrap(),
            vec![STDOUT],
            "the hello on stdout"
        );
        streams.output.write(false, b"o").await.unwrap();
        streams.output.write(true, b"e").await.unwrap();
        assert_eq!(next(&mut client).await.unwrap(), b"\x01o");
        assert_eq!(next(&mut client).await.unwrap(), b"\x02e");

        client
            .send(Message::Binary(Bytes::from_static(b"\x00in")))
            .await
            .unwrap();
        client
            .send(Message::Binary(Bytes::from_static(
                b"\x04{\"Width\":9,\"Height\":8}",
            )))
            .await
            .unwrap();
        client
            .send(Message::Binary(Bytes::from_static(&[255, 0])))
            .await
            .unwrap();
        let mut stdin = streams.stdin.take().unwrap();
        assert_eq!(stdin.recv().await.as_deref(), Some(&b"in"[..]));
        assert_eq!(stdin.recv().await, None, "v5 close ends stdin");
        assert_eq!(
            streams.resize.recv().await,
            Some(TermSize {
                width: 9,
                height: 8
            })
        );

        let finish = tokio::spawn(streams.output.finish(exit_status(3, &[])));
        let d = next(&mut client).await.unwrap();
        assert_eq!(d[0], ERROR);
        let s: Value = serde_json::from_slice(&d[1..]).unwrap();
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(next(&mut client).await, None, "then a close");
        let _ = client.close(None).await;
        finish.await.unwrap();
    }
}
