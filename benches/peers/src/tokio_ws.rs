//! The tokio-websockets peer. It queues the replies to pings and close
//! frames itself and writes them before its next read; it has no
//! compression. `echo` serves any byte stream, so the TLS peer (tls.rs)
//! runs the same code over tokio-rustls.

use crate::MAX_MESSAGE;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_websockets::{Config, Error, Limits, ServerBuilder};

pub async fn handle(stream: TcpStream) {
    serve(stream).await
}

/// Echoes on `stream` until the close, reporting unexpected errors.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    if let Err(e) = echo(stream).await {
        match e {
            Error::AlreadyClosed => {}
            Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionReset => {}
            e => eprintln!("tokio-websockets: {e}"),
        }
    }
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<(), Error> {
    let (_request, mut ws) = ServerBuilder::new()
        // Echo each message in one frame, as it most likely came.
        .config(Config::default().frame_size(MAX_MESSAGE))
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE)))
        .accept(stream)
        .await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        } else if message.is_ping() {
            // The pong is queued; write it now rather than before the
            // next read.
            ws.flush().await?;
        }
        // Close: the reply is queued; the next read writes it and ends
        // the stream.
    }
    Ok(())
}
