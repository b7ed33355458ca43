//! SPDY/3.1 framing: control frames (SYN_STREAM, SYN_REPLY, RST_STREAM,
//! SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE) and DATA frames.
//!
//! Kubernetes' peers (moby/spdystream) do no flow control, so SETTINGS,
//! HEADERS and WINDOW_UPDATE are read and ignored, and never sent.

use anyhow::bail;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::headers::{self, Deflater, Headers, Inflater};

const VERSION: u16 = 3;
const FLAG_FIN: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;

/// Largest frame payload SPDY can express (a 24-bit length).
const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    SynStream {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last_good: u32,
        status: u32,
    },
    Data {
        stream: u32,
        fin: bool,
        data: Bytes,
    },
    /// A control frame of a type nothing here acts on (SETTINGS, HEADERS,
    /// WINDOW_UPDATE, or one this version does not know).
    Ignored(u16),
}

/// Writes frames; owns the sending direction's header compression.
pub struct Encoder(Deflater);

impl Encoder {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Encoder(Deflater::new()?))
    }

    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> anyhow::Result<()> {
        match frame {
            Frame::SynStream {
                stream,
                fin,
                headers,
            } => {
                let block = self.0.compress(&headers::encode(headers))?;
                control(out, SYN_STREAM, flags(*fin), 10 + block.len())?;
                out.put_u32(stream & 0x7fff_ffff);
                out.put_u32(0); // associated-to stream
                out.put_u16(0); // priority and slot
                out.put_slice(&block);
            }
            Frame::SynReply {
                stream,
                fin,
                headers,
            } => {
                let block = self.0.compress(&headers::encode(headers))?;
                control(out, SYN_REPLY, flags(*fin), 4 + block.len())?;
                out.put_u32(stream & 0x7fff_ffff);
                out.put_slice(&block);
            }
            Frame::RstStream { stream, status } => {
                control(out, RST_STREAM, 0, 8)?;
                out.put_u32(stream & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Ping(id) => {
                control(out, PING, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway { last_good, status } => {
                control(out, GOAWAY, 0, 8)?;
                out.put_u32(last_good & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Data { stream, fin, data } => {
                if data.len() > MAX_PAYLOAD {
                    bail!("data frame of {} bytes", data.len());
                }
                out.put_u32(stream & 0x7fff_ffff);
                out.put_u8(flags(*fin));
                put_u24(out, data.len());
                out.put_slice(data);
            }
            Frame::Ignored(kind) => bail!("cannot send control frame type {kind}"),
        }
        Ok(())
    }
}

/// Reads frames; owns the receiving direction's header decompression.
pub struct Decoder(Inflater);

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder(Inflater::new())
    }

    /// The next whole frame at the start of `buf` (consumed), or None until
    /// more bytes arrive.
    pub fn decode(&mut self, buf: &mut BytesMut) -> anyhow::Result<Option<Frame>> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (buf[5] as usize) << 16 | (buf[6] as usize) << 8 | buf[7] as usize;
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let control = buf[0] & 0x80 != 0;
        let mut frame = buf.split_to(8 + len);
        let word = frame.get_u32();
        let fin = frame.get_u8() & FLAG_FIN != 0;
        frame.advance(3);
        if !control {
            return Ok(Some(Frame::Data {
                stream: word & 0x7fff_ffff,
                fin,
                data: frame.freeze(),
            }));
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        let kind = (word & 0xffff) as u16;
        if version != VERSION {
            bail!("SPDY version {version} is not supported");
        }
        let need = |n: usize| -> anyhow::Result<()> {
            if len < n {
                bail!("control frame type {kind} too short ({len} bytes)");
            }
            Ok(())
        };
        Ok(Some(match kind {
            SYN_STREAM => {
                need(10)?;
                let stream = frame.get_u32() & 0x7fff_ffff;
                frame.advance(6);
                let headers = headers::decode(&self.0.decompress(&frame)?)?;
                Frame::SynStream {
                    stream,
                    fin,
                    headers,
                }
            }
            SYN_REPLY => {
                need(4)?;
                let stream = frame.get_u32() & 0x7fff_ffff;
                let headers = headers::decode(&self.0.decompress(&frame)?)?;
                Frame::SynReply {
                    stream,
                    fin,
                    headers,
                }
            }
            RST_STREAM => {
                need(8)?;
                Frame::RstStream {
                    stream: frame.get_u32() & 0x7fff_ffff,
                    status: frame.get_u32(),
                }
            }
            PING => {
                need(4)?;
                Frame::Ping(frame.get_u32())
            }
            GOAWAY => {
                need(8)?;
                Frame::GoAway {
                    last_good: frame.get_u32() & 0x7fff_ffff,
                    status: frame.get_u32(),
                }
            }
            // HEADERS still advances the peer's compression context.
            8 if len >= 4 => {
                frame.advance(4);
                self.0.decompress(&frame)?;
                Frame::Ignored(kind)
            }
            other => Frame::Ignored(other),
        }))
    }
}

fn flags(fin: bool) -> u8 {
    if fin {
        FLAG_FIN
    } else {
        0
    }
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, len: usize) -> anyhow::Result<()> {
    if len > MAX_PAYLOAD {
        bail!("control frame of {len} bytes");
    }
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u8(flags);
    put_u24(out, len);
    Ok(())
}

fn put_u24(out: &mut BytesMut, n: usize) {
    out.put_u8((n >> 16) as u8);
    out.put_u8((n >> 8) as u8);
    out.put_u8(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        let mut enc = Encoder::new().unwrap();
        let mut dec = Decoder::new();
        let mut wire = BytesMut::new();
        for f in frames {
            enc.encode(f, &mut wire).unwrap();
        }
        let mut got = Vec::new();
        // Fed a byte at a time: frames come out only once whole.
        let mut buf = BytesMut::new();
        for b in wire {
            buf.put_u8(b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert!(buf.is_empty());
        got
    }

    #[test]
    fn every_frame_kind_round_trips() {
        let headers: Headers = vec![
            ("streamtype".into(), "stdout".into()),
            ("port".into(), "80".into()),
        ];
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                fin: false,
                headers: headers.clone(),
            },
            Frame::SynReply {
                stream: 1,
                fin: false,
                headers: vec![],
            },
            Frame::SynStream {
                stream: 3,
                fin: true,
                headers,
            },
            Frame::Data {
                stream: 1,
                fin: false,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream: 1,
                fin: true,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream: 3,
                status: RST_CANCEL,
            },
            Frame::Ping(7),
            Frame::GoAway {
                last_good: 3,
                status: 0,
            },
        ];
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn wire_layout_matches_the_spec() {
        let mut enc = Encoder::new().unwrap();
        let mut wire = BytesMut::new();
        enc.encode(&Frame::Ping(5), &mut wire).unwrap();
        assert_eq!(&wire[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 5]);
        wire.clear();
        let data = Frame::Data {
            stream: 3,
            fin: true,
            data: Bytes::from_static(b"ab"),
        };
        enc.encode(&data, &mut wire).unwrap();
        assert_eq!(&wire[..], &[0, 0, 0, 3, 1, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn settings_and_window_updates_are_skipped_and_other_versions_refused() {
        let mut dec = Decoder::new();
        // SETTINGS with one entry (initial window size), then WINDOW_UPDATE.
        let mut buf = BytesMut::from(
            &[
                0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0, //
                0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 1, 0,
            ][..],
        );
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Frame::Ignored(4)));
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Frame::Ignored(9)));
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        let mut v2 = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(dec.decode(&mut v2).is_err());
    }
}
