use super::*;
use crate::frame::encode_frame;

const KEY: Option<[u8; 4]> = Some([1, 2, 3, 4]);

fn frame(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, mask, payload);
    out
}

fn close_frame(mask: Option<[u8; 4]>, code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    frame(true, OpCode::Close, mask, &payload)
}

fn client() -> Tracker {
    Tracker::new(Role::Client, 0, u64::MAX)
}

/// Feeds `input` in pieces of `step` bytes the way the reactor does:
/// unconsumed bytes are presented again with the next piece.
fn feed(tracker: &mut Tracker, input: &[u8], step: usize) -> (Vec<u8>, Vec<Scanned>) {
    let mut forwarded = Vec::new();
    let mut kept: Vec<u8> = Vec::new();
    let mut results = Vec::new();
    for piece in input.chunks(step) {
        kept.extend_from_slice(piece);
        let scanned = tracker.scan(&kept);
        forwarded.extend_from_slice(&kept[..scanned.forward]);
        kept.drain(..scanned.consumed);
        let stop = scanned.error.is_some();
        results.push(scanned);
        if stop {
            break;
        }
    }
    (forwarded, results)
}

#[test]
fn masked_client_frames_are_forwarded_byte_for_byte_at_every_split() {
    let mut input = frame(false, OpCode::Text, KEY, b"hello ");
    input.extend(frame(true, OpCode::Ping, KEY, b"p"));
    input.extend(frame(true, OpCode::Continuation, KEY, &[b'w'; 300]));
    input.extend(frame(true, OpCode::Binary, KEY, &[7; 70_000]));
    for step in [1, 2, 3, 7, 13, 100, 4096, input.len()] {
        let mut tracker = client();
        let (forwarded, results) = feed(&mut tracker, &input, step);
        assert_eq!(forwarded, input, "step {step}");
        assert!(results
            .iter()
            .all(|r| r.error.is_none() && r.close.is_none()));
        assert!(tracker.at_boundary());
    }
}

#[test]
fn a_partial_header_is_not_consumed_and_the_stream_is_at_a_boundary() {
    let input = frame(true, OpCode::Binary, KEY, &[0; 200]);
    let mut tracker = client();
    let scanned = tracker.scan(&input[..3]);
    assert_eq!((scanned.forward, scanned.consumed), (0, 0));
    assert!(tracker.at_boundary());
    let scanned = tracker.scan(&input[..10]);
    assert_eq!((scanned.forward, scanned.consumed), (10, 10));
    assert!(!tracker.at_boundary(), "inside a payload");
}

#[test]
fn client_fails_on_unmasked_frame_and_server_on_masked_frame() {
    let scanned = client().scan(&frame(true, OpCode::Text, None, b"hi"));
    assert_eq!(scanned.error, Some(ProtocolError::UnmaskedFrame));
    assert_eq!(scanned.forward, 0);
    let mut server = Tracker::new(Role::Server, 0, u64::MAX);
    let scanned = server.scan(&frame(true, OpCode::Text, KEY, b"hi"));
    assert_eq!(scanned.error, Some(ProtocolError::MaskedFrame));
}

#[test]
fn a_close_frame_is_held_until_whole_and_its_code_is_read_through_the_mask() {
    let close = close_frame(KEY, 1000, "bye");
    let mut tracker = client();
    let scanned = tracker.scan(&close[..close.len() - 1]);
    assert_eq!(
        (scanned.forward, scanned.consumed, scanned.close),
        (0, 0, None)
    );
    let scanned = tracker.scan(&close);
    assert_eq!(scanned.forward, close.len());
    assert_eq!(scanned.close, Some(Some(CloseCode::NORMAL)));
    assert!(tracker.is_closed());
}

#[test]
fn what_follows_a_close_frame_is_dropped() {
    let mut input = frame(true, OpCode::Text, KEY, b"last");
    let before = input.len();
    input.extend(close_frame(KEY, 1001, ""));
    let close_end = input.len();
    input.extend(frame(true, OpCode::Text, KEY, b"after the close"));
    let mut tracker = client();
    let scanned = tracker.scan(&input);
    assert!(before < close_end);
    assert_eq!(scanned.forward, close_end);
    assert_eq!(scanned.close_at, before);
    assert_eq!(scanned.consumed, input.len());
    assert_eq!(tracker.scan(b"more").forward, 0);
}

