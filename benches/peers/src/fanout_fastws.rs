//! The fastwebsockets fan-out peer: the upgrade through hyper as the echo
//! peer's, then the socket split (`WebSocket::split` over
//! `tokio::io::split`, as the crate's `echo_server_split` example does,
//! with a `FragmentCollectorRead`): fastwebsockets' `read_frame` is not
//! cancel-safe, so reading cannot be raced against a channel in one loop.
//! The read half sends each text or binary message, as its opcode and a
//! `Bytes`, to every other connection's channel (fanout.rs), and the pong
//! or close answer fastwebsockets owes to this connection's own channel;
//! the write half writes what the channel brings. The two run joined in
//! one task, so a close answer is written before the socket is dropped.
//!
//! `write_frame` writes each frame straight to the socket, one system
//! call a frame. Under the write half sits a `BufWriter`, flushed once the
//! channel is empty: the batching that `forward` gives the other two tokio
//! peers and its write queue gives edgews. Without it, a peer that falls
//! behind (a burst, a busy core) pays as much per message as ever and
//! never catches up: at 1000 connections and 200 messages/s it lost
//! deliveries in the loader's smoke runs where the others did not.
//! The connection joins the registry when hyper is handed the 101, not
//! when its task first runs, so that it misses nothing sent after its
//! client saw the 101.

use crate::fanout::{Member, Peers};
use crate::MAX_MESSAGE;
use fastwebsockets::{upgrade, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError};
use futures_util::future;
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::io::BufWriter;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;

/// A message as queued: its opcode and payload.
pub type Out = (OpCode, Bytes);

pub async fn handle(stream: TcpStream, peers: Arc<Peers<Out>>) {
    let io = TokioIo::new(stream);
    let service = service_fn(move |req| upgrade_request(req, peers.clone()));
    let conn = http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    if let Err(e) = conn.await {
        if !e.is_incomplete_message() {
            eprintln!("fanout-fastwebsockets: http: {e}");
        }
    }
}

async fn upgrade_request(
    mut req: Request<Incoming>,
    peers: Arc<Peers<Out>>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    // Joined before the 101 goes out, as the other servers do: a message
    // broadcast before this connection's task runs waits in its channel.
    let joined = peers.join();
    tokio::spawn(async move {
        match relay(fut, joined).await {
            Ok(()) | Err(WebSocketError::UnexpectedEOF | WebSocketError::ConnectionClosed) => {}
            Err(WebSocketError::IoError(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => eprintln!("fanout-fastwebsockets: {e}"),
        }
    });
    Ok(response)
}

async fn relay(
    fut: upgrade::UpgradeFut,
    (member, mut inbox): (Member<Out>, UnboundedReceiver<Out>),
) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    // As the echo peer: a message of exactly MAX_MESSAGE passes.
    ws.set_max_message_size(MAX_MESSAGE + 1);
    let (read, mut write) = ws.split(|io| {
        let (read, write) = tokio::io::split(io);
        (read, BufWriter::new(write))
    });
    let mut read = FragmentCollectorRead::new(read);
    let receive = async move {
        let mut owed = |frame: Frame<'_>| {
            member.send_self((frame.opcode, Bytes::copy_from_slice(&frame.payload)));
            async { Ok::<(), std::io::Error>(()) }
        };
        loop {
            let frame = read.read_frame(&mut owed).await?;
            match frame.opcode {
                // `member` is dropped on return: the channel ends once
                // the close answer in it is written.
                OpCode::Close => return Ok::<(), WebSocketError>(()),
                OpCode::Text | OpCode::Binary => {
                    member.send_others(&(frame.opcode, into_bytes(frame.payload)))
                }
                _ => {}
            }
        }
    };
    let send = async move {
        while let Some(first) = inbox.recv().await {
            let (mut next, mut closed) = (Some(first), false);
            // all that is queued, then one flush, as `forward` does
            while let Some((opcode, payload)) = next.take() {
                let frame = Frame::new(true, opcode, None, Payload::Borrowed(&payload));
                write.write_frame(frame).await?;
                closed = opcode == OpCode::Close;
                if !closed {
                    next = inbox.try_recv().ok();
                }
            }
            write.flush().await?;
            if closed {
                break;
            }
        }
        Ok(())
    };
    let (received, sent) = future::join(receive, send).await;
    received.and(sent)
}

/// The payload as `Bytes`, without a copy when it is one already.
fn into_bytes(payload: Payload<'_>) -> Bytes {
    match payload {
        Payload::Bytes(bytes) => bytes.freeze(),
        Payload::Owned(vec) => vec.into(),
        other => Bytes::copy_from_slice(&other),
    }
}
