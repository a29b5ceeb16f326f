//! Drives the Autobahn testsuite's `fuzzingserver` with the edgews client:
//! asks for the case count, runs every case as an echo client, then asks
//! the suite to write its reports.
//!
//! `autobahn_client --url ws://127.0.0.1:9002 --agent edgews`
//!
//! Over TLS: `--url wss://127.0.0.1:9002 --ca-file ca.pem` trusts only the
//! certificates in `ca.pem` (the test CA of `tests/autobahn/run.sh`, made by
//! the `tls_cert` example); without `--ca-file`, the system's roots.

use edgews::client::{Client, ClientConfig, ClientError, Received};
use edgews::tls::ClientTls;
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut url = "ws://127.0.0.1:9002".to_string();
    let mut agent = "edgews".to_string();
    let mut ca_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = args.next().expect("--url needs a value"),
            "--agent" => agent = args.next().expect("--agent needs a value"),
            "--ca-file" => ca_file = Some(args.next().expect("--ca-file needs a value").into()),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: autobahn_client --url URL --agent NAME [--ca-file PEM]"
                );
                std::process::exit(2);
            }
        }
    }
    let tls = ClientTls {
        ca_file,
        dangerous_insecure: false,
    };
    let count = case_count(&url, &tls).unwrap_or_else(|e| {
        eprintln!("cannot get the case count from {url}: {e}");
        std::process::exit(1);
    });
    eprintln!("running {count} cases against {url} as {agent}");
    for case in 1..=count {
        if let Err(e) = run_case(&format!("{url}/runCase?case={case}&agent={agent}"), &tls) {
            eprintln!("case {case}: {e}");
        }
    }
    let mut reports =
        Client::connect_with(&format!("{url}/updateReports?agent={agent}"), config(&tls))
            .expect("updateReports");
    while reports.recv().is_ok() {}
    eprintln!("reports updated");
}

/// The default limits, and the default permessage-deflate offer; reads
/// bounded so that a stuck case cannot hang the run.
fn config(tls: &ClientTls) -> ClientConfig {
    ClientConfig {
        read_timeout: Some(Duration::from_secs(60)),
        tls: tls.clone(),
        ..ClientConfig::default()
    }
}

fn case_count(url: &str, tls: &ClientTls) -> Result<u32, ClientError> {
    let mut client = Client::connect_with(&format!("{url}/getCaseCount"), config(tls))?;
    let message = client.recv_message()?;
    let count = message
        .as_text()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    while client.recv().is_ok() {}
    Ok(count)
}

/// Echoes every message until the suite closes the connection.
fn run_case(url: &str, tls: &ClientTls) -> Result<(), ClientError> {
    let mut client = Client::connect_with(url, config(tls))?;
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
