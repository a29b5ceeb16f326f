//! Frames encoded once and sent on many connections (broadcast, pub/sub).
//!
//! A server sends the same message to many peers with the same bytes, as
//! long as they encode frames alike: [`Connection::shared_encoding`] says
//! how a connection encodes, and one [`SharedFrame`] is built per distinct
//! encoding, then queued for every connection with that encoding. Today
//! every open server connection has the one plain encoding; with
//! permessage-deflate, each distinct set of negotiated parameters will be
//! an encoding of its own, so a broadcast is compressed once per set, not
//! once per recipient. Frames are behind an `Arc`, so they can cross
//! threads.

use crate::connection::{Connection, Role, State};
use crate::frame::{encode_header, OpCode};
use crate::message::Message;
use std::ops::Deref;
use std::sync::Arc;

/// How a connection encodes the frames of a message: connections with the
/// same encoding can share one encoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameEncoding {
    /// Reserved for the extensions' parameters; one value today.
    _plain: (),
}

impl FrameEncoding {
    /// Unmasked frames with no extension: a server's without
    /// permessage-deflate.
    const PLAIN: FrameEncoding = FrameEncoding { _plain: () };
}

/// A complete frame (header and payload), encoded once, shared by every
/// connection it is queued for.
#[derive(Debug, Clone)]
pub struct SharedFrame(Arc<Vec<u8>>);

impl SharedFrame {
    /// A text message made of `parts`, concatenated, built in place: a
    /// small envelope around a large payload is copied once, into the
    /// frame. Parts are `&str`, so the text needs no check.
    pub fn text(encoding: FrameEncoding, parts: &[&str]) -> SharedFrame {
        let FrameEncoding { _plain: () } = encoding;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut frame = Vec::with_capacity(len + 10);
        encode_header(&mut frame, true, OpCode::Text, None, len as u64);
        for part in parts {
            frame.extend_from_slice(part.as_bytes());
        }
        SharedFrame(Arc::new(frame))
    }

    /// A [`Message`] (its text valid by construction).
    pub fn message(encoding: FrameEncoding, message: &Message<'_>) -> SharedFrame {
        let FrameEncoding { _plain: () } = encoding;
        let data = message.as_bytes();
        let mut frame = Vec::with_capacity(data.len() + 10);
        encode_header(
            &mut frame,
            true,
            message.kind().into(),
            None,
            data.len() as u64,
        );
        frame.extend_from_slice(data);
        SharedFrame(Arc::new(frame))
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
    pub fn shared_encoding(&self) -> Option<FrameEncoding> {
        let plain = self.state == State::Open && self.role == Role::Server;
        (plain && self.sending.is_none()).then_some(FrameEncoding::PLAIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProtocolConfig;
    use crate::frame::decode_header;
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
