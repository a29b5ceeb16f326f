//! `edgews-peers`: minimal echo servers on other Rust WebSocket libraries,
//! run side by side with `edgews echo` by `benches/compare.sh`.
//!
//! Each peer is set up the same way as edgews' echo server: one thread (a
//! current-thread tokio runtime, one task per connection), text and binary
//! messages echoed as received, pings answered, the closing handshake
//! completed, messages up to 64 MiB, TCP_NODELAY on. None compresses but
//! `ratchet`, the one with permessage-deflate, to set beside edgews'
//! compressed echo (see `ratchet.rs` for what it negotiates).
//!
//! ```text
//! edgews-peers tokio-tungstenite --listen 127.0.0.1:9002
//! edgews-peers fastwebsockets    --listen 127.0.0.1:9003
//! edgews-peers tokio-websockets  --listen 127.0.0.1:9004
//! edgews-peers floor             --listen 127.0.0.1:9005
//! edgews-peers ratchet           --listen 127.0.0.1:9006
//! edgews-peers tokio-websockets-tls --listen 127.0.0.1:9007 --tls-cert cert.pem --tls-key key.pem
//! edgews-peers handshake-load    --url wss://127.0.0.1:9007/ --ca-file ca.pem --parallel 4 --duration 5
//! edgews-peers relay-floor       --listen 127.0.0.1:9008 --upstream 127.0.0.1:9001
//! edgews-peers connect-floor     --listen 127.0.0.1:9009
//! edgews-peers fanout-tokio-tungstenite --listen 127.0.0.1:9010
//! edgews-peers fanout-fastwebsockets    --listen 127.0.0.1:9011
//! edgews-peers fanout-tokio-websockets  --listen 127.0.0.1:9012
//! edgews-peers fanout-floor             --listen 127.0.0.1:9013
//! edgews-peers syscall-costs
//! edgews-peers wake-costs
//! ```
//!
//! `floor` is no WebSocket library but a yardstick: see `floor.rs`.
//! `relay-floor` is its like for reverse proxies (benches/proxy.sh): a plain
//! TCP relay to `--upstream` that parses nothing; see `relay_floor.rs`.
//! `tokio-websockets-tls` is the tokio-websockets echo behind tokio-rustls
//! (wss://; see tls.rs). `handshake-load` is no server but a client that
//! opens and closes connections as fast as it can (handshake_load.rs), for
//! benches/tls.sh. `connect-floor` is `floor`'s like for a connection's
//! whole life (accept, upgrade, echo, close), with no buffer per
//! connection; see `connect_floor.rs`.
//!
//! The `fanout-*` peers are the broadcast servers to set beside `edgews
//! broadcast` (driven by `edgews load broadcast`): every text or binary
//! message goes to every other open connection, not back to its sender,
//! in order per sender. The three tokio ones share a registry of
//! per-connection channels (fanout.rs); `fanout-floor` is the yardstick
//! (fanout_floor.rs).
//!
//! `syscall-costs` is no server either: it times the system calls of a
//! connection's life that find nothing to do (syscall_costs.rs), nor is
//! `wake-costs`: a loop's CPU per wake-up by how it waits, with an
//! `epoll_wait` timeout, a timerfd, or neither (wake_costs.rs).
//!
//! Prints `listening ADDR` on stdout once the socket is bound.

