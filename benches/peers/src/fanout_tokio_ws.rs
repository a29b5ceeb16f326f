//! The tokio-websockets fan-out peer: the same shape as the
//! tokio-tungstenite one (that library's broadcast example), with the
//! tokio-websockets echo peer's limits: the stream split in two, the read
//! half sending each text or binary message to every other connection's
//! channel (fanout.rs), the channel forwarded into the write half, the two
//! raced in one task. tokio-websockets answers pings and the close from
//! the read half.

use crate::fanout::Peers;
use crate::MAX_MESSAGE;
use futures_util::future::{self, Either};
use futures_util::{stream, StreamExt};
use std::pin::pin;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_websockets::{Config, Error, Limits, Message, ServerBuilder};

pub async fn handle(stream: TcpStream, peers: Arc<Peers<Message>>) {
    if let Err(e) = relay(stream, &peers).await {
        match e {
            Error::AlreadyClosed => {}
            Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionReset => {}
            e => eprintln!("fanout-tokio-websockets: {e}"),
        }
    }
}

async fn relay(stream: TcpStream, peers: &Arc<Peers<Message>>) -> Result<(), Error> {
    let (_request, ws) = ServerBuilder::new()
        .config(Config::default().frame_size(MAX_MESSAGE))
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE)))
        .accept(stream)
        .await?;
    let (member, mut inbox) = peers.join();
    let (outgoing, mut incoming) = ws.split();
    let receive = async {
        while let Some(message) = incoming.next().await {
            let message = message?;
            if message.is_text() || message.is_binary() {
                member.send_others(&message);
            }
        }
        Ok(())
    };
    let send = stream::poll_fn(|cx| inbox.poll_recv(cx))
        .map(Ok)
        .forward(outgoing);
    match future::select(pin!(receive), pin!(send)).await {
        Either::Left((result, _)) | Either::Right((result, _)) => result,
    }
}
