//! `Context::abort`: a handler ends a connection without a closing
//! handshake. The peer sees what was written before, then the end of the
//! stream and no close frame; the handler's `on_close` follows once, with
//! 1006 and `CloseCause::Eof`, as for a peer that vanished.
//!
//! Every blocking read has a timeout (support::RawClient's), so a broken
//! reactor fails a test instead of hanging it; no test asserts a time.

mod support;

use edgews::protocol::frame::OpCode;
use edgews::protocol::{CloseCause, Closed, Message};
use edgews::reactor::{ConnId, Context, Handler};
use edgews::ServerConfig;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;
use support::{client_frame, RawClient, TestServer};

/// How long a test waits for the handler's `on_close` before failing
/// (a bound against hanging, not a measurement).
const PATIENCE: Duration = Duration::from_secs(10);

/// What the handler saw close: the connection, its code, its cause.
type CloseSeen = (ConnId, u16, CloseCause);

/// Acts on text commands: `abort` writes "bye", then aborts the sender
/// (twice: the second must change nothing); `abort others` aborts every
/// other open connection and answers "done". Reports every `on_close`.
struct Aborter {
    closes: Sender<CloseSeen>,
}

impl Handler for Aborter {
    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        match message.as_text() {
            Some("abort") => {
                ctx.send_text(id, "bye").unwrap();
                ctx.abort(id);
                ctx.abort(id);
            }
            Some("abort others") => {
                let others: Vec<ConnId> = ctx.open_connections().filter(|&o| o != id).collect();
                for other in others {
                    ctx.abort(other);
                }
                ctx.send_text(id, "done").unwrap();
            }
            _ => {
                let _ = ctx.send_message(id, &message);
            }
        }
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, closed: &Closed) {
        let _ = self.closes.send((id, closed.code.0, closed.cause.clone()));
    }
}

/// A server running [`Aborter`], and what its `on_close` reports.
fn aborter() -> (TestServer, Receiver<CloseSeen>) {
    let (tx, rx) = mpsc::channel();
    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, move || Aborter { closes: tx });
    (server, rx)
}

/// Reads frames until the end of the stream: those that came before it.
fn frames_until_eof(client: &mut RawClient) -> Vec<(OpCode, Vec<u8>)> {
    std::iter::from_fn(|| client.read_frame())
        .map(|f| (f.opcode, f.payload))
        .collect()
}

#[test]
fn an_aborted_connection_ends_after_its_last_write_without_a_close_frame() {
    let (server, closes) = aborter();
    let mut client = RawClient::open(server.addr, "/");
    client.send(&client_frame(true, OpCode::Text, b"abort"));
    let frames = frames_until_eof(&mut client);
    assert_eq!(
        frames,
        [(OpCode::Text, b"bye".to_vec())],
        "then EOF, no close"
    );
    let (_, code, cause) = closes.recv_timeout(PATIENCE).expect("on_close");
    assert_eq!((code, cause), (1006, CloseCause::Eof));
    let stats = server.stop();
    assert!(closes.try_recv().is_err(), "on_close comes once");
    assert_eq!(stats.closes_by_code.get(&1006), Some(&1));
}

#[test]
fn a_handler_may_abort_other_connections_and_the_caller_stays_open() {
    let (server, closes) = aborter();
    let mut victims: Vec<RawClient> = (0..3).map(|_| RawClient::open(server.addr, "/")).collect();
    let mut caller = RawClient::open(server.addr, "/");
    // every victim is open on the server's side before the command: each
    // gets its echo first
    for victim in &mut victims {
        victim.send(&client_frame(true, OpCode::Text, b"here"));
        assert_eq!(victim.read_frame().expect("echo").payload, b"here");
    }
    caller.send(&client_frame(true, OpCode::Text, b"abort others"));
    assert_eq!(caller.read_frame().expect("answer").payload, b"done");
    for victim in &mut victims {
        assert_eq!(frames_until_eof(victim), [], "EOF, no close frame");
    }
    let seen: Vec<CloseSeen> = (0..victims.len())
        .map(|_| closes.recv_timeout(PATIENCE).expect("on_close"))
        .collect();
    assert!(seen
        .iter()
        .all(|(_, code, cause)| *code == 1006 && *cause == CloseCause::Eof));
    let mut ids: Vec<ConnId> = seen.iter().map(|(id, _, _)| *id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), victims.len(), "one on_close for each victim");
    // the caller still echoes
    caller.send(&client_frame(true, OpCode::Text, b"still here"));
    assert_eq!(caller.read_frame().expect("echo").payload, b"still here");
    server.stop();
    // only the caller's close is left (at shutdown): no victim's again
    let later: Vec<CloseSeen> = closes.try_iter().collect();
    assert!(
        later.iter().all(|(id, _, _)| !ids.contains(id)),
        "{later:?}"
    );
}
