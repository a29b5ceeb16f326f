//! Frames encoded once and sent on many connections (broadcast, pub/sub).
//!
//! A server sends the same message to many peers with the same bytes, as
//! long as they encode frames alike: [`Connection::shared_encoding`] says
//! how a connection encodes, and one [`SharedFrame`] is built per distinct
//! encoding, then queued for every connection with that encoding. Open
//! server connections without permessage-deflate share the plain
//! encoding; those with it and without server context takeover share one
//! per negotiated window, so a broadcast is compressed once per window,
//! not once per recipient. A connection with server context takeover
//! compresses against its own history: it takes no shared frames, and
//! the caller sends it the message on its own. Frames are behind an
//! `Arc`, so they can cross threads.

use crate::connection::{Connection, Role, State};
use crate::deflate::{Compression, DeflateEncoding};
use crate::frame::{encode_header, MAX_HEADER_LEN};
use crate::message::{Message, MessageKind};
use std::ops::Deref;
use std::sync::Arc;

/// How a connection encodes the frames of a message: connections with the
/// same encoding can share one encoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameEncoding {
    /// permessage-deflate without context takeover, or `None` (plain).
    deflate: Option<DeflateEncoding>,
}

impl FrameEncoding {
    /// Unmasked frames with no extension: a server's without
    /// permessage-deflate.
    pub const PLAIN: FrameEncoding = FrameEncoding { deflate: None };

    /// Appends the frame of one message made of `parts` (`len` bytes in
    /// all), compressed when this encoding compresses it under `choice`.
    fn encode(
        &self,
        kind: MessageKind,
        parts: &[&[u8]],
        len: usize,
        choice: Compression,
    ) -> Vec<u8> {
        let mut frame = Vec::with_capacity(len + MAX_HEADER_LEN);
        match self.deflate.filter(|d| d.compresses(len, choice)) {
            Some(deflate) => {
                let mut payload = Vec::with_capacity(len / 2 + 64);
                deflate.compress(parts, &mut payload);
                encode_header(&mut frame, true, kind.into(), None, payload.len() as u64);
                frame[0] |= 0x40; // RFC 7692 §6: RSV1, "the message is compressed"
                frame.extend_from_slice(&payload);
            }
            None => {
                encode_header(&mut frame, true, kind.into(), None, len as u64);
                for part in parts {
                    frame.extend_from_slice(part);
                }
            }
        }
        frame
    }
}

/// A complete frame (header and payload), encoded once, shared by every
/// connection it is queued for.
#[derive(Debug, Clone)]
pub struct SharedFrame(Arc<Vec<u8>>);

impl SharedFrame {
    /// A text message made of `parts`, concatenated, built in place: a
    /// small envelope around a large payload is copied once, into the
    /// frame. Parts are `&str`, so the text needs no check.
    /// With permessage-deflate the parts are compressed in sequence,
    /// never joined first.
    pub fn text(encoding: FrameEncoding, parts: &[&str]) -> SharedFrame {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        let frame = encoding.encode(MessageKind::Text, &bytes, len, Compression::Auto);
        SharedFrame(Arc::new(frame))
    }

    /// A [`Message`] (its text valid by construction).
    pub fn message(encoding: FrameEncoding, message: &Message<'_>) -> SharedFrame {
        SharedFrame::message_with(encoding, message, Compression::Auto)
    }

    /// A [`Message`], choosing whether to compress it (see [`Compression`]).
    pub fn message_with(
        encoding: FrameEncoding,
        message: &Message<'_>,
        choice: Compression,
    ) -> SharedFrame {
        let data = message.as_bytes();
        let frame = encoding.encode(message.kind(), &[data], data.len(), choice);
        SharedFrame(Arc::new(frame))
    }

    /// The message's payload, when this frame is in the
    /// [`PLAIN`](FrameEncoding::PLAIN) encoding (uncompressed, unmasked,
    /// §5.2): the bytes after the header. `None` for a compressed frame
    /// (RSV1 set, RFC 7692 §6), whose payload is not the message.
    pub fn plain_payload(&self) -> Option<&[u8]> {
        let frame = &self.0;
        if frame.len() < 2 || frame[0] & 0x40 != 0 || frame[1] & 0x80 != 0 {
            return None;
        }
        // RFC 6455 §5.2: 7-bit length, or 126 + 16 bits, or 127 + 64 bits
        let header = match frame[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        frame.get(header..)
    }

    /// The message this frame carries, when it is in the
    /// [`PLAIN`](FrameEncoding::PLAIN) encoding: its text needs no check,
    /// since every constructor here takes a valid [`Message`] or `&str`s.
    pub fn plain_message(&self) -> Option<Message<'_>> {
        let payload = self.plain_payload()?;
        Some(Message::validated(self.kind(), payload.into()))
    }

