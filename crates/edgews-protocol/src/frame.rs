//! The frame codec (RFC 6455 §5.2): header decode from a partial buffer
//! without copying, and frame encode into a caller-supplied buffer.

use super::error::ProtocolError;
use super::mask::apply_mask;

/// A frame opcode (§5.2). Reserved opcodes are rejected while decoding, so
/// every `OpCode` value is one the RFC defines. The discriminants are the
/// wire values, so converting either way is a register move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation = 0x0,
    /// 0x1: the first frame of a text message.
    Text = 0x1,
    /// 0x2: the first frame of a binary message.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

/// The opcode for each 4-bit wire value; `None` where §5.2 reserves it.
/// One load replaces a chain of comparisons on the hot path.
const OPCODES: [Option<OpCode>; 16] = {
    let mut table = [None; 16];
    table[0x0] = Some(OpCode::Continuation);
    table[0x1] = Some(OpCode::Text);
    table[0x2] = Some(OpCode::Binary);
    table[0x8] = Some(OpCode::Close);
    table[0x9] = Some(OpCode::Ping);
    table[0xA] = Some(OpCode::Pong);
    table
};

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for the reserved 3–7 and 11–15.
    #[inline]
    pub fn from_u8(value: u8) -> Option<OpCode> {
        OPCODES.get(usize::from(value)).copied().flatten()
    }

    /// The 4-bit wire value.
    #[inline]
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Close, ping and pong are control frames (§5.5).
    #[inline]
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1–3 as the low three bits.
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The MASK bit.
    pub masked: bool,
    /// The masking key when `masked`, zeros otherwise. A plain array rather
    /// than an `Option<[u8; 4]>`: that five-byte aggregate does not fit a
    /// register, and spilling and reloading it cost a store-forwarding stall
    /// (about 5 ns) per decoded header.
    pub mask_key: [u8; 4],
    /// The payload length.
    pub len: u64,
}

impl FrameHeader {
    /// The masking key, when the MASK bit is set.
    #[inline]
    pub fn mask(&self) -> Option<[u8; 4]> {
        self.masked.then_some(self.mask_key)
    }
}

/// The longest header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Decodes a frame header from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold the whole header (that is
/// "need more bytes", not an error), otherwise the header and its length in
/// bytes. Checks every rule that needs no connection state: RSV bits
/// (`allowed_rsv` are those an extension negotiated), reserved opcodes,
/// control frame rules and minimal length encoding. Mask direction and
/// limits are the connection's to check.
#[inline(always)]
pub fn decode_header(
    buf: &[u8],
    allowed_rsv: u8,
) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let &[b0, b1, ..] = buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    let op = b0 & 0x0f;
    // §5.2: opcodes 0x3–0x7 and 0xB–0xF are reserved
    let Some(opcode) = OPCODES[usize::from(op)] else {
        return Err(ProtocolError::ReservedOpcode(op));
    };
    // §5.2: "If a nonzero value is received and none of the negotiated
    // extensions defines the meaning of such a nonzero value, the receiving
    // endpoint MUST _Fail the WebSocket Connection_."
    if rsv & !allowed_rsv != 0 {
        return Err(ProtocolError::ReservedBits(rsv));
    }
    let masked = b1 & 0x80 != 0;
    let short = b1 & 0x7f;
    // §5.5: "All control frames MUST have a payload length of 125 bytes or
    // less and MUST NOT be fragmented." A 7-bit length of 126 or 127 is the
    // only way to say more than 125, so two bytes tell whether it is broken.
    if opcode.is_control() && (!fin || short > 125) {
        return control_frame_error(buf, fin, short);
    }
    let (len, pos) = match payload_len(buf, short)? {
        Some(decoded) => decoded,
        None => return Ok(None),
    };
    let (mask_key, end) = if masked {
        match buf.get(pos..pos + 4) {
            Some(&[a, b, c, d]) => ([a, b, c, d], pos + 4),
            _ => return Ok(None),
        }
    } else {
        ([0; 4], pos)
    };
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        masked,
        mask_key,
        len,
    };
    Ok(Some((header, end)))
}

