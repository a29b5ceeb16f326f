//! The `edgews` command line: a thin shell over [`run`].

mod cli;
mod load;

use clap::Parser;
use cli::{BadConfig, Cli, Command, LogFormat, ServerArgs};
use edgews::reactor::{Handler, Reactor};
use edgews::server::{
    Authenticated, Broadcast, Chat, ChatConfig, Echo, GuardConfig, Guarded, OverRate, PubSub,
    PubSubConfig, TopicLimits,
};
use edgews::ServerConfig;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgews: {e}");
            // as for a bad argument (clap): the command line is at fault
            if e.is::<BadConfig>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs to stderr at the level EDGEWS_LOG (or RUST_LOG) sets; info by default.
fn init_logging(format: LogFormat) {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let env = env_logger::Env::new().filter_or("EDGEWS_LOG", level);
    let mut builder = env_logger::Builder::from_env(env);
    builder.format_target(false);
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Echo(args) => serve(&Mode::new("echo", &args, OverRate::Close), Echo),
        Command::Broadcast {
            include_sender,
            server,
        } => serve(
            &Mode::new("broadcast", &server, OverRate::Close),
            Broadcast { include_sender },
        ),
        Command::Pubsub {
            max_control_size,
            max_subscriptions,
            max_topics,
            server,
        } => {
            let config = PubSubConfig {
                max_control_size: bounded("--max-control-size", max_control_size, 64, MAX_CONTROL)?,
                limits: TopicLimits {
                    max_topics: bounded("--max-topics", max_topics, 1, MAX_COUNT)?,
                    max_subscriptions_per_connection: bounded(
                        "--max-subscriptions",
                        max_subscriptions,
                        1,
                        MAX_COUNT,
                    )?,
                    ..TopicLimits::default()
                },
            };
            let mode = Mode::new("pubsub", &server, OverRate::ErrorReply)
                .with_message_cap(config.max_message_size());
            serve(&mode, PubSub::with_config(config))
        }
        Command::Chat {
            max_text,
            max_room_members,
            max_rooms,
            server,
        } => {
            let config = ChatConfig {
                max_text: bounded("--max-text", max_text, 1, MAX_TEXT)?,
                max_room_members: bounded("--max-room-members", max_room_members, 1, MAX_COUNT)?,
                max_rooms: bounded("--max-rooms", max_rooms, 1, MAX_COUNT)?,
            };
            let mode = Mode::new("chat", &server, OverRate::ErrorReply)
                .with_message_cap(config.max_message_size());
            serve(&mode, Chat::new(config))
        }
        Command::Load(command) => load::run(command),
    }
}

/// The largest `--max-control-size`: 16 MiB.
const MAX_CONTROL: u64 = 16 << 20;
/// The largest `--max-text`: 1 MiB.
const MAX_TEXT: u64 = 1 << 20;
/// The largest count a mode option takes (topics, rooms, members): 2^24.
const MAX_COUNT: usize = 1 << 24;

/// `value` if it lies in `min..=max`; otherwise a clear refusal.
fn bounded<T>(flag: &str, value: T, min: T, max: T) -> Result<usize, BadConfig>
where
    T: PartialOrd + std::fmt::Display + Copy + TryInto<usize>,
{
    if value < min || value > max {
        return Err(BadConfig(format!(
            "invalid configuration: {flag} must be between {min} and {max}"
        )));
    }
    value
        .try_into()
        .map_err(|_| BadConfig(format!("invalid configuration: {flag} is too large")))
}

/// What differs between the server modes around the handler.
struct Mode<'a> {
    name: &'a str,
    args: &'a ServerArgs,
    /// What a connection over its message rate gets.
    over_rate: OverRate,
    /// The largest message the mode's protocol can use: the engine's
    /// message (and frame) limit is lowered to it, so that a larger message
    /// is refused as it arrives, never assembled.
    message_cap: Option<u64>,
}

impl<'a> Mode<'a> {
    fn new(name: &'a str, args: &'a ServerArgs, over_rate: OverRate) -> Self {
        Mode {
            name,
            args,
            over_rate,
            message_cap: None,
        }
    }

    fn with_message_cap(mut self, cap: u64) -> Self {
        self.message_cap = Some(cap);
        self
    }

    /// The server configuration: the options, with the mode's message cap.
    fn config(&self) -> ServerConfig {
        let mut config = self.args.config();
        if let Some(cap) = self.message_cap {
            let protocol = &mut config.protocol;
            protocol.max_message_size = protocol.max_message_size.min(cap);
            protocol.max_frame_size = protocol.max_frame_size.min(protocol.max_message_size);
        }
        config
    }
}

/// Runs a server, behind token checks when a JWT secret is configured,
/// behind rate limits when any is set (outside the token checks, so a
/// flood costs no token verification).
fn serve<H: Handler>(mode: &Mode<'_>, handler: H) -> Result<(), Box<dyn std::error::Error>> {
    match mode.args.jwt().map_err(BadConfig)? {
        Some(auth) => guarded(mode, Authenticated::new(handler, auth)),
        None => guarded(mode, handler),
    }
}

/// Runs `handler` behind the configured rate limits; without any, as it is
/// (no wrapper on the message path).
fn guarded<H: Handler>(mode: &Mode<'_>, handler: H) -> Result<(), Box<dyn std::error::Error>> {
    let guard = mode.args.guard(mode.over_rate).map_err(BadConfig)?;
    let off = GuardConfig {
        over_rate: mode.over_rate,
        ..GuardConfig::default()
    };
    if guard == off {
        return run_reactor(mode, handler);
    }
    run_reactor(mode, Guarded::new(handler, guard))
}

/// Runs a server until SIGINT or SIGTERM, then shuts down gracefully.
fn run_reactor<H: Handler>(mode: &Mode<'_>, handler: H) -> Result<(), Box<dyn std::error::Error>> {
    let config = mode.config();
    let max_connections = config.max_connections;
    // the reactor validates its configuration (once): a refusal is the
    // command line's fault
    let mut reactor = Reactor::new(config, handler).map_err(|e| -> Box<dyn std::error::Error> {
        match e.kind() {
            std::io::ErrorKind::InvalidInput => {
                Box::new(BadConfig(format!("invalid configuration: {e}")))
            }
            _ => Box::new(e),
        }
    })?;
    raise_fd_limit(max_connections);
    let addr = reactor
        .listen()
        .map_err(|e| format!("cannot listen on {}: {e}", mode.args.listen))?;
    reactor.handle_signals()?;
    let name = mode.name;
    let scheme = if mode.args.tls_cert.is_some() {
        "wss"
    } else {
        "ws"
    };
    println!("edgews {name} listening on {scheme}://{addr}");
    if let Some(metrics) = reactor.metrics_addr() {
        println!("edgews {name} serving /metrics on http://{metrics}");
    }
    reactor.run()?;
    log::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard one, and says so.
fn raise_fd_limit(max_connections: usize) {
    match edgews::reactor::raise_fd_limit() {
        Ok(l) => {
            log::info!(
                "file descriptors: soft limit {} -> {} (hard {})",
                l.soft_before,
                l.soft,
                l.hard
            );
            if (max_connections as u64).saturating_add(16) > l.soft {
                log::warn!(
                    "--max-connections {max_connections} exceeds the {} descriptors this \
                     process may open: clients past that are answered 503",
                    l.soft
                );
            }
        }
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }
}
