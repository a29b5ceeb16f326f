//! The HTTP/1.1 pieces of the opening handshake: finding the end of a head
//! without re-scanning, header token lists, and writing responses.

/// Finds the end of an HTTP head (`\r\n\r\n`) in a buffer that grows between
/// calls, scanning each byte once. Tungstenite re-parsed the whole buffer on
/// every read (CVE-2023-43669); this remembers where it stopped.
#[derive(Debug, Default, Clone)]
pub struct HeadScanner {
    /// Bytes at the front of the buffer already known not to contain the
    /// end of the head (less the three that could start a split terminator).
    scanned: usize,
}

impl HeadScanner {
    /// Returns the length of the head (terminator included) once `buf`
    /// holds all of it. `buf` must start with the bytes seen by earlier calls.
    pub fn find_end(&mut self, buf: &[u8]) -> Option<usize> {
        let from = self.scanned.saturating_sub(3);
        let found = find_blank_line(buf.get(from..)?).map(|i| from + i + 4);
        self.scanned = buf.len();
        found
    }

    /// Whether no bytes have been looked at yet.
    pub fn is_fresh(&self) -> bool {
        self.scanned == 0
    }
}

/// Where the first `\r\n\r\n` in `buf` starts. Horspool's search: the
/// last byte of each four-byte window says how far the next window that
/// could match is, so a header's text, free of CR and LF, is stepped over
/// four bytes at a time (a quarter of the compares of sliding one by one).
fn find_blank_line(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(&last) = buf.get(i + 3) {
        match last {
            // LF ends the pattern (index 3) and also sits at index 1
            b'\n' if buf[i..i + 3] == *b"\r\n\r" => return Some(i),
            b'\n' => i += 2,
            // CR sits at index 2: the window one on may match
            b'\r' => i += 1,
            // in no window of the pattern
            _ => i += 4,
        }
    }
    None
}

/// Whether a comma-separated header value contains `token`, compared
/// ASCII-case-insensitively (`Connection: keep-alive, Upgrade`).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The standard reason phrase for the statuses this crate writes.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Appends a complete HTTP/1.1 response that closes the connection:
/// status line, `extra` headers (each `Name: value` without CRLF), and body.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &[&str],
    body: &[u8],
) {
    use std::io::Write as _;
    // writing into a Vec cannot fail
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason_phrase(status),
        body.len()
    );
    for header in extra {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_when_split_byte_by_byte() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
        let mut scanner = HeadScanner::default();
        for n in 0..head.len() {
            let found = scanner.find_end(&head[..n]);
            if n < head.len() - 4 {
                assert_eq!(found, None, "at {n}");
            } else {
                assert_eq!(found, Some(head.len() - 4), "at {n}");
                break;
            }
        }
    }

    #[test]
    fn the_blank_line_is_found_where_a_sliding_window_finds_it() {
        // every string of up to 9 bytes over CR, LF and one other byte
        let alphabet = [b'\r', b'\n', b'a'];
        for len in 0..=9u32 {
            for mut code in 0..3usize.pow(len) {
                let buf: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[code % 3];
                        code /= 3;
                        b
                    })
                    .collect();
                let want = buf.windows(4).position(|w| w == b"\r\n\r\n");
                assert_eq!(find_blank_line(&buf), want, "{buf:?}");
            }
        }
    }

    #[test]
    fn tokens_are_case_insensitive_and_trimmed() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b"WebSocket", "websocket"));
        assert!(!has_token(b"keep-alive", "upgrade"));
        assert!(!has_token(b"upgraded", "upgrade"));
    }

    #[test]
    fn responses_are_complete() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            426,
            "text/plain",
            &["Sec-WebSocket-Version: 13"],
            b"hi\n",
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.ends_with("\r\n\r\nhi\n"));
    }
}
