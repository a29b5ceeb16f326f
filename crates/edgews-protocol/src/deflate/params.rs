//! Negotiation of permessage-deflate (RFC 7692 §5, §7.1): the server picks
//! the first offer it can honour; the client checks the server's answer.

use super::{DeflateConfig, DeflateMode};
use crate::error::ResponseError;
use crate::handshake::{Extension, Request};

/// The extension's token in `Sec-WebSocket-Extensions` (RFC 7692 §7).
pub const NAME: &str = "permessage-deflate";

/// What a client offers: RFC 7692 §7.1.1.2 `client_no_context_takeover`
/// (we never keep context for what we send, so a server with many
/// connections need not expect it) and §7.1.2.2 `client_max_window_bits`
/// (the server may ask for a smaller window).
const CLIENT_OFFER: &str = "permessage-deflate; client_no_context_takeover; client_max_window_bits";

/// The parameters in effect on one connection (RFC 7692 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The server starts every message with an empty window (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// The client starts every message with an empty window (§7.1.1.2).
    pub client_no_context_takeover: bool,
    /// The largest window the server compresses with, as a power of two
    /// (§7.1.2.1): 8 to 15.
    pub server_max_window_bits: u8,
    /// The largest window the client compresses with (§7.1.2.2): 8 to 15.
    pub client_max_window_bits: u8,
}

/// One offer's parameters, checked against §7.1.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// §7.1.2: "a decimal integer value without leading zeroes between 8 and
/// 15, inclusive".
fn window_value(value: &str) -> Option<u8> {
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    if !digits || value.is_empty() || value.starts_with('0') {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// The parameters of one element, or why they are invalid. §7.1: an
/// unknown parameter, an invalid value or a parameter given twice makes
/// the element unusable.
fn parse_params(params: &[(&str, Option<&str>)], in_response: bool) -> Result<Offer, &'static str> {
    let mut offer = Offer::default();
    let mut seen = [false; 4];
    for &(name, value) in params {
        let slot = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ]
        .iter()
        .position(|known| name.eq_ignore_ascii_case(known))
        .ok_or("unknown parameter")?;
        if std::mem::replace(&mut seen[slot], true) {
            return Err("duplicated parameter");
        }
        let bits = value.map(|v| window_value(v).ok_or("invalid window bits"));
        match (slot, bits) {
            (0, None) => offer.server_no_context_takeover = true,
            (1, None) => offer.client_no_context_takeover = true,
            (0 | 1, Some(_)) => return Err("a context takeover parameter has a value"),
            (2, Some(bits)) => offer.server_max_window_bits = Some(bits?),
            (2, None) => return Err("server_max_window_bits without a value"),
            // §7.1.2.2: in a response, client_max_window_bits has a value
            (_, None) if in_response => return Err("client_max_window_bits without a value"),
            (_, bits) => offer.client_max_window_bits = Some(bits.transpose()?),
        }
    }
    Ok(offer)
}

/// Server: the first permessage-deflate offer in `request` that `config`
/// can honour, with the `Sec-WebSocket-Extensions` value that accepts it.
/// Offers that break §7.1 are declined (§7.1: "A server MUST decline an
/// extension negotiation offer ... if ..."), and so is one that limits our
/// window to 8 bits, which zlib cannot compress with.
pub(crate) fn negotiate(
    request: &Request<'_>,
    config: &DeflateConfig,
) -> Option<(DeflateParams, String)> {
    request
        .extensions()
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case(NAME))
        .find_map(|offer| accept(offer, config))
}

fn accept(element: &Extension<'_>, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    let offer = parse_params(&element.params, false).ok()?;
    let shared = config.mode == DeflateMode::Shared;
    // the shared compressor and pooled decompressors are per thread:
    // their size does not matter, so they take the largest window
    let (ours, theirs) = match shared {
        true => (15, 15),
        false => (config.window_bits, config.client_window_bits),
    };
    let server_bits = match offer.server_max_window_bits {
        Some(8) => return None,
        Some(bits) => bits.min(ours),
        None => ours,
    };
    // §7.1.2.2: without client_max_window_bits in the offer the server
    // must not limit the client's window
    let client_limit = offer.client_max_window_bits.map(|v| v.unwrap_or(15));
    let client_bits = client_limit.map_or(15, |limit| limit.min(theirs));
    let params = DeflateParams {
        server_no_context_takeover: shared || offer.server_no_context_takeover,
        client_no_context_takeover: shared || offer.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    };
    let mut answer = String::from(NAME);
    if params.server_no_context_takeover {
        answer.push_str("; server_no_context_takeover");
    }
    if params.client_no_context_takeover {
        answer.push_str("; client_no_context_takeover");
    }
    if offer.server_max_window_bits.is_some() {
        answer.push_str(&format!("; server_max_window_bits={server_bits}"));
    }
    if client_limit.is_some_and(|limit| client_bits < limit) {
        answer.push_str(&format!("; client_max_window_bits={client_bits}"));
    }
    Some((params, answer))
}

/// Client: appends the offer header.
pub(crate) fn write_offer(out: &mut Vec<u8>) {
    out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
    out.extend_from_slice(CLIENT_OFFER.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Client: checks the server's `Sec-WebSocket-Extensions` values against
/// what we offered (nothing, or [`CLIENT_OFFER`] when `offered`); returns
/// the parameters in effect. §7.1: the client fails the connection on an
/// extension it did not offer, on two answers, or on a bad parameter.
pub(crate) fn validate_response<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    offered: bool,
) -> Result<Option<DeflateParams>, ResponseError> {
    let mut accepted = None;
    for value in values {
        let text = std::str::from_utf8(value)
            .map_err(|_| ResponseError::BadExtension("extensions header is not UTF-8"))?;
        for element in text.split(',').filter_map(Extension::parse) {
            if !offered || !element.name.eq_ignore_ascii_case(NAME) {
                return Err(ResponseError::UnexpectedExtension(text.trim().to_string()));
            }
            if accepted.is_some() {
                return Err(ResponseError::BadExtension(
                    "permessage-deflate answered twice",
                ));
            }
            let answer =
                parse_params(&element.params, true).map_err(ResponseError::BadExtension)?;
            accepted = Some(DeflateParams {
                // we offered client_no_context_takeover: we never keep it
                server_no_context_takeover: answer.server_no_context_takeover,
                client_no_context_takeover: true,
                server_max_window_bits: answer.server_max_window_bits.unwrap_or(15),
                client_max_window_bits: answer.client_max_window_bits.flatten().unwrap_or(15),
            });
        }
    }
    Ok(accepted)
}
