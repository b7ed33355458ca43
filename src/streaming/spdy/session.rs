//! The server side of a SPDY/3.1 connection as Kubernetes clients use it:
//! the client opens every stream (each named by its headers), the server
//! answers each with a SYN_REPLY at once, and both sides send DATA with FIN
//! to half-close. PINGs are echoed.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::frame::{Decoder, Encoder, Frame, RST_CANCEL, RST_REFUSED_STREAM};
use super::headers::Headers;

/// DATA frames are cut to this size so one stream cannot hog the connection.
const CHUNK: usize = 32 * 1024;

enum Out {
    Frame(Frame),
    /// Send GOAWAY, flush, close the write side.
    Shutdown,
}

/// One stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    /// What the client sends; ends at its FIN or RST (or the connection's end).
    pub rx: mpsc::Receiver<Bytes>,
    pub tx: StreamWriter,
}

/// The sending half of a stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Out>,
}

/// The connection is gone.
#[derive(Debug)]
pub struct Closed;

impl StreamWriter {
    pub async fn write(&self, data: &[u8]) -> Result<(), Closed> {
        for chunk in data.chunks(CHUNK) {
            self.send(false, Bytes::copy_from_slice(chunk)).await?;
        }
        Ok(())
    }

    /// Half-closes: the client reads EOF.
    pub async fn close(&self) -> Result<(), Closed> {
        self.send(true, Bytes::new()).await
    }

    pub async fn reset(&self) -> Result<(), Closed> {
        self.out
            .send(Out::Frame(Frame::RstStream {
                stream: self.id,
                status: RST_CANCEL,
            }))
            .await
            .map_err(|_| Closed)
    }

    async fn send(&self, fin: bool, data: Bytes) -> Result<(), Closed> {
        self.out
            .send(Out::Frame(Frame::Data {
                stream: self.id,
                fin,
                data,
            }))
            .await
            .map_err(|_| Closed)
    }
}

pub struct Session {
    /// Streams as the client opens them; ends with the connection.
    pub streams: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Out>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Session {
    pub fn start<IO>(io: IO) -> anyhow::Result<Session>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let encoder = Encoder::new()?;
        let (rd, wr) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (streams_tx, streams_rx) = mpsc::channel(16);
        let writer = tokio::spawn(write_loop(wr, encoder, out_rx));
        let reader = tokio::spawn(read_loop(rd, out_tx.clone(), streams_tx));
        Ok(Session {
            streams: streams_rx,
            out: out_tx,
            reader,
            writer,
        })
    }

