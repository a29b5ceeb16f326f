//! Messages: what the engine hands to the application, and the assembly of
//! a message from fragments under the limits of §10.4.

use super::error::{ProtocolError, UsageError};
use super::utf8::Utf8Validator;
use crate::config::ProtocolConfig;
use std::borrow::Cow;

/// Text or binary (§5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text; the engine has validated it.
    Text,
    /// Arbitrary bytes.
    Binary,
}

impl From<MessageKind> for super::frame::OpCode {
    /// The opcode of a data frame carrying a message of this kind (§5.6).
    fn from(kind: MessageKind) -> Self {
        match kind {
            MessageKind::Text => super::frame::OpCode::Text,
            MessageKind::Binary => super::frame::OpCode::Binary,
        }
    }
}

/// A complete message: received (from the engine), or made to be sent.
///
/// A message that arrived whole in one frame within one read is borrowed
/// from the caller's input buffer (unmasked in place, no copy); one that
/// arrived in fragments or across reads was assembled and is owned.
///
/// A text message is valid UTF-8, always: the engine makes one only after
/// validating it (§8.1), and the constructors take a `str` or check. The
/// fields are private so that this stays true; sending a `Message`
/// ([`Connection::send_message`](crate::Connection::send_message)) needs no
/// second check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    kind: MessageKind,
    data: Cow<'a, [u8]>,
}

impl<'a> Message<'a> {
    /// A text message; a `str` is UTF-8 by construction.
    pub fn text(text: impl Into<Cow<'a, str>>) -> Message<'a> {
        let data = match text.into() {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        };
        Message::validated(MessageKind::Text, data)
    }

    /// A binary message.
    pub fn binary(data: impl Into<Cow<'a, [u8]>>) -> Message<'a> {
        Message::validated(MessageKind::Binary, data.into())
    }

    /// A message of `kind`; text must be UTF-8 (checked).
    pub fn new(
        kind: MessageKind,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<Message<'a>, UsageError> {
        let data = data.into();
        if kind == MessageKind::Text && std::str::from_utf8(&data).is_err() {
            return Err(UsageError::InvalidUtf8);
        }
        Ok(Message::validated(kind, data))
    }

    /// A message whose text, if it is text, the caller has validated.
    pub(crate) fn validated(kind: MessageKind, data: Cow<'a, [u8]>) -> Message<'a> {
        Message { kind, data }
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The payload, borrowed from the input or owned. For
    /// [`MessageKind::Text`] it is valid UTF-8.
    pub fn data(&self) -> &Cow<'a, [u8]> {
        &self.data
    }

    /// The payload, taken out.
    pub fn into_data(self) -> Cow<'a, [u8]> {
        self.data
    }

    /// The payload as text, for a text message (`None` for binary).
    pub fn as_text(&self) -> Option<&str> {
        match self.kind {
            // valid by construction, so this check cannot fail
            MessageKind::Text => std::str::from_utf8(&self.data).ok(),
            MessageKind::Binary => None,
        }
    }

    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// An owned copy that outlives the input buffer.
    pub fn into_owned(self) -> Message<'static> {
        Message {
            kind: self.kind,
            data: Cow::Owned(self.data.into_owned()),
        }
    }
}

/// A message whose first frame has arrived but not its last.
#[derive(Debug)]
pub(crate) struct Assembly {
    pub kind: MessageKind,
    /// Bytes received so far (all of them are in `data`).
    pub len: u64,
    /// Frames received so far, empty ones included.
    pub fragments: u32,
    pub data: Vec<u8>,
    pub utf8: Utf8Validator,
    /// permessage-deflate: `data` holds the inflated payload, and `len`
    /// counts the compressed bytes received (RFC 7692 §6.2).
    pub compressed: bool,
}

/// The first allocation for a message being assembled; it then grows with
/// the bytes that actually arrive, never with what a header merely announces.
const INITIAL_CAPACITY_CAP: u64 = 64 << 10;

impl Assembly {
    pub fn new(kind: MessageKind, first_frame_len: u64, compressed: bool) -> Self {
        // a compressed message grows as it inflates (see `deflate::codec`)
        let capacity = if compressed {
            0
        } else {
            first_frame_len.min(INITIAL_CAPACITY_CAP)
        };
        Assembly {
            kind,
            len: 0,
            fragments: 0,
            data: Vec::with_capacity(capacity as usize),
            utf8: Utf8Validator::new(),
            compressed,
        }
    }

    /// Counts a new frame of `len` bytes against the limits (§10.4), before
    /// any of its payload is buffered.
    pub fn admit_frame(&mut self, len: u64, config: &ProtocolConfig) -> Result<(), ProtocolError> {
        self.fragments += 1;
        if self.fragments > config.max_fragments {
            return Err(ProtocolError::TooManyFragments {
                max: config.max_fragments,
            });
        }
        let total = self.len.saturating_add(len);
        let max = match self.compressed {
            // `len` counts compressed bytes; the inflated size is checked
            // as it is produced
            true => crate::read::compressed_limit(config.max_message_size),
            false => config.max_message_size,
        };
        if total > max {
            return Err(ProtocolError::MessageTooLarge { len: total, max });
        }
        Ok(())
    }

    /// Appends unmasked payload bytes, checking text as it arrives.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.kind == MessageKind::Text {
            self.utf8
                .feed(bytes)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        self.len += bytes.len() as u64;
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    /// Ends the message: text must not stop inside a code point.
    pub fn finish(mut self) -> Result<Message<'static>, ProtocolError> {
        if self.kind == MessageKind::Text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(Message {
            kind: self.kind,
            data: Cow::Owned(self.data),
        })
    }
}