mod connect_floor;
mod event_loop;
mod fanout;
mod fanout_fastws;
mod fanout_floor;
mod fanout_tokio_ws;
mod fanout_tungstenite;
mod fastws;
mod floor;
mod handshake_load;
mod lean;
mod ratchet;
mod relay_floor;
mod syscall_costs;
mod tls;
mod tokio_ws;
mod tungstenite;
mod wake_costs;

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
    /// Not a WebSocket server: the kernel-work floor (see floor.rs).
    Floor(ListenArgs),
    /// ratchet with permessage-deflate (ratchet_deflate; see ratchet.rs).
    Ratchet(ListenArgs),
    /// tokio-websockets behind tokio-rustls: wss:// (see tls.rs).
    #[command(name = "tokio-websockets-tls")]
    TokioWebsocketsTls(TlsArgs),
    /// Not a server: opens and closes connections in a loop (see
    /// handshake_load.rs).
    #[command(name = "handshake-load")]
    HandshakeLoad(handshake_load::Args),
    /// Not a WebSocket server: the kernel-work floor of a reverse proxy, a
    /// plain TCP relay (see relay_floor.rs).
    #[command(name = "relay-floor")]
    RelayFloor(RelayArgs),
    /// Not a server: times `accept` on an empty backlog, and other system
    /// calls that find nothing to do (see syscall_costs.rs).
    #[command(name = "syscall-costs")]
    SyscallCosts,
    /// Not a server: a loop's CPU per wake-up with an `epoll_wait`
    /// timeout, a timerfd, or neither (see wake_costs.rs).
    #[command(name = "wake-costs")]
    WakeCosts,
    /// Not a WebSocket server: the kernel-work floor of a connection's
    /// life, upgrade to close (see connect_floor.rs).
    #[command(name = "connect-floor")]
    ConnectFloor(ListenArgs),
    /// Broadcast on tokio-tungstenite: each message to every other
    /// connection (see fanout_tungstenite.rs).
    #[command(name = "fanout-tokio-tungstenite")]
    FanoutTokioTungstenite(ListenArgs),
    /// Broadcast on fastwebsockets (see fanout_fastws.rs).
    #[command(name = "fanout-fastwebsockets")]
    FanoutFastwebsockets(ListenArgs),
    /// Broadcast on tokio-websockets (see fanout_tokio_ws.rs).
    #[command(name = "fanout-tokio-websockets")]
    FanoutTokioWebsockets(ListenArgs),
    /// Not a WebSocket server: the kernel-work floor of broadcast (see
    /// fanout_floor.rs).
    #[command(name = "fanout-floor")]
    FanoutFloor(ListenArgs),
}

#[derive(Debug, clap::Args)]
struct RelayArgs {
    #[command(flatten)]
    listen: ListenArgs,
    /// Address to relay each connection to.
    #[arg(long)]
    upstream: SocketAddr,
}

#[derive(Debug, clap::Args)]
struct TlsArgs {
    #[command(flatten)]
    listen: ListenArgs,
    /// The certificate chain, PEM, leaf first.
    #[arg(long)]
    tls_cert: std::path::PathBuf,
    /// The private key, PEM.
    #[arg(long)]
    tls_key: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
struct ListenArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9002")]
    listen: SocketAddr,
}

fn main() -> ExitCode {
    let result = match Cli::parse().peer {
        Peer::Floor(a) => floor::serve(a.listen),
        Peer::TokioTungstenite(a) => on_tokio(serve(a.listen, tungstenite::handle)),
        Peer::Fastwebsockets(a) => on_tokio(serve(a.listen, fastws::handle)),
        Peer::TokioWebsockets(a) => on_tokio(serve(a.listen, tokio_ws::handle)),
        Peer::Ratchet(a) => on_tokio(serve(a.listen, ratchet::handle)),
        Peer::TokioWebsocketsTls(a) => tls::server_config(&a.tls_cert, &a.tls_key)
            .and_then(|config| on_tokio(tls::serve(a.listen.listen, config))),
        Peer::HandshakeLoad(a) => handshake_load::run(a),
        Peer::RelayFloor(a) => relay_floor::serve(a.listen.listen, a.upstream),
        Peer::SyscallCosts => syscall_costs::run(),
        Peer::WakeCosts => wake_costs::run(),
        Peer::ConnectFloor(a) => connect_floor::serve(a.listen),
        Peer::FanoutFloor(a) => fanout_floor::serve(a.listen),
        Peer::FanoutTokioTungstenite(a) => {
            let peers = fanout::Peers::new();
            on_tokio(serve(a.listen, move |s| {
                fanout_tungstenite::handle(s, peers.clone())
            }))
        }
        Peer::FanoutFastwebsockets(a) => {
            let peers = fanout::Peers::new();
            on_tokio(serve(a.listen, move |s| {
                fanout_fastws::handle(s, peers.clone())
            }))
        }
        Peer::FanoutTokioWebsockets(a) => {
            let peers = fanout::Peers::new();
            on_tokio(serve(a.listen, move |s| {
                fanout_tokio_ws::handle(s, peers.clone())
            }))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgews-peers: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `server` on a current-thread tokio runtime.
fn on_tokio(server: impl std::future::Future<Output = std::io::Result<()>>) -> std::io::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(server)
}

/// Accepts connections forever, spawning `handle` for each on this thread.
async fn serve<F, Fut>(addr: SocketAddr, handle: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    announce(listener.local_addr()?)?;
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

/// Prints `listening ADDR` once the socket is bound.
fn announce(addr: SocketAddr) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening {addr}")?;
    out.flush()
}
