//! The `edgews` command line: a thin shell over [`run`].

mod cli;
mod load;

use clap::Parser;
use cli::{Cli, Command, LogFormat, ServerArgs};
use edgews::reactor::{Handler, Reactor};
use edgews::server::{Authenticated, Broadcast, Chat, ChatConfig, Echo, PubSub};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgews: {e}");
            ExitCode::FAILURE
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
        Command::Echo(args) => serve("echo", &args, Echo),
        Command::Broadcast {
            include_sender,
            server,
        } => serve("broadcast", &server, Broadcast { include_sender }),
        Command::Pubsub(args) => serve("pubsub", &args, PubSub::new()),
        Command::Chat { max_text, server } => {
            let max_text = usize::try_from(max_text).map_err(|_| "--max-text is too large")?;
            let chat = Chat::new(ChatConfig {
                max_text,
                ..ChatConfig::default()
            });
            serve("chat", &server, chat)
        }
        Command::Load(command) => load::run(command),
    }
}

/// Runs a server, behind token checks when a JWT secret is configured.
fn serve<H: Handler>(
    mode: &str,
    args: &ServerArgs,
    handler: H,
) -> Result<(), Box<dyn std::error::Error>> {
    match args.jwt()? {
        Some(auth) => run_reactor(mode, args, Authenticated::new(handler, auth)),
        None => run_reactor(mode, args, handler),
    }
}

/// Runs a server until SIGINT or SIGTERM, then shuts down gracefully.
fn run_reactor<H: Handler>(
    mode: &str,
    args: &ServerArgs,
    handler: H,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = args.config();
    config.validate()?;
    let mut reactor = Reactor::new(config, handler)?;
    let addr = reactor
        .listen()
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    reactor.handle_signals()?;
    println!("edgews {mode} listening on ws://{addr}");
    reactor.run()?;
    log::info!("stopped");
    Ok(())
}
