//! The fastwebsockets peer: the HTTP upgrade through hyper, as the crate's
//! own echo example does, and a `FragmentCollector` so fragmented messages
//! are echoed whole. fastwebsockets has no compression.

use crate::MAX_MESSAGE;
use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub async fn handle(stream: TcpStream) {
    let io = TokioIo::new(stream);
    let conn = http1::Builder::new()
        .serve_connection(io, service_fn(upgrade_request))
        .with_upgrades();
    if let Err(e) = conn.await {
        if !e.is_incomplete_message() {
            eprintln!("fastwebsockets: http: {e}");
        }
    }
}

async fn upgrade_request(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        match echo(fut).await {
            Ok(()) | Err(WebSocketError::UnexpectedEOF | WebSocketError::ConnectionClosed) => {}
            Err(WebSocketError::IoError(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => eprintln!("fastwebsockets: {e}"),
        }
    });
    Ok(response)
}

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    // It refuses a frame whose length is >= the limit: one more byte lets
    // a message of exactly MAX_MESSAGE through, as the other servers do.
    ws.set_max_message_size(MAX_MESSAGE + 1);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            // auto_close has answered it already.
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            // Pings are answered by auto_pong; pongs need nothing.
            _ => {}
        }
    }
}
