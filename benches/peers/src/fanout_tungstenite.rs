//! The tokio-tungstenite fan-out peer, after tokio-tungstenite's own
//! broadcast example (`examples/server.rs`) with the echo peer's limits:
//! the stream split in two, the read half sending each text or binary
//! message to every other connection's channel (fanout.rs), the channel
//! forwarded into the write half (`forward` flushes whenever the channel
//! is empty), the two raced in one task. tungstenite answers pings and
//! the close from the read half.

use crate::fanout::Peers;
use crate::MAX_MESSAGE;
use futures_util::future::{self, Either};
use futures_util::{stream, StreamExt};
use std::pin::pin;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};

pub async fn handle(stream: TcpStream, peers: Arc<Peers<Message>>) {
    if let Err(e) = relay(stream, &peers).await {
        match e {
            Error::ConnectionClosed | Error::AlreadyClosed => {}
            Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionReset => {}
            e => eprintln!("fanout-tokio-tungstenite: {e}"),
        }
    }
}

async fn relay(stream: TcpStream, peers: &Arc<Peers<Message>>) -> Result<(), Error> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
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
