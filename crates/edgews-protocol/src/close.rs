//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use super::error::ProtocolError;
use std::fmt;

/// A close status code (RFC 6455 §7.4). A newtype rather than an enum, so a
/// code this crate has no name for stays representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutting down, page closed).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: the endpoint cannot accept this type of data.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present. Never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame. Never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message was not valid UTF-8 (or data inconsistent with its type).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message or frame was too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition (also: the peer stopped
    /// answering pings).
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway received an invalid response.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: the TLS handshake failed. Never sent.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether the code may appear in a close frame.
    ///
    /// RFC 6455 §7.4.1 defines 1000–1003 and 1007–1011 (1012–1014 were added
    /// by the IANA registry); 1005, 1006 and 1015 "MUST NOT be set as a
    /// status code in a Close control frame by an endpoint"; 3000–4999 are
    /// for libraries and applications (§7.4.2). Everything else is reserved.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

/// The most reason bytes a close frame can carry: a control frame payload is
/// at most 125 bytes (§5.5), two of which are the code.
pub const MAX_REASON_LEN: usize = 123;

/// Parses a received close frame payload (§5.5.1).
///
/// Returns `None` for an empty payload (the peer gave no code), otherwise the
/// code and the reason. One byte, a code not valid on the wire, and a reason
/// that is not UTF-8 are errors.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, ProtocolError> {
    match payload {
        [] => Ok(None),
        // §5.5.1: "If there is a body, the first two bytes of the body MUST
        // be a 2-byte unsigned integer (in network byte order)"
        [_] => Err(ProtocolError::CloseFrameTooShort),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Truncates `reason` to at most [`MAX_REASON_LEN`] bytes on a character
/// boundary, so it fits in a close frame.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_close_payload_has_no_code() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn one_byte_close_payload_is_a_protocol_error() {
        let err = parse_close_payload(&[3]).unwrap_err();
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn valid_codes_are_accepted_and_the_rest_rejected() {
        for code in 0..=u16::MAX {
            let payload = code.to_be_bytes();
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            match parse_close_payload(&payload) {
                Ok(Some((c, ""))) => assert!(valid && c.0 == code, "{code}"),
                Err(e) => {
                    assert!(!valid, "{code}");
                    assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR);
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn codes_that_must_never_be_sent_are_rejected() {
        for code in [1004u16, 1005, 1006, 1015, 999, 2999, 5000] {
            assert!(parse_close_payload(&code.to_be_bytes()).is_err(), "{code}");
        }
    }

    #[test]
    fn close_reason_must_be_utf8() {
        let err = parse_close_payload(&[0x03, 0xe8, 0xff, 0xfe]).unwrap_err();
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, b'o', b'k']),
            Ok(Some((CloseCode::NORMAL, "ok")))
        );
    }

    #[test]
    fn long_reasons_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= MAX_REASON_LEN);
        assert_eq!(cut.len(), 122);
        assert_eq!(truncate_reason("short"), "short");
    }
}
