//! The `frame_decode` oracle.

use edgews::protocol::frame::{decode_header, encode_header, header_len};
use edgews::protocol::ProtocolError;

/// Arbitrary bytes through [`decode_header`], frame after frame while a
/// whole header decodes: the length it reports is between 2 and 14 and
/// within the input, equals [`header_len`], and re-encoding the header gives
/// the same bytes; every shorter prefix of a valid header is "need more";
/// and allowing all RSV bits changes nothing but the RSV verdict.
pub fn frame_decode(data: &[u8]) {
    let mut pos = 0;
    while pos < data.len() {
        let buf = &data[pos..];
        let strict = decode_header(buf, 0);
        let lenient = decode_header(buf, 0x7);
        match (&strict, &lenient) {
            (Err(ProtocolError::ReservedBits(bits)), _) => {
                assert!(*bits != 0);
                assert!(
                    !matches!(lenient, Err(ProtocolError::ReservedBits(_))),
                    "RSV bits refused although allowed"
                );
            }
            _ => assert_eq!(strict, lenient, "allowing RSV bits changed another verdict"),
        }
        let (header, n) = match strict {
            Ok(Some(decoded)) => decoded,
            Ok(None) => {
                assert!(buf.len() < 14, "need more bytes with {} at hand", buf.len());
                return;
            }
            Err(_) => return,
        };
        assert!((2..=14).contains(&n), "header length {n}");
        assert!(
            n <= buf.len(),
            "header length {n} past the input ({})",
            buf.len()
        );
        assert_eq!(n, header_len(header.len, header.mask().is_some()));
        assert_eq!(header.rsv, 0);
        if header.opcode.is_control() {
            assert!(header.fin && header.len <= 125);
        }
        assert!(header.len >> 63 == 0);
        let mut again = Vec::with_capacity(14);
        encode_header(
            &mut again,
            header.fin,
            header.opcode,
            header.mask(),
            header.len,
        );
        assert_eq!(&again[..], &buf[..n], "re-encoded header differs");
        for cut in 0..n {
            assert_eq!(
                decode_header(&buf[..cut], 0),
                Ok(None),
                "prefix of {cut} bytes of a valid header"
            );
        }
        let payload = usize::try_from(header.len).unwrap_or(usize::MAX);
        if buf.len() - n < payload {
            return;
        }
        pos += n + payload;
    }
}
