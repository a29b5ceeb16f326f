//! `relay_scan`: the proxy's frame tracker (`edgews::protocol::relay`) over
//! arbitrary bytes, fed in the pieces the chunking prefix gives, the way
//! the reactor feeds it (unconsumed bytes presented again with the next
//! piece). Flags: bit 0 (0x08 in the first byte) the sender is the server
//! (else the client, whose frames must be masked); bit 1 permessage-deflate
//! agreed (RSV1 allowed); bit 2 a 300-byte message limit.
//!
//! Checked: no panic; every scan forwards a prefix of what it consumes,
//! consumes at most its input, and leaves unconsumed at most a header and
//! a close frame (139 bytes); what is forwarded over the whole input is
//! the same whichever way it was cut (so a relay's output never depends
//! on how the bytes arrived), and so are the close code seen and the
//! error; after a close or an error nothing more is forwarded.

use super::{for_each_chunk, Spec};
use edgews::protocol::relay::{Scanned, Tracker};
use edgews::protocol::{ProtocolError, Role};

/// What a tracker made of a whole input.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    forwarded: Vec<u8>,
    close: Option<Option<u16>>,
    error: Option<ProtocolError>,
}

pub fn relay_scan(data: &[u8]) {
    let spec = Spec::parse(data);
    let sender = if spec.flag(1) {
        Role::Server
    } else {
        Role::Client
    };
    let rsv = if spec.flag(2) { 0x4 } else { 0 };
    let max = if spec.flag(4) { 300 } else { u64::MAX };
    let whole = run(Tracker::new(sender, rsv, max), spec.body, &[]);
    let cut = run(Tracker::new(sender, rsv, max), spec.body, spec.sizes);
    assert_eq!(whole, cut, "the cut changed what is relayed");
}

fn run(mut tracker: Tracker, body: &[u8], sizes: &[u8]) -> Outcome {
    let mut kept: Vec<u8> = Vec::new();
    let mut outcome = Outcome {
        forwarded: Vec::new(),
        close: None,
        error: None,
    };
    let mut over = false;
    for_each_chunk(body, sizes, |piece| {
        if over {
            return;
        }
        kept.extend_from_slice(piece);
        let scanned = tracker.scan(&kept);
        check(&scanned, kept.len());
        outcome
            .forwarded
            .extend_from_slice(&kept[..scanned.forward]);
        kept.drain(..scanned.consumed);
        if let Some(code) = scanned.close {
            outcome.close = Some(code.map(|c| c.0));
            assert_eq!(scanned.consumed, scanned.forward + kept_after(&scanned));
            over = true;
        }
        if let Some(e) = scanned.error {
            outcome.error = Some(e);
            over = true;
        }
        assert!(kept.len() <= 14 + 125, "{} bytes held back", kept.len());
    });
    if over {
        let more = tracker.scan(b"\x81\x80\0\0\0\0\x81\x00");
        assert_eq!(more.forward, 0, "forwarded after a close or an error");
    }
    outcome
}

/// What a scan that saw a close dropped after it.
fn kept_after(scanned: &Scanned) -> usize {
    scanned.consumed - scanned.forward
}

fn check(scanned: &Scanned, len: usize) {
    assert!(scanned.forward <= scanned.consumed && scanned.consumed <= len);
    if scanned.close.is_some() {
        assert!(scanned.close_at < scanned.forward);
    }
}