    /// The kind of message this frame carries (the opcode of §5.2).
    pub fn kind(&self) -> MessageKind {
        if self.0.first().is_some_and(|b| b & 0x0f == 0x2) {
            MessageKind::Binary
        } else {
            MessageKind::Text
        }
    }

    /// How many queues hold this frame (for tests and metrics).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl Deref for SharedFrame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Connection {
    /// The encoding shared frames for this connection need, or `None` when
    /// it takes none now: not open, a client (whose frames are masked, each
    /// with its own key, §5.3), or in the middle of sending a fragmented
    /// message (a frame in between would break it, §5.4).
    ///
    /// With permessage-deflate and server context takeover it is `None`
    /// too: such a connection compresses against its own history, so send
    /// it the message with [`send_message`](Connection::send_message).
    pub fn shared_encoding(&self) -> Option<FrameEncoding> {
        let open = self.state == State::Open && self.role == Role::Server;
        if !open || self.sending.is_some() {
            return None;
        }
        match &self.deflate {
            None => Some(FrameEncoding::PLAIN),
            Some(deflate) => deflate
                .shared_encoding()
                .map(|d| FrameEncoding { deflate: Some(d) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProtocolConfig;
    use crate::frame::{decode_header, OpCode};
    use std::time::Instant;

    #[test]
    fn a_shared_text_frame_is_its_parts_behind_one_header() {
        let frame = SharedFrame::text(FrameEncoding::PLAIN, &["{\"data\":", "[1,2]", "}"]);
        let (header, at) = decode_header(&frame, 0).unwrap().unwrap();
        assert_eq!(
            (header.fin, header.opcode, header.len),
            (true, OpCode::Text, 14)
        );
        assert_eq!(&frame[at..], b"{\"data\":[1,2]}");
        assert_eq!(frame.holders(), 1);
        assert_eq!(frame.plain_payload(), Some(&b"{\"data\":[1,2]}"[..]));
        assert_eq!(frame.kind(), MessageKind::Text);
    }

    #[test]
    fn a_plain_frame_gives_back_its_payload_at_every_length_encoding() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let data = vec![7u8; len];
            let frame = SharedFrame::message(FrameEncoding::PLAIN, &Message::binary(&data[..]));
            assert_eq!(frame.plain_payload(), Some(&data[..]), "{len}");
            assert_eq!(frame.plain_message().unwrap().as_bytes(), &data[..]);
            assert_eq!(frame.kind(), MessageKind::Binary);
        }
    }

    #[test]
    fn a_shared_message_frame_keeps_its_kind() {
        let binary =
            SharedFrame::message(FrameEncoding::PLAIN, &Message::binary(&[0xff, 0xfe][..]));
        assert_eq!(&binary[..], [0x82, 0x02, 0xff, 0xfe]);
        let text = SharedFrame::message(FrameEncoding::PLAIN, &Message::text("é"));
        assert_eq!(&text[..], [0x81, 0x02, 0xc3, 0xa9]);
    }

    #[test]
    fn only_an_open_server_connection_takes_shared_frames() {
        let now = Instant::now();
        let config = Arc::new(ProtocolConfig::default());
        let mut server = Connection::open(now, config.clone(), Role::Server);
        assert_eq!(server.shared_encoding(), Some(FrameEncoding::PLAIN));
        let mut out = Vec::new();
        server
            .send_fragment(OpCode::Text, false, b"half", &mut out)
            .unwrap();
        assert_eq!(server.shared_encoding(), None, "mid-message");
        let client = Connection::open(now, config.clone(), Role::Client);
        assert_eq!(client.shared_encoding(), None, "masked");
        let connecting = Connection::server(now, config);
        assert_eq!(connecting.shared_encoding(), None, "not open");
    }
}
