//! The tokio-tungstenite peer.
//!
//! tungstenite answers pings and close frames itself (the replies are
//! queued and written on the next flush), and has no compression.

use crate::MAX_MESSAGE;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};

pub async fn handle(stream: TcpStream) {
    if let Err(e) = echo(stream).await {
        match e {
            Error::ConnectionClosed | Error::AlreadyClosed => {}
            Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionReset => {}
            e => eprintln!("tokio-tungstenite: {e}"),
        }
    }
}

async fn echo(stream: TcpStream) -> Result<(), Error> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    while let Some(message) = ws.next().await {
        match message? {
            m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m).await?,
            // The pong is queued already; write it now rather than with
            // the next echo.
            Message::Ping(_) => ws.flush().await?,
            // The reply to the close is queued; the next read writes it
            // and then ends the stream.
            Message::Close(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    Ok(())
}