#[test]
fn a_close_frame_without_a_code_or_with_a_bad_one_is_relayed_for_the_endpoint_to_judge() {
    let empty = frame(true, OpCode::Close, KEY, b"");
    assert_eq!(client().scan(&empty).close, Some(None));
    let one_byte = frame(true, OpCode::Close, KEY, b"x");
    let scanned = client().scan(&one_byte);
    assert_eq!(
        (scanned.forward, scanned.close),
        (one_byte.len(), Some(None))
    );
}

#[test]
fn the_message_limit_counts_every_fragment_on_the_wire() {
    let mut tracker = Tracker::new(Role::Client, 0, 100);
    let first = frame(false, OpCode::Binary, KEY, &[0; 60]);
    assert_eq!(tracker.scan(&first).error, None);
    let second = frame(true, OpCode::Continuation, KEY, &[0; 41]);
    let scanned = tracker.scan(&second);
    assert_eq!(
        scanned.error,
        Some(ProtocolError::MessageTooLarge { len: 101, max: 100 })
    );
    assert_eq!(scanned.forward, 0, "the frame that crossed the limit stays");
}

#[test]
fn a_message_at_the_limit_passes_and_the_count_starts_again_with_the_next() {
    let mut tracker = Tracker::new(Role::Client, 0, 100);
    for _ in 0..3 {
        let scanned = tracker.scan(&frame(true, OpCode::Text, KEY, &[b'a'; 100]));
        assert_eq!(scanned.error, None);
    }
}

#[test]
fn fragments_out_of_order_fail_the_stream() {
    let scanned = client().scan(&frame(true, OpCode::Continuation, KEY, b"x"));
    assert_eq!(scanned.error, Some(ProtocolError::UnexpectedContinuation));
    let mut input = frame(false, OpCode::Text, KEY, b"a");
    input.extend(frame(true, OpCode::Text, KEY, b"b"));
    let scanned = client().scan(&input);
    assert_eq!(scanned.error, Some(ProtocolError::ExpectedContinuation));
    assert_eq!(scanned.forward, 7, "the first frame went through");
}

#[test]
fn control_frames_may_come_between_fragments() {
    let mut input = frame(false, OpCode::Text, KEY, b"a");
    input.extend(frame(true, OpCode::Pong, KEY, b""));
    input.extend(frame(true, OpCode::Continuation, KEY, b"b"));
    let scanned = client().scan(&input);
    assert_eq!((scanned.forward, scanned.error), (input.len(), None));
}

#[test]
fn rsv_bits_pass_only_when_an_extension_defines_them() {
    let mut compressed = frame(true, OpCode::Text, KEY, b"x");
    compressed[0] |= 0x40;
    let scanned = client().scan(&compressed);
    assert_eq!(scanned.error, Some(ProtocolError::ReservedBits(4)));
    let mut deflate = Tracker::new(Role::Client, 0x4, u64::MAX);
    assert_eq!(deflate.scan(&compressed).error, None);
}

#[test]
fn header_rules_of_section_5_fail_the_stream() {
    // a 64-bit length with its most significant bit set (§5.2)
    let mut bad = vec![0x82, 0xFF];
    bad.extend_from_slice(&u64::MAX.to_be_bytes());
    bad.extend_from_slice(&[0; 4]);
    assert_eq!(client().scan(&bad).error, Some(ProtocolError::LengthMsbSet));
    // a reserved opcode (§5.2)
    assert_eq!(
        client().scan(&[0x83, 0x80, 0, 0, 0, 0]).error,
        Some(ProtocolError::ReservedOpcode(3))
    );
    // a fragmented ping (§5.5)
    assert_eq!(
        client().scan(&[0x09, 0x80, 0, 0, 0, 0]).error,
        Some(ProtocolError::FragmentedControlFrame)
    );
}