    /// Says GOAWAY and closes the connection once what was queued is sent.
    pub async fn close(self) {
        self.reader.abort();
        let _ = self.out.send(Out::Shutdown).await;
        let mut writer = self.writer;
        if tokio::time::timeout(Duration::from_secs(10), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
}

async fn write_loop<W: AsyncWrite>(wr: W, mut encoder: Encoder, mut rx: mpsc::Receiver<Out>) {
    tokio::pin!(wr);
    let mut buf = BytesMut::new();
    while let Some(out) = rx.recv().await {
        let shutdown = matches!(out, Out::Shutdown);
        let frame = match out {
            Out::Frame(f) => f,
            Out::Shutdown => Frame::GoAway {
                last_good: 0,
                status: 0,
            },
        };
        if let Err(e) = encoder.encode(&frame, &mut buf) {
            tracing::debug!(error = %e, "encoding a SPDY frame");
            return;
        }
        // Frames queued behind this one go out in the same write.
        while !shutdown && buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(Out::Frame(f)) => {
                    if encoder.encode(&f, &mut buf).is_err() {
                        return;
                    }
                }
                Ok(Out::Shutdown) => {
                    let _ = encoder.encode(
                        &Frame::GoAway {
                            last_good: 0,
                            status: 0,
                        },
                        &mut buf,
                    );
                    let _ = wr.write_all(&buf).await;
                    let _ = wr.shutdown().await;
                    return;
                }
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        buf.clear();
        if shutdown {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

async fn read_loop<R: AsyncRead>(rd: R, out: mpsc::Sender<Out>, new_streams: mpsc::Sender<Stream>) {
    tokio::pin!(rd);
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) => match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
            Err(e) => {
                tracing::debug!(error = %e, "bad SPDY frame, closing");
                return;
            }
        };
        let send = |f: Frame| out.send(Out::Frame(f));
        match frame {
            Frame::SynStream {
                stream,
                fin,
                headers,
            } => {
                let (tx, rx) = mpsc::channel(16);
                if !fin {
                    open.insert(stream, tx);
                }
                if send(Frame::SynReply {
                    stream,
                    fin: false,
                    headers: vec![],
                })
                .await
                .is_err()
                {
                    return;
                }
                let s = Stream {
                    id: stream,
                    headers,
                    rx,
                    tx: StreamWriter {
                        id: stream,
                        out: out.clone(),
                    },
                };
                if new_streams.send(s).await.is_err() {
                    open.remove(&stream);
                    let _ = send(Frame::RstStream {
                        stream,
                        status: RST_REFUSED_STREAM,
                    })
                    .await;
                }
            }
            Frame::Data { stream, fin, data } => {
                if let Some(tx) = open.get(&stream) {
                    // A reader that went away just loses what follows.
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        open.remove(&stream);
                    }
                }
                if fin {
                    open.remove(&stream);
                }
            }
            Frame::RstStream { stream, .. } => {
                open.remove(&stream);
            }
            Frame::Ping(id) => {
                if send(Frame::Ping(id)).await.is_err() {
                    return;
                }
            }
            Frame::GoAway { .. } => return,
            Frame::SynReply { .. } | Frame::Ignored(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client end: writes frames, reads frames.
    struct Client {
        enc: Encoder,
        dec: Decoder,
        buf: BytesMut,
        io: tokio::io::DuplexStream,
    }

    impl Client {
        async fn send(&mut self, f: Frame) {
            let mut b = BytesMut::new();
            self.enc.encode(&f, &mut b).unwrap();
            self.io.write_all(&b).await.unwrap();
        }

        async fn recv(&mut self) -> Option<Frame> {
            loop {
                if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                    return Some(f);
                }
                if self.io.read_buf(&mut self.buf).await.unwrap() == 0 {
                    return None;
                }
            }
        }
    }

    #[tokio::test]
    async fn streams_are_replied_to_carry_data_both_ways_and_close() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut session = Session::start(b).unwrap();
        let mut c = Client {
            enc: Encoder::new().unwrap(),
            dec: Decoder::new(),
            buf: BytesMut::new(),
            io: a,
        };
        let headers: Headers = vec![("streamtype".into(), "stdin".into())];
        c.send(Frame::SynStream {
            stream: 1,
            fin: false,
            headers: headers.clone(),
        })
        .await;
        assert_eq!(
            c.recv().await,
            Some(Frame::SynReply {
                stream: 1,
                fin: false,
                headers: vec![]
            })
        );
        let mut s = session.streams.recv().await.unwrap();
        assert_eq!((s.id, &s.headers), (1, &headers));

        c.send(Frame::Data {
            stream: 1,
            fin: false,
            data: Bytes::from_static(b"hi"),
        })
        .await;
        c.send(Frame::Ping(1)).await;
        c.send(Frame::Data {
            stream: 1,
            fin: true,
            data: Bytes::new(),
        })
        .await;
        assert_eq!(s.rx.recv().await.as_deref(), Some(&b"hi"[..]));
        assert_eq!(s.rx.recv().await, None, "FIN ends the stream");
        assert_eq!(c.recv().await, Some(Frame::Ping(1)));

        // A large write arrives whole, in frames no bigger than CHUNK.
        let big = vec![7u8; CHUNK * 2 + 5];
        s.tx.write(&big).await.unwrap();
        s.tx.close().await.unwrap();
        let mut got = Vec::new();
        loop {
            match c.recv().await.unwrap() {
                Frame::Data { stream, fin, data } => {
                    assert_eq!(stream, 1);
                    assert!(data.len() <= CHUNK);
                    got.extend_from_slice(&data);
                    if fin {
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, big);

        session.close().await;
        assert!(matches!(c.recv().await, Some(Frame::GoAway { .. })));
        assert_eq!(c.recv().await, None);
    }
}
