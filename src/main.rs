//! The `edgews` command line: a thin shell over [`run`].

mod cli;
mod load;
mod log_batch;
mod proxy_args;
mod redis_args;
mod serve;

use clap::Parser;
use cli::{BadConfig, Cli, Command, LogFormat};
use edgews::server::{
    Broadcast, Chat, ChatConfig, ChatRooms, Echo, OverRate, Proxy, ProxyShared, PubSub,
    PubSubConfig, TopicCensus, TopicLimits,
};
use serve::{serve, Mode};
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = run(cli);
    log_batch::flush_now();
    match result {
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

/// Logs to stderr at the level EDGEWS_LOG (or RUST_LOG) sets; info by
/// default. Lines are batched: the reactor writes them once per loop turn
/// (see log_batch.rs).
fn init_logging(format: LogFormat) {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let env = env_logger::Env::new().filter_or("EDGEWS_LOG", level);
    let filter = env_logger::Builder::from_env(env).build();
    let style = match format {
        LogFormat::Json => log_batch::Style::Json,
        LogFormat::Text => log_batch::Style::Text {
            colour: std::io::stderr().is_terminal(),
        },
    };
    log_batch::install(filter, style);
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Echo(args) => serve(&Mode::new("echo", &args, OverRate::Close), || Echo),
        Command::Broadcast {
            include_sender,
            redis,
            server,
        } => serve(
            &Mode::new("broadcast", &server, OverRate::Close)
                .with_redis(&redis, &[edgews::reactor::BROADCAST_KEY])?,
            move || Broadcast { include_sender },
        ),
        Command::Pubsub {
            max_control_size,
            max_subscriptions,
            max_topics,
            redis,
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
                .with_message_cap(config.max_message_size())
                .with_redis(&redis, &[])?;
            // the topic caps hold for the whole process
            let census = TopicCensus::new();
            serve(&mode, move || {
                PubSub::with_census(config.clone(), census.clone())
            })
        }
        Command::Chat {
            max_text,
            max_room_members,
            max_rooms,
            presence_interval,
            redis,
            server,
        } => {
            let config = ChatConfig {
                max_text: bounded("--max-text", max_text, 1, MAX_TEXT)?,
                max_room_members: bounded("--max-room-members", max_room_members, 1, MAX_COUNT)?,
                max_rooms: bounded("--max-rooms", max_rooms, 1, MAX_COUNT)?,
                presence_interval: checked_presence_interval(presence_interval)?,
            };
            let mode = Mode::new("chat", &server, OverRate::ErrorReply)
                .with_message_cap(config.max_message_size())
                .with_redis(&redis, &[])?;
            // one set of rooms for every worker
            let rooms = ChatRooms::new();
            serve(&mode, move || {
                Chat::with_rooms(config.clone(), rooms.clone())
            })
        }
        Command::Proxy { proxy, server } => {
            if server.deflate != cli::DeflateArg::Off || !server.subprotocols.is_empty() {
                return Err(BadConfig(
                    "proxy: --deflate and --subprotocol are the upstream's to negotiate; \
                     the proxy passes offers and answers through"
                        .into(),
                )
                .into());
            }
            let shared = ProxyShared::new(&proxy.config()?);
            let mode = Mode::new("proxy", &server, OverRate::Close)
                .with_client_ca(proxy.upstream_ca_file.clone());
            serve(&mode, move || Proxy::new(shared.clone()))
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

/// `--presence-interval`, at least 100 ms (tests use short ones).
fn checked_presence_interval(d: std::time::Duration) -> Result<std::time::Duration, BadConfig> {
    if d < std::time::Duration::from_millis(100) {
        return Err(BadConfig(
            "invalid configuration: --presence-interval must be at least 100ms".into(),
        ));
    }
    Ok(d)
}

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
