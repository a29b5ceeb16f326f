//! The ratchet peer: the one peer with permessage-deflate (RFC 7692), to
//! set beside edgews' compressed echo.
//!
//! Why ratchet (ratchet_core + ratchet_deflate 1.2.1) and not soketto 0.8
//! with its "deflate" feature: tried as a server here (soketto 0.8.1 on
//! flate2 1.1.11), soketto fails the first compressed message from Python's
//! `websockets` with "extension error: incomplete deflate stream". It
//! inflates each message with flate2's `write::DeflateDecoder` and
//! `finish`, which recent flate2 makes refuse a stream with no final block,
//! and RFC 7692 messages never have one; pinning an older flate2 would get
//! past that, not past the rest. Its design does not fit either: a fresh
//! compressor for every message sent and a fresh decompressor for every
//! message read, yet a plain offer is answered without
//! `client_no_context_takeover`, so a client keeping its context could not
//! be read, and there is no server context takeover at all; it also needs
//! the tokio-util compat layer. ratchet_deflate keeps one zlib stream per
//! direction and ratchet runs on tokio as it is. Its negotiation needs two
//! touches, made in [`Negotiate`] below; the library is otherwise used as
//! it comes.
//!
//! What the peer agrees to, per offer, taking the first offer it can:
//!
//! - `permessage-deflate` alone: accepted with context takeover both ways,
//!   windows of 15 bits; answered `permessage-deflate`.
//! - `server_no_context_takeover`: the peer resets its compressor after
//!   each message and says so. Without it the compressor keeps its
//!   context (ratchet alone, with `accept_no_context_takeover` on, would
//!   reset after every message whatever the client asked; off, it would
//!   ignore the client's request).
//! - `client_no_context_takeover`: echoed; the peer's decompressor resets
//!   after each message.
//! - `server_max_window_bits=9..15`: the peer compresses with that window
//!   and says so in its answer (ratchet compresses with it but leaves it
//!   out of the answer, which RFC 7692 7.1.2.1 requires). `=8` is
//!   declined: zlib's deflate cannot go below 9.
//! - `client_max_window_bits` with no value: accepted, not echoed; with
//!   `=8..15`: echoed, the decompressor sized to it.
//! - Anything else (an unknown or repeated parameter, a bad value): that
//!   offer is declined (RFC 7692 section 7) and the next one is tried;
//!   with none left the connection goes on uncompressed.
//!
//! Every message out is compressed (ratchet has no size threshold), at
//! zlib's default level 6 rather than ratchet's default `fast` (1).
//!
//! Set up as the other peers are: messages up to [`MAX_MESSAGE`], text
//! checked to be UTF-8 (ratchet leaves that to its user) and echoed as
//! text, binary as binary. ratchet writes the pong to a ping and the reply
//! to a close itself, inside `read`. ratchet reads each frame with
//! `read_exact` of just the bytes it lacks and writes a frame's header and
//! payload in two writes, so the socket is given a `BufStream`, as a user
//! of it would.
//!
//! Known gaps of ratchet 1.2.1, left as they are: its size limit counts
//! the compressed bytes, so an inflated message past 64 MiB is refused
//! (close 1009) only after inflating it; and a fragmented uncompressed
//! message after a fragmented compressed one is wrongly inflated (the
//! decoder's "compressed" flag is never cleared). Neither arises in the
//! benchmarks, which send single-frame messages.

use crate::MAX_MESSAGE;
use bytes::BytesMut;
use ratchet_core::{
    CloseCode, CloseReason, Error, Message, PayloadType, SubprotocolRegistry, WebSocket,
    WebSocketConfig,
};
use ratchet_deflate::{Compression, Deflate, DeflateConfig, DeflateExtProvider};
use ratchet_ext::{ExtensionProvider, HeaderMap, HeaderValue};
use std::convert::Infallible;
use std::io::ErrorKind;
use tokio::io::BufStream;
use tokio::net::TcpStream;

pub async fn handle(stream: TcpStream) {
    if let Err(e) = echo(stream).await {
        if !quiet(&e) {
            eprintln!("ratchet: {e}");
        }
    }
}

/// Whether `e` is the peer going away (or the close handshake ending),
/// not worth a line.
fn quiet(e: &Error) -> bool {
    if e.is_close() {
        return true;
    }
    matches!(
        e.downcast_ref::<std::io::Error>().map(|io| io.kind()),
        Some(ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe)
    )
}