/// The payload length from the 7-bit `short` field and the extended length
/// that follows it (§5.2), with the offset where the length ends; `None`
/// while the extended length has not fully arrived.
#[inline(always)]
fn payload_len(buf: &[u8], short: u8) -> Result<Option<(u64, usize)>, ProtocolError> {
    match short {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => {
                let len = u64::from(u16::from_be_bytes([a, b]));
                // §5.2: "the minimal number of bytes MUST be used"
                if len < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                Ok(Some((len, 4)))
            }
            _ => Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                let len = u64::from_be_bytes(be);
                // §5.2: "the most significant bit MUST be 0"
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthMsbSet);
                }
                if len < 65536 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                Ok(Some((len, 10)))
            }
            None => Ok(None),
        },
        n => Ok(Some((u64::from(n), 2))),
    }
}

/// The verdict on a control frame that is fragmented or longer than 125
/// bytes, kept out of line, off the hot path. The length is decoded first,
/// as for any frame, so the verdict does not depend on how the bytes were
/// split across reads.
#[cold]
#[inline(never)]
fn control_frame_error(
    buf: &[u8],
    fin: bool,
    short: u8,
) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let Some((len, _)) = payload_len(buf, short)? else {
        return Ok(None);
    };
    if !fin {
        return Err(ProtocolError::FragmentedControlFrame);
    }
    Err(ProtocolError::ControlFrameTooLong(len))
}

