//! `edgews load`: a load generator on the reactor's outbound connections.
//! One thread drives every connection, like the server it measures.

mod broadcast;
mod common;
mod connect;
mod echo;
mod idle;
mod opener;
mod report;

use crate::cli::{parse_duration, parse_size};
use clap::{Args, Subcommand};
use edgews::protocol::DeflateConfig;
use edgews::reactor::{Handler, Reactor};
use edgews::{ProtocolConfig, ServerConfig};
use std::time::Duration;

/// The load scenarios.
#[derive(Debug, Subcommand)]
pub enum LoadCommand {
    /// Closed loop: each connection sends a message and waits for its echo
    /// (or keeps --pipeline in flight); every echo is checked byte for byte.
    Echo(EchoArgs),
    /// Senders publish at a fixed rate to a broadcast server (or, with
    /// --topic, to a pubsub topic); every connection checks it receives
    /// every other sender's messages in order.
    Broadcast(BroadcastArgs),
    /// Opens connections and holds them idle, to read the server's memory
    /// per connection.
    Idle(IdleArgs),
    /// Connection setup: --connections clients each run cycles back to
    /// back (connect and upgrade, one message and its echo, then the close
    /// handshake or, with --abrupt, the end of TCP); reports upgrades and
    /// cycles per second and their latencies.
    Connect(ConnectArgs),
}

/// Options every scenario takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The server's URL.
    #[arg(long, default_value = "ws://127.0.0.1:9001/")]
    pub url: String,
    /// Connections to open.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// How long to measure (after the warm-up).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Most connections being opened at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Offer permessage-deflate (`client_no_context_takeover;
    /// client_max_window_bits`) and compress what is sent (--json makes
    /// payloads worth compressing).
    #[arg(long)]
    pub deflate: bool,
    /// For wss:// URLs: trust only the certificates in this PEM file
    /// (default: the system's roots).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
    /// For wss:// URLs: accept any certificate. For tests only.
    #[arg(long)]
    pub insecure: bool,
}

impl CommonArgs {
    /// How wss:// servers are verified.
    pub fn client_tls(&self) -> edgews::tls::ClientTls {
        edgews::tls::ClientTls {
            ca_file: self.ca_file.clone(),
            dangerous_insecure: self.insecure,
        }
    }
}

/// `edgews load echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Message size (e.g. 20, 1KiB, 64KiB).
    #[arg(long, default_value = "20", value_parser = parse_size)]
    pub size: u64,
    /// Time to run before measuring.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Messages each connection keeps in flight.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Send text messages (Greek, two bytes a character, behind an ASCII
    /// sequence number) instead of binary ones, so the server's UTF-8
    /// checks are part of what is measured.
    #[arg(long, conflicts_with = "json")]
    pub text: bool,
    /// Send JSON-like text messages (chat records: user, words, numbers),
    /// which compress as real traffic does; for --deflate.
    #[arg(long)]
    pub json: bool,
}

/// `edgews load broadcast`.
#[derive(Debug, Args)]
pub struct BroadcastArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections that send (the first ones opened); all of them receive.
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Message size, at least 20 bytes (sender, sequence, timestamp). With
    /// --topic, the size of each publication's `data` (a JSON string, at
    /// least 42 bytes), pubsub's envelope around it not included.
    #[arg(long, default_value = "64", value_parser = parse_size)]
    pub size: u64,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// Another server instance to receive from (repeatable): the senders
    /// connect to --url, every other connection to these URLs in turn, and
    /// the latency of deliveries across instances is reported apart.
    #[arg(long, value_name = "URL")]
    pub receiver_url: Vec<String>,
    /// Drive `edgews pubsub` instead of `edgews broadcast`: every
    /// connection subscribes to this topic once open and counts as ready
    /// when pubsub acknowledges it; the senders publish to it
    /// (`{"op":"publish",...}`), and the receivers take each message out of
    /// pubsub's envelope (`{"type":"message",...}`).
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,
}

/// `edgews load idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The server's process id: its VmRSS is read before and after.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Connections opened (and kept) before the first reading, so that
    /// what the first connections cost once (code paged in, allocator
    /// arenas, buffers sized on first use) is not charged to the measured
    /// ones. 0 reads the server's memory before any connection.
    #[arg(long, default_value_t = 100)]
    pub warmup_connections: usize,
    /// Each connection sends one JSON-like text message of this size once
    /// open (the server echoes it) and then idles, so the memory read is
    /// what a connection costs after traffic: with --deflate, after its
    /// compressor and decompressor have been used. 0: none.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub send: u64,
}

/// `edgews load connect`. `--connections` is the number of clients, each
/// with one connection at a time; `--connect-concurrency` does not apply.
/// Unless `RUST_LOG` or `EDGEWS_LOG` says otherwise, the log shows warnings
/// only: at info, the reactor would log every cycle's close.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Size of the one binary message each connection sends and checks
    /// (e.g. 20, 1KiB); its first 8 bytes carry the cycle's number.
    #[arg(long, default_value = "20", value_parser = parse_size)]
    pub size: u64,
    /// Time to run before measuring.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// End each connection right after the echo by closing TCP, without a
    /// close frame (the client closes first; the server sees 1006).
    #[arg(long)]
    pub abrupt: bool,
}

/// Runs a scenario; fails when it saw errors (a wrong echo, a lost message).
pub fn run(command: LoadCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        LoadCommand::Echo(args) => drive(echo::EchoLoad::new(&args)?, &args.common),
        LoadCommand::Broadcast(args) => drive(broadcast::BroadcastLoad::new(&args)?, &args.common),
        LoadCommand::Idle(args) => drive(idle::IdleLoad::new(&args)?, &args.common),
        LoadCommand::Connect(args) => {
            quiet_per_connection_log();
            drive(connect::ConnectLoad::new(&args)?, &args.common)
        }
    }
}

/// Keeps the log to warnings unless `RUST_LOG` or `EDGEWS_LOG` is set: a
/// scenario that opens and closes thousands of connections a second would
/// spend its time writing the reactor's info line about each close.
fn quiet_per_connection_log() {
    let asked = std::env::var_os("RUST_LOG").is_some() || std::env::var_os("EDGEWS_LOG").is_some();
    if !asked {
        log::set_max_level(log::max_level().min(log::LevelFilter::Warn));
    }
}

/// What a scenario reports when the run ends.
pub trait Scenario: Handler {
    /// Prints the results; `Err` when the run saw errors.
    fn finish(&mut self) -> Result<(), String>;
}

fn drive<S: Scenario>(scenario: S, args: &CommonArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig {
        max_connections: edgews::config::MAX_CONNECTIONS_LIMIT,
        shutdown_timeout: Duration::from_secs(2),
        protocol: ProtocolConfig {
            ping_interval: None,
            max_fragments: edgews::config::MAX_FRAGMENTS_LIMIT,
            deflate: args.deflate.then(DeflateConfig::default),
            ..ProtocolConfig::default()
        },
        client_tls: args.client_tls(),
        ..ServerConfig::default()
    };
    let mut reactor = Reactor::new(config, scenario)?;
    reactor.handle_signals()?;
    reactor.run()?;
    reactor.handler_mut().finish()?;
    Ok(())
}