async fn echo(stream: TcpStream) -> Result<(), Error> {
    let config = WebSocketConfig {
        max_message_size: MAX_MESSAGE,
    };
    let upgrader = ratchet_core::accept_with(
        BufStream::new(stream),
        config,
        Negotiate,
        SubprotocolRegistry::default(),
    )
    .await?;
    let mut ws = upgrader.upgrade().await?.websocket;
    let mut buf = BytesMut::new();
    loop {
        let kind = match ws.read(&mut buf).await? {
            Message::Text => PayloadType::Text,
            Message::Binary => PayloadType::Binary,
            // The pong is written already. A ping between fragments
            // leaves the message so far in `buf`, to be kept as it is.
            Message::Ping(_) | Message::Pong(_) => continue,
            // The reply is written and the stream shut down.
            Message::Close(_) => return Ok(()),
        };
        if buf.len() > MAX_MESSAGE {
            return refuse(&mut ws, CloseCode::Overflow, "message too big").await;
        }
        if matches!(kind, PayloadType::Text) && std::str::from_utf8(&buf).is_err() {
            return refuse(&mut ws, CloseCode::Invalid, "text is not UTF-8").await;
        }
        ws.write(&buf, kind).await?;
        buf.clear();
    }
}

/// Closes with `code` and waits for the client's close (ratchet then
/// shuts the stream down).
async fn refuse(
    ws: &mut WebSocket<BufStream<TcpStream>, Deflate>,
    code: CloseCode,
    why: &str,
) -> Result<(), Error> {
    ws.close(CloseReason::new(code, Some(why.to_string())))
        .await?;
    let mut buf = BytesMut::new();
    loop {
        buf.clear();
        if let Message::Close(_) = ws.read(&mut buf).await? {
            return Ok(());
        }
    }
}

/// ratchet_deflate's negotiation, offer by offer, with the two touches
/// the module documentation lists: context takeover kept unless the
/// client asks otherwise, and `server_max_window_bits` answered.
#[derive(Debug, Clone, Copy)]
struct Negotiate;

const EXTENSIONS: &str = "sec-websocket-extensions";

fn provider(server_no_context_takeover: bool) -> DeflateExtProvider {
    DeflateExtProvider::with_config(DeflateConfig {
        // On the server side this flag decides whether the compressor
        // resets after each message, and whether a client's request for
        // that is agreed to: on only when the client asked.
        accept_no_context_takeover: server_no_context_takeover,
        compression_level: Compression::new(6),
        ..DeflateConfig::default()
    })
}

/// The parameters of one offer: each name lowercased, each value trimmed
/// and unquoted.
fn params(offer: &str) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    offer.split(';').skip(1).map(|p| match p.split_once('=') {
        Some((name, value)) => (
            name.trim().to_ascii_lowercase(),
            Some(value.trim().trim_matches('"').to_string()),
        ),
        None => (p.trim().to_ascii_lowercase(), None),
    })
}

impl Negotiate {
    /// The answer to one offer, or `None` to decline it.
    fn offer(offer: &str) -> Option<(Deflate, HeaderValue)> {
        let mut no_takeover = false;
        let mut window = None;
        for (name, value) in params(offer) {
            match name.as_str() {
                "server_no_context_takeover" => no_takeover = true,
                "server_max_window_bits" => window = value,
                _ => {}
            }
        }
        if window.as_deref().map(str::parse::<u8>) == Some(Ok(8)) {
            return None;
        }
        let mut headers = HeaderMap::new();
        headers.insert(EXTENSIONS, HeaderValue::from_str(offer).ok()?);
        // ratchet checks the rest: names, repeats and values.
        let (deflate, answer) = provider(no_takeover).negotiate_server(&headers).ok()??;
        let Some(bits) = window else {
            return Some((deflate, answer));
        };
        // ratchet took the value, so it is a number from 9 to 15.
        let bits: u8 = bits.parse().ok()?;
        let answer = format!("{}; server_max_window_bits={bits}", answer.to_str().ok()?);
        Some((deflate, HeaderValue::from_str(&answer).ok()?))
    }
}

impl ExtensionProvider for Negotiate {
    type Extension = Deflate;
    type Error = Infallible;

    fn apply_headers(&self, _: &mut HeaderMap) {}

    fn negotiate_client(&self, _: &HeaderMap) -> Result<Option<Deflate>, Infallible> {
        Ok(None)
    }

    fn negotiate_server(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(Deflate, HeaderValue)>, Infallible> {
        let offers = headers
            .get_all(EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        Ok(offers.filter_map(Negotiate::offer).next())
    }
}
