//! A request's header fields (RFC 7230 §3.2), read from the head they
//! arrived in when asked for instead of copied into a list per request.
//!
//! `parse_request` validates the head with httparse and checks the headers
//! the handshake needs straight from httparse's slots on its stack; the
//! [`Headers`] it hands on keep only the slice of the head the header lines
//! fill. A lookup walks those lines again (a handler asks for one or two
//! headers, if any), which spares every upgrade an allocation: it was one
//! of the two a connection made (docs/benchmarks.md, "Connection setup").

/// A request's header fields in arrival order, names as sent.
///
/// Iterating gives `(name, value)` pairs exactly as httparse parses them:
/// the value without the whitespace around it (RFC 7230 §3.2.4). Build one
/// by hand from a list with `From<Vec<_>>` (for tests and for requests
/// that did not come from the wire).
#[derive(Clone, Default)]
pub struct Headers<'a>(Fields<'a>);

#[derive(Clone)]
enum Fields<'a> {
    /// The header lines of a head httparse accepted, and how many there
    /// are; the lines end at the first empty one.
    Head { lines: &'a [u8], count: usize },
    /// A list given by hand.
    List(Vec<(&'a str, &'a [u8])>),
}

impl Default for Fields<'_> {
    fn default() -> Self {
        Fields::List(Vec::new())
    }
}

impl<'a> Headers<'a> {
    /// The `count` header lines at the start of `lines`, a slice of a head
    /// httparse parsed: from the first header's name to the end of the head.
    pub(crate) fn from_head(lines: &'a [u8], count: usize) -> Self {
        Headers(Fields::Head { lines, count })
    }

    /// The fields in arrival order.
    pub fn iter(&self) -> Iter<'a, '_> {
        Iter(match &self.0 {
            Fields::Head { lines, count } => IterFields::Head {
                rest: lines,
                left: *count,
            },
            Fields::List(list) => IterFields::List(list.iter()),
        })
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        match &self.0 {
            Fields::Head { count, .. } => *count,
            Fields::List(list) => list.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> From<Vec<(&'a str, &'a [u8])>> for Headers<'a> {
    fn from(list: Vec<(&'a str, &'a [u8])>) -> Self {
        Headers(Fields::List(list))
    }
}

impl<'a, 'h> IntoIterator for &'h Headers<'a> {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = Iter<'a, 'h>;

    fn into_iter(self) -> Iter<'a, 'h> {
        self.iter()
    }
}

impl std::fmt::Debug for Headers<'_> {
    /// Names only: a request's `Debug` form decides what of the values
    /// may be shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(name, _)| name))
            .finish()
    }
}

/// The fields of [`Headers`], in arrival order.
#[derive(Clone)]
pub struct Iter<'a, 'h>(IterFields<'a, 'h>);

#[derive(Clone)]
enum IterFields<'a, 'h> {
    Head { rest: &'a [u8], left: usize },
    List(std::slice::Iter<'h, (&'a str, &'a [u8])>),
}

impl<'a> Iterator for Iter<'a, '_> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterFields::Head { rest, left } => {
                let field = next_field(rest).filter(|_| *left > 0);
                *left = if field.is_some() { *left - 1 } else { 0 };
                field
            }
            IterFields::List(list) => list.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterFields::Head { left, .. } => (0, Some(*left)),
            IterFields::List(list) => list.size_hint(),
        }
    }
}

/// The field on the first line of `rest`, and `rest` moved past that line.
/// httparse has accepted these lines, so each is `name:value` ending in
/// CRLF or LF, the name a token (ASCII), the value without CR or LF; like
/// httparse, the value loses the spaces and tabs around it (RFC 7230 §3.2:
/// `field-name ":" OWS field-value OWS`). `None` at the empty line that
/// ends the head. Never panics, whatever `rest` holds.
fn next_field<'a>(rest: &mut &'a [u8]) -> Option<(&'a str, &'a [u8])> {
    let lines: &'a [u8] = rest;
    let (line, after) = match lines.iter().position(|&b| b == b'\n') {
        Some(lf) => (&lines[..lf], &lines[lf + 1..]),
        None => (lines, &lines[lines.len()..]),
    };
    *rest = after;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let colon = line.iter().position(|&b| b == b':')?;
    let name = std::str::from_utf8(&line[..colon]).ok()?;
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let value = &line[colon + 1..];
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    Some((name, &value[start..end]))
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
