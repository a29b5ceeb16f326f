//! The engine driven by hand over a blocking `TcpStream`: an echo server,
//! one connection at a time. `cargo run -p edgews-protocol --example
//! blocking_echo`, then `new WebSocket("ws://127.0.0.1:9002")`.
use edgews_protocol::{Connection, Event, ProtocolConfig};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:9002")?;
    let config = Arc::new(ProtocolConfig::default());
    for stream in listener.incoming() {
        if let Err(e) = serve(stream?, config.clone()) {
            eprintln!("connection ended: {e}");
        }
    }
    Ok(())
}

fn serve(mut stream: TcpStream, config: Arc<ProtocolConfig>) -> std::io::Result<()> {
    let mut conn = Connection::server(Instant::now(), config);
    let (mut buf, mut kept, mut out) = (vec![0u8; 64 << 10], 0, Vec::new());
    while !conn.is_closed() {
        let n = stream.read(&mut buf[kept..])?;
        if n == 0 {
            conn.handle_eof(Instant::now()); // the peer vanished: 1006
            break;
        }
        let (mut pos, end) = (0, kept + n);
        loop {
            let (used, event) = conn.handle_input(Instant::now(), &mut buf[pos..end], &mut out);
            pos += used;
            let Some(event) = event else { break };
            // copy what the reply needs: `event` borrows the buffer
            let echo = match event {
                Event::Upgrade(_) => None,
                Event::HttpRequest(_) => {
                    let body = b"a WebSocket endpoint\n";
                    let _ = conn.respond(426, "text/plain", &[], body, &mut out);
                    continue;
                }
                Event::Message(message) => Some(message.into_owned()),
                _ => continue, // pongs are queued by the engine itself
            };
            match echo {
                None => conn.accept(&mut out).map_err(std::io::Error::other)?,
                Some(m) => conn
                    .send_message(&m, &mut out)
                    .map_err(std::io::Error::other)?,
            }
        }
        stream.write_all(&out)?;
        out.clear();
        buf.copy_within(pos..end, 0); // a partial frame waits for more bytes
        kept = end - pos;
    }
    stream.write_all(&out)
}
