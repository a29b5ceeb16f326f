//! The `edgews` command line: a thin shell over [`run`].

mod cli;
mod load;

use clap::Parser;
use cli::{Cli, Command, ServerArgs};
use edgews::reactor::{Handler, Reactor};
use edgews::server::{Broadcast, Echo};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgews: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let env = env_logger::Env::new().filter_or(
        "EDGEWS_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    env_logger::Builder::from_env(env)
        .format_target(false)
        .init();
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Echo(args) => serve("echo", &args, Echo),
        Command::Broadcast {
            include_sender,
            server,
        } => serve("broadcast", &server, Broadcast { include_sender }),
        Command::Load(command) => load::run(command),
    }
}

/// Runs a server until SIGINT or SIGTERM, then shuts down gracefully.
fn serve<H: Handler>(
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
