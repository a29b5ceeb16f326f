//! `edgews-peers`: minimal echo servers on other Rust WebSocket libraries,
//! run side by side with `edgews echo` by `benches/compare.sh`.
//!
//! Each peer is set up the same way as edgews' echo server: one thread (a
//! current-thread tokio runtime, one task per connection), text and binary
//! messages echoed as received, pings answered, the closing handshake
//! completed, messages up to 64 MiB, no compression, TCP_NODELAY on.
//!
//! ```text
//! edgews-peers tokio-tungstenite --listen 127.0.0.1:9002
//! edgews-peers fastwebsockets    --listen 127.0.0.1:9003
//! edgews-peers tokio-websockets  --listen 127.0.0.1:9004
//! ```
//!
//! Prints `listening ADDR` on stdout once the socket is bound.

mod fastws;
mod tokio_ws;
mod tungstenite;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The largest message each peer accepts, as edgews' default.
pub const MAX_MESSAGE: usize = 64 << 20;

#[derive(Debug, Parser)]
#[command(
    name = "edgews-peers",
    about = "Echo servers on other WebSocket libraries, for benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    peer: Peer,
}

#[derive(Debug, Subcommand)]
enum Peer {
    /// tokio-tungstenite's accept_async_with_config.
    #[command(name = "tokio-tungstenite")]
    TokioTungstenite(ListenArgs),
    /// fastwebsockets upgraded through hyper, with a FragmentCollector.
    #[command(name = "fastwebsockets")]
    Fastwebsockets(ListenArgs),
    /// tokio-websockets' ServerBuilder.
    #[command(name = "tokio-websockets")]
    TokioWebsockets(ListenArgs),
}

#[derive(Debug, clap::Args)]
struct ListenArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9002")]
    listen: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgews-peers: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.peer {
            Peer::TokioTungstenite(a) => serve(a.listen, tungstenite::handle).await,
            Peer::Fastwebsockets(a) => serve(a.listen, fastws::handle).await,
            Peer::TokioWebsockets(a) => serve(a.listen, tokio_ws::handle).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgews-peers: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts connections forever, spawning `handle` for each on this thread.
async fn serve<F, Fut>(addr: SocketAddr, handle: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", listener.local_addr()?)?;
        out.flush()?;
    }
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream));
            }
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                eprintln!("edgews-peers: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
