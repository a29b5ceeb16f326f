//! Drives the Autobahn testsuite's `fuzzingserver` with the edgews client:
//! asks for the case count, runs every case as an echo client, then asks
//! the suite to write its reports.
//!
//! `autobahn_client --url ws://127.0.0.1:9002 --agent edgews`

use edgews::client::{Client, ClientConfig, ClientError, Received};
use std::time::Duration;

fn main() {
    let mut url = "ws://127.0.0.1:9002".to_string();
    let mut agent = "edgews".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = args.next().expect("--url needs a value"),
            "--agent" => agent = args.next().expect("--agent needs a value"),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: autobahn_client --url URL --agent NAME"
                );
                std::process::exit(2);
            }
        }
    }
    let count = case_count(&url).unwrap_or_else(|e| {
        eprintln!("cannot get the case count from {url}: {e}");
        std::process::exit(1);
    });
    eprintln!("running {count} cases against {url} as {agent}");
    for case in 1..=count {
        if let Err(e) = run_case(&format!("{url}/runCase?case={case}&agent={agent}")) {
            eprintln!("case {case}: {e}");
        }
    }
    let mut reports =
        Client::connect(&format!("{url}/updateReports?agent={agent}")).expect("updateReports");
    while reports.recv().is_ok() {}
    eprintln!("reports updated");
}

fn case_count(url: &str) -> Result<u32, ClientError> {
    let mut client = Client::connect(&format!("{url}/getCaseCount"))?;
    let message = client.recv_message()?;
    let count = message
        .as_text()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    while client.recv().is_ok() {}
    Ok(count)
}

/// Echoes every message until the suite closes the connection.
fn run_case(url: &str) -> Result<(), ClientError> {
    // the default limits, and the default permessage-deflate offer
    let config = ClientConfig {
        read_timeout: Some(Duration::from_secs(60)),
        ..ClientConfig::default()
    };
    let mut client = Client::connect_with(url, config)?;
    loop {
        match client.recv()? {
            Received::Message(m) => match client.send(&m) {
                Ok(()) | Err(ClientError::Usage(_)) => {}
                Err(e) => return Err(e),
            },
            Received::Closed(_) => return Ok(()),
            Received::Ping(_) | Received::Pong(_) => {}
        }
    }
}