/// Appends a frame header to `out`.
#[inline(always)]
pub fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: u64,
) {
    let b0 = (u8::from(fin) << 7) | opcode.as_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.extend_from_slice(&[b0, mask_bit | len as u8]);
    } else if len <= u64::from(u16::MAX) {
        let l = (len as u16).to_be_bytes();
        out.extend_from_slice(&[b0, mask_bit | 126, l[0], l[1]]);
    } else {
        out.extend_from_slice(&[b0, mask_bit | 127]);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// Appends a whole frame to `out`, masking the payload when a key is given.
#[inline(always)]
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    out.reserve(MAX_HEADER_LEN + payload.len());
    encode_header(out, fin, opcode, mask, payload.len() as u64);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// The header length for a payload of `len` bytes.
pub fn header_len(len: u64, masked: bool) -> usize {
    let base = match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    base + if masked { 4 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        decode_header(buf, 0)
    }

    #[test]
    fn rfc_single_frame_unmasked_text() {
        // §5.7: "A single-frame unmasked text message"
        let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, n) = decode(&frame).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.mask(), h.len, n),
            (true, OpCode::Text, None, 5, 2)
        );
        assert_eq!((h.masked, h.mask_key), (false, [0; 4]));
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Text, None, b"Hello");
        assert_eq!(out, frame);
    }

    #[test]
    fn rfc_single_frame_masked_text() {
        // §5.7: "A single-frame masked text message"
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = decode(&frame).unwrap().unwrap();
        assert_eq!(h.mask(), Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!((h.len, n), (5, 6));
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Text, h.mask(), b"Hello");
        assert_eq!(out, frame);
    }

    #[test]
    fn rfc_fragmented_unmasked_text() {
        // §5.7: "A fragmented unmasked text message"
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        let (h1, _) = decode(&first).unwrap().unwrap();
        let (h2, _) = decode(&second).unwrap().unwrap();
        assert_eq!((h1.fin, h1.opcode, h1.len), (false, OpCode::Text, 3));
        assert_eq!((h2.fin, h2.opcode, h2.len), (true, OpCode::Continuation, 2));
        let mut out = Vec::new();
        encode_frame(&mut out, false, OpCode::Text, None, b"Hel");
        encode_frame(&mut out, true, OpCode::Continuation, None, b"lo");
        assert_eq!(out, [&first[..], &second[..]].concat());
    }

    #[test]
    fn rfc_ping_and_masked_pong() {
        // §5.7: "Unmasked Ping request and masked Ping response"
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(decode(&ping).unwrap().unwrap().0.opcode, OpCode::Ping);
        assert_eq!(decode(&pong).unwrap().unwrap().0.opcode, OpCode::Pong);
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            true,
            OpCode::Pong,
            Some([0x37, 0xfa, 0x21, 0x3d]),
            b"Hello",
        );
        assert_eq!(out, pong);
    }

    #[test]
    fn rfc_256_byte_and_64k_binary_headers() {
        // §5.7: "256 bytes binary message in a single unmasked frame"
        let (h, n) = decode(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.opcode, h.len, n), (OpCode::Binary, 256, 4));
        // §5.7: "64KiB binary message in a single unmasked frame"
        let big = [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
        let (h, n) = decode(&big).unwrap().unwrap();
        assert_eq!((h.len, n), (65536, 10));
        let mut out = Vec::new();
        encode_header(&mut out, true, OpCode::Binary, None, 256);
        encode_header(&mut out, true, OpCode::Binary, None, 65536);
        assert_eq!(out, [&[0x82, 0x7E, 0x01, 0x00][..], &big[..]].concat());
    }

    #[test]
    fn partial_header_needs_more_bytes_at_every_length() {
        let mut full = Vec::new();
        encode_header(&mut full, true, OpCode::Binary, Some([1, 2, 3, 4]), 70000);
        assert_eq!(full.len(), MAX_HEADER_LEN);
        for cut in 0..full.len() {
            assert_eq!(decode(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(decode(&full).unwrap().is_some());
    }

    #[test]
    fn reserved_opcodes_are_protocol_errors() {
        for op in (3..=7).chain(11..=15) {
            let err = decode(&[0x80 | op, 0]).unwrap_err();
            assert_eq!(err, ProtocolError::ReservedOpcode(op));
        }
    }

    #[test]
    fn rsv_bits_without_extension_are_protocol_errors() {
        for rsv in 1..8u8 {
            assert_eq!(
                decode(&[0x81 | (rsv << 4), 0]),
                Err(ProtocolError::ReservedBits(rsv))
            );
            // allowed when an extension negotiated them
            assert!(decode_header(&[0x81 | (rsv << 4), 0], 7).unwrap().is_some());
        }
    }

    #[test]
    fn fragmented_or_long_control_frames_are_protocol_errors() {
        assert_eq!(
            decode(&[0x09, 0]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            decode(&[0x89, 126, 0, 126]),
            Err(ProtocolError::ControlFrameTooLong(126))
        );
        assert!(decode(&[0x89, 125]).unwrap().is_some());
    }

    #[test]
    fn eight_byte_length_with_msb_set_is_a_protocol_error() {
        let frame = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(&frame), Err(ProtocolError::LengthMsbSet));
    }

    #[test]
    fn non_minimal_lengths_are_protocol_errors() {
        assert_eq!(
            decode(&[0x82, 126, 0, 125]),
            Err(ProtocolError::NonMinimalLength)
        );
        let frame = [0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        assert_eq!(decode(&frame), Err(ProtocolError::NonMinimalLength));
    }

    #[test]
    fn header_len_matches_encoding() {
        for len in [0u64, 125, 126, 65535, 65536, 1 << 40] {
            for masked in [false, true] {
                let mut out = Vec::new();
                encode_header(
                    &mut out,
                    true,
                    OpCode::Binary,
                    masked.then_some([0; 4]),
                    len,
                );
                assert_eq!(out.len(), header_len(len, masked));
            }
        }
    }

    #[test]
    fn opcode_round_trips_and_rejects_reserved_values() {
        for v in 0..16u8 {
            match OpCode::from_u8(v) {
                Some(op) => assert_eq!(op.as_u8(), v),
                None => assert!(matches!(v, 3..=7 | 11..=15)),
            }
        }
        // not a 4-bit value at all
        for v in 16..=255u8 {
            assert_eq!(OpCode::from_u8(v), None);
        }
    }
}
