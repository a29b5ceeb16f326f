//! `edgews-peers handshake-load`: opens and closes WebSocket connections
//! as fast as it can, for the cost of a connection's life to the server:
//! TCP connect, the TLS handshake (wss://; a full one every time,
//! resumption off), the HTTP upgrade, a close frame each way, the server's
//! end of the stream; then the socket is reset (SO_LINGER 0) so that no
//! TIME_WAIT entry is left to use up loopback ports. PARALLEL threads
//! each loop for DURATION; one JSON line at the end:
//! `{"mode":"handshake","handshakes":N,"errors":E,"elapsed_s":..,
//! "per_s":..,"p50_us":..,"p99_us":..,"first_error":..}`.
//!
//! Blocking rustls (the same 0.23 with `ring`), trusting only `--ca-file`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// ws://HOST:PORT/PATH or wss://HOST:PORT/PATH.
    #[arg(long)]
    url: String,
    /// PEM file of the CA to trust (wss:// only).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Threads, each opening one connection after another.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Seconds to keep opening connections.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

struct Target {
    tls: Option<Arc<rustls::ClientConfig>>,
    host: String,
    addr: String,
    path: String,
}

pub fn run(args: Args) -> std::io::Result<()> {
    let err = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let (secure, rest) = if let Some(r) = args.url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = args.url.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(err(format!("{}: not a ws:// or wss:// URL", args.url)));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = match authority.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => return Err(err(format!("{}: give the port", args.url))),
    };
    let tls = if secure {
        let ca = args
            .ca_file
            .as_ref()
            .ok_or_else(|| err("wss:// needs --ca-file".into()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| err(format!("{e}")))? {
            roots
                .add(cert.map_err(|e| err(format!("{e}")))?)
                .map_err(|e| err(format!("{e}")))?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("{e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Every handshake a full one.
        config.resumption = rustls::client::Resumption::disabled();
        Some(Arc::new(config))
    } else {
        None
    };
    let target = Arc::new(Target {
        tls,
        host: host.to_string(),
        addr: authority.to_string(),
        path: path.to_string(),
    });

    let stop = Arc::new(AtomicBool::new(false));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let start = Instant::now();
    let threads: Vec<_> = (0..args.parallel.max(1))
        .map(|_| {
            let (target, stop, first_error) = (target.clone(), stop.clone(), first_error.clone());
            std::thread::spawn(move || {
                let (mut times, mut errors) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match one(&target) {
                        Ok(()) => times.push(t.elapsed().as_micros() as u64),
                        Err(e) => {
                            errors += 1;
                            first_error.lock().unwrap().get_or_insert(e.to_string());
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                (times, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    stop.store(true, Ordering::Relaxed);
    let (mut times, mut errors) = (Vec::new(), 0);
    for t in threads {
        let (ts, e) = t.join().expect("a load thread panicked");
        times.extend(ts);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    times.sort_unstable();
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let first = first_error.lock().unwrap().clone();
    println!(
        "{{\"mode\":\"handshake\",\"tls\":{},\"parallel\":{},\"handshakes\":{},\"errors\":{},\"elapsed_s\":{:.3},\"per_s\":{:.1},\"p50_us\":{},\"p99_us\":{},\"first_error\":{}}}",
        target.tls.is_some(),
        args.parallel,
        times.len(),
        errors,
        elapsed,
        times.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        first.map(|e| format!("{:?}", e)).unwrap_or_else(|| "null".into()),
    );
    Ok(())
}

/// One connection's life.
fn one(target: &Target) -> std::io::Result<()> {
    let tcp = TcpStream::connect(&target.addr)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    // Closing resets rather than leave TIME_WAIT behind (by then the
    // server has closed its end; on an error, whatever the state).
    socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO))?;
    let mut stream: Box<dyn Stream> = match &target.tls {
        Some(config) => {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| std::io::Error::other(format!("server name: {e}")))?;
            let conn = rustls::ClientConnection::new(config.clone(), name)
                .map_err(std::io::Error::other)?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
        None => Box::new(tcp),
    };
    // The upgrade (writing it drives the TLS handshake first).
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.addr
    )?;
    stream.flush()?;
    let mut buf = Vec::with_capacity(512);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(&mut stream, &mut buf)?;
    };
    if !buf.starts_with(b"HTTP/1.1 101 ") {
        return Err(std::io::Error::other(format!(
            "upgrade refused: {}",
            String::from_utf8_lossy(&buf[..head_end.min(80)])
        )));
    }
    buf.drain(..head_end);
    // Close 1000, masked (key 0: the payload goes as it is).
    stream.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8])?;
    stream.flush()?;
    while buf.len() < 4 {
        read_more(&mut stream, &mut buf)?;
    }
    if buf[..4] != [0x88, 0x02, 0x03, 0xE8] {
        return Err(std::io::Error::other(format!(
            "not a close 1000: {:02x?}",
            &buf[..4]
        )));
    }
    // The server's end of the stream (with or without close_notify).
    let mut rest = [0u8; 256];
    loop {
        match stream.read(&mut rest) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_more(stream: &mut Box<dyn Stream>, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk)?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed early",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}
