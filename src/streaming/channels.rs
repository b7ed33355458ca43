//! The WebSocket channel protocol of exec and attach (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`): every binary message starts with the number of the
//! stream it belongs to (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize).
//! v5 adds a close signal, `[255, channel]`, with which a client ends its
//! stdin while still reading the output.

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

/// A message for `channel`.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(data.len() + 1);
    m.push(channel);
    m.extend_from_slice(data);
    m
}

#[derive(Debug, PartialEq)]
pub enum Incoming<'a> {
    Data(u8, &'a [u8]),
    /// The client is done writing to this channel (v5 only).
    Close(u8),
}

/// What a client's binary message says; None for an empty message.
pub fn parse(message: &[u8], v5: bool) -> Option<Incoming<'_>> {
    let (&channel, rest) = message.split_first()?;
    if channel == CLOSE && v5 {
        return rest.first().map(|&c| Incoming::Close(c));
    }
    Some(Incoming::Data(channel, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_byte_leads_every_message() {
        assert_eq!(frame(STDOUT, b"out"), b"\x01out");
        assert_eq!(frame(ERROR, b""), b"\x03");
        assert_eq!(
            parse(b"\x00typed", true),
            Some(Incoming::Data(STDIN, b"typed"))
        );
        assert_eq!(
            parse(b"\x04{\"Width\":80}", false),
            Some(Incoming::Data(RESIZE, b"{\"Width\":80}"))
        );
        assert_eq!(parse(b"", true), None);
    }

    #[test]
    fn close_signal_only_in_v5() {
        assert_eq!(parse(&[255, 0], true), Some(Incoming::Close(STDIN)));
        assert_eq!(parse(&[255], true), None);
        assert_eq!(parse(&[255, 0], false), Some(Incoming::Data(255, &[0])));
    }
}
