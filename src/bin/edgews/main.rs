//! The `edgews` command line: a thin shell over [`run`].

mod cli;
mod load;

use clap::Parser;
use cli::{BadConfig, Cli, Command, LogFormat, ServerArgs};
use edgews::reactor::{Handler, Reactor};
use edgews::server::{
    Authenticated, Broadcast, Chat, ChatConfig, Echo, GuardConfig, Guarded, OverRate, PubSub,
};
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
        Command::Echo(args) => serve("echo", &args, Echo, OverRate::Close),
        Command::Broadcast {
            include_sender,
            server,
        } => serve(
            "broadcast",
            &server,
            Broadcast { include_sender },
            OverRate::Close,
        ),
        Command::Pubsub(args) => serve("pubsub", &args, PubSub::new(), OverRate::ErrorReply),
        Command::Chat { max_text, server } => {
            let max_text = usize::try_from(max_text).map_err(|_| "--max-text is too large")?;
            let chat = Chat::new(ChatConfig { max_text });
            serve("chat", &server, chat, OverRate::ErrorReply)
        }
        Command::Load(command) => load::run(command),
    }
}

/// Runs a server, behind token checks when a JWT secret is configured,
/// behind rate limits when any is set (outside the token checks, so a
/// flood costs no token verification).
fn serve<H: Handler>(
    mode: &str,
    args: &ServerArgs,
    handler: H,
    over_rate: OverRate,
) -> Result<(), Box<dyn std::error::Error>> {
    match args.jwt().map_err(BadConfig)? {
        Some(auth) => guarded(mode, args, Authenticated::new(handler, auth), over_rate),
        None => guarded(mode, args, handler, over_rate),
    }
}

/// Runs `handler` behind the configured rate limits; without any, as it is
/// (no wrapper on the message path).
fn guarded<H: Handler>(
    mode: &str,
    args: &ServerArgs,
    handler: H,
    over_rate: OverRate,
) -> Result<(), Box<dyn std::error::Error>> {
    let guard = args.guard(over_rate).map_err(BadConfig)?;
    if guard
        == (GuardConfig {
            over_rate,
            ..GuardConfig::default()
        })
    {
        return run_reactor(mode, args, handler);
    }
    run_reactor(mode, args, Guarded::new(handler, guard))
}

/// Runs a server until SIGINT or SIGTERM, then shuts down gracefully.
fn run_reactor<H: Handler>(
    mode: &str,
    args: &ServerArgs,
    handler: H,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = args.config();
    config
        .validate()
        .map_err(|e| BadConfig(format!("invalid configuration: {e}")))?;
    raise_fd_limit(config.max_connections);
    let mut reactor = Reactor::new(config, handler)?;
    let addr = reactor
        .listen()
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    reactor.handle_signals()?;
    println!("edgews {mode} listening on ws://{addr}");
    if let Some(metrics) = reactor.metrics_addr() {
        println!("edgews {mode} serving /metrics on http://{metrics}");
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
