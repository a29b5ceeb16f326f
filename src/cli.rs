//! Command-line arguments: what `edgews --help` shows.

use clap::{Args, Parser, Subcommand};
use edgews::protocol::{DeflateConfig, DeflateMode, OriginPolicy};
use edgews::server::{GuardConfig, OverRate, RateLimit};
use edgews::tls::TlsFiles;
use edgews::{ProtocolConfig, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A fast, strict WebSocket (RFC 6455) server.
#[derive(Debug, Parser)]
#[command(
    name = "edgews",
    version,
    about,
    after_help = "Logging: set EDGEWS_LOG (or RUST_LOG) to error, warn, info, debug or trace; default info."
)]
pub struct Cli {
    /// Log lines as text for people or as JSON objects for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `[time level] message`, for people.
    Text,
    /// One JSON object per line: `ts`, `level`, `msg`.
    Json,
}

/// The servers and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Echo server: every message goes back to its sender.
    Echo(ServerArgs),
    /// Broadcast server: every message goes to every other client.
    Broadcast {
        /// Send each message back to its sender too.
        #[arg(long)]
        include_sender: bool,
        #[command(flatten)]
        redis: crate::redis_args::RedisArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Pub/sub server: /topics/NAME picks a topic; JSON control messages
    /// subscribe, unsubscribe and publish (see docs/usage.md).
    Pubsub {
        /// Largest control message (subscribe, publish, …); larger ones are
        /// closed with 1009 as they arrive. Also caps the message size.
        #[arg(long, default_value = "64KiB", value_parser = parse_size)]
        max_control_size: u64,
        /// Most topics one connection may subscribe to; past it: an error reply.
        #[arg(long, default_value_t = 128, value_name = "N")]
        max_subscriptions: usize,
        /// Most topics with a subscriber, server-wide; past it: an error
        /// reply (or 503 for a topic path at the upgrade).
        #[arg(long, default_value_t = 100_000, value_name = "N")]
        max_topics: usize,
        #[command(flatten)]
        redis: crate::redis_args::RedisArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Chat server: a web page at / (open it in a browser), rooms and
    /// presence over /ws?room=ROOM&name=NAME; with a JWT secret the token's
    /// `sub` is the name.
    Chat {
        /// Longest message text accepted (e.g. 4KiB); longer ones get an
        /// error event. Messages over 6 × this + 1 KiB are closed with 1009.
        #[arg(long, default_value = "4KiB", value_parser = parse_size)]
        max_text: u64,
        /// Most members in one room; past it, joining is refused with 403.
        #[arg(long, default_value_t = 1_000, value_name = "N")]
        max_room_members: usize,
        /// Most rooms with a member, server-wide; past it, joining a new
        /// room is refused with 503.
        #[arg(long, default_value_t = 10_000, value_name = "N")]
        max_rooms: usize,
        /// With --redis: how often this instance tells the others who is
        /// in its rooms; an instance silent for 3 × this + 5 s is taken for
        /// gone and its members leave the rooms here (5 s: at most one more
        /// interval).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        presence_interval: std::time::Duration,
        #[command(flatten)]
        redis: crate::redis_args::RedisArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Reverse proxy and load balancer: upgrades pass the edge checks here,
    /// then go to one of the --upstream servers, and the frames are relayed
    /// as they are (see docs/usage.md).
    Proxy {
        #[command(flatten)]
        proxy: crate::proxy_args::ProxyArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Load generator: drives a server with many connections from one thread.
    #[command(subcommand)]
    Load(crate::load::LoadCommand),
}

/// Options every server takes.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Worker threads, each a reactor with its own listener on the address
    /// (SO_REUSEPORT); broadcasts, topics and rooms span them, limits and
    /// /metrics are process-wide. Default: the CPUs this process may use.
    /// 1: one reactor on the main thread.
    #[arg(long, default_value_t = default_workers(), value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,
    /// Largest message accepted (e.g. 64MiB, 1KiB, 500); over it: close 1009.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub max_message_size: u64,
    /// Largest frame accepted; over it: close 1009.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub max_frame_size: u64,
    /// Most frames one message may arrive in (empty ones count); over it:
    /// close 1009. Fragments are appended into one buffer bounded by
    /// --max-message-size, so the default is the largest allowed.
    #[arg(long, default_value_t = edgews::config::MAX_FRAGMENTS_LIMIT)]
    pub max_fragments: u32,
    /// Most connections; past it upgrades are answered with 503.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Most bytes queued for one connection: echo stops reading a client
    /// that does not read its replies; broadcast closes a slow receiver (1008).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub max_backpressure: u64,
    /// Time allowed for the opening handshake (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// Silence after which a ping is sent; 0 disables keep-alive pings.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Time allowed for any reply to a keep-alive ping; then close 1011.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub pong_timeout: Duration,
    /// On SIGINT/SIGTERM, time allowed for clients to answer close 1001.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Origin allowed to connect (repeatable); `*` allows any. Default: an
    /// Origin header, when present, must match the Host header.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// A reverse proxy in front of this server, as an address or network
    /// (127.0.0.1, 10.0.0.0/8, ::1; repeatable): from these only, the
    /// client's address is taken from Forwarded / X-Forwarded-For (the
    /// rightmost entry that is not itself a trusted proxy), for per-IP
    /// limits and logs.
    #[arg(long = "trusted-proxy", value_name = "ADDR", value_parser = parse_network)]
    pub trusted_proxies: Vec<edgews::forwarded::ProxyNetwork>,
    /// Subprotocol to speak, in order of preference (repeatable).
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// Require an HS256 JWT signed with this secret at the upgrade
    /// (`Authorization: Bearer …` or `?token=…`; `exp` checked; 401 otherwise).
    #[arg(long, value_name = "SECRET", conflicts_with = "jwt_secret_file")]
    pub jwt_secret: Option<String>,
    /// As --jwt-secret, with the secret read from a file (trailing newline
    /// ignored; a warning if others can read it).
    #[arg(long, value_name = "PATH")]
    pub jwt_secret_file: Option<std::path::PathBuf>,
    /// With a JWT secret: also require the token's `aud` to name this audience.
    #[arg(long, value_name = "AUD")]
    pub jwt_audience: Option<String>,
    /// With a JWT secret: also require the token's `iss` to be this issuer.
    #[arg(long, value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// Serve TLS (wss://, and https:// for the chat page, /healthz and
    /// /metrics) with this PEM certificate chain, leaf first; needs
    /// --tls-key. SIGHUP reloads both files.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve /metrics and /healthz on this address instead (e.g.
    /// 127.0.0.1:9090); the public port then answers /metrics with 404.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Host header accepted (repeatable; `name` matches any port,
    /// `name:port` that port only); others get 403. Default: any. Guards a
    /// server on loopback against DNS rebinding.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// Messages per second one connection may send (token bucket); over
    /// it: close 1008 (echo, broadcast) or an error reply (pubsub, chat).
    /// 0: no limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub message_rate: u32,
    /// Messages a connection may send at once above --message-rate (the
    /// bucket's size). Default: the rate.
    #[arg(long, value_name = "N")]
    pub message_burst: Option<u32>,
    /// Most open WebSocket connections from one client IP; past it: 429
    /// with Retry-After. 0: no limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_connections_per_ip: u32,
    /// Most upgrades per second from one client IP; past it: 429 with
    /// Retry-After. 0: no limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_upgrades_per_ip: u32,
    /// permessage-deflate (RFC 7692): `off`; `shared` (no context
    /// takeover: one compressor per reactor, no zlib state per idle
    /// connection); `dedicated` (context takeover: better ratios, a
    /// compressor and decompressor per connection).
    #[arg(long, value_enum, default_value_t = DeflateArg::Off)]
    pub deflate: DeflateArg,
    /// dedicated: LZ77 window of the server's compressor, 9-15 (2^N bytes).
    #[arg(long, default_value_t = 12, value_name = "BITS")]
    pub deflate_window_bits: u8,
    /// dedicated: window asked of clients that allow it
    /// (client_max_window_bits), 9-15; sizes their decompressors.
    #[arg(long, default_value_t = 12, value_name = "BITS")]
    pub deflate_client_window_bits: u8,
    /// dedicated: zlib memLevel of the compressor, 1-9 (memory against speed).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub deflate_mem_level: u8,
    /// Compression level, 0-9.
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub deflate_level: u8,
    /// Messages shorter than this go uncompressed.
    #[arg(long, default_value = "128", value_parser = parse_size)]
    pub deflate_threshold: u64,
}

/// `--deflate`: whether and how permessage-deflate is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeflateArg {
    /// Decline every offer.
    Off,
    /// No context takeover either way; nothing per idle connection.
    Shared,
    /// Context takeover; zlib state per connection.
    Dedicated,
}

/// A configuration that cannot work: one line on stderr, exit status 2.
#[derive(Debug)]
pub struct BadConfig(pub String);

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadConfig {}

/// The CPUs this process may use (its affinity mask and cgroup quota), or 1.
fn default_workers() -> u16 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(1024) as u16)
}

impl ServerArgs {
    /// The token verifier, when --jwt-secret or --jwt-secret-file is given.
    pub fn jwt(&self) -> Result<Option<edgews::server::JwtAuth>, String> {
        let secret = match (&self.jwt_secret, &self.jwt_secret_file) {
            (Some(s), _) => s.clone().into_bytes(),
            (None, Some(path)) => {
                warn_if_readable_by_others(path);
                let mut bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    bytes.pop();
                }
                bytes
            }
            (None, None) if self.jwt_audience.is_some() || self.jwt_issuer.is_some() => {
                return Err(
                    "--jwt-audience and --jwt-issuer need --jwt-secret or --jwt-secret-file".into(),
                )
            }
            (None, None) => return Ok(None),
        };
        if secret.len() < 16 {
            return Err("the JWT secret must be at least 16 bytes".into());
        }
        let mut auth = edgews::server::JwtAuth::hs256(&secret);
        if let Some(audience) = &self.jwt_audience {
            auth = auth.with_audience(audience);
        }
        if let Some(issuer) = &self.jwt_issuer {
            auth = auth.with_issuer(issuer);
        }
        Ok(Some(auth))
    }

    /// The rate limits these options describe (all off by default);
    /// `over_rate` is the mode's answer to a connection over its rate.
    pub fn guard(&self, over_rate: OverRate) -> Result<GuardConfig, String> {
        if self.message_burst.is_some() && self.message_rate == 0 {
            return Err("--message-burst needs --message-rate".into());
        }
        let guard = GuardConfig {
            message_rate: (self.message_rate > 0).then(|| RateLimit {
                per_second: self.message_rate,
                burst: self.message_burst.unwrap_or(self.message_rate),
            }),
            over_rate,
            max_connections_per_ip: (self.max_connections_per_ip > 0)
                .then_some(self.max_connections_per_ip),
            max_upgrades_per_ip: (self.max_upgrades_per_ip > 0).then_some(self.max_upgrades_per_ip),
        };
        guard.validate().map_err(|e| e.to_string())?;
        Ok(guard)
    }

    /// The permessage-deflate settings, `None` when off.
    fn deflate_config(&self) -> Option<DeflateConfig> {
        let mode = match self.deflate {
            DeflateArg::Off => return None,
            DeflateArg::Shared => DeflateMode::Shared,
            DeflateArg::Dedicated => DeflateMode::Dedicated,
        };
        Some(DeflateConfig {
            mode,
            window_bits: self.deflate_window_bits,
            client_window_bits: self.deflate_client_window_bits,
            mem_level: self.deflate_mem_level,
            level: self.deflate_level,
            threshold: usize::try_from(self.deflate_threshold).unwrap_or(usize::MAX),
        })
    }

    /// The certificate and key files, when TLS is on.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        if let Some(key) = self.tls_key.as_deref() {
            warn_if_readable_by_others(key);
        }
        Some(TlsFiles { cert, key })
    }

    /// The server configuration these options describe.
    pub fn config(&self) -> ServerConfig {
        let origin = if self.allowed_origins.iter().any(|o| o == "*") {
            OriginPolicy::AllowAny
        } else if self.allowed_origins.is_empty() {
            OriginPolicy::SameHost
        } else {
            OriginPolicy::AllowList(self.allowed_origins.clone())
        };
        ServerConfig {
            listen: self.listen,
            max_connections: self.max_connections,
            max_backpressure: usize::try_from(self.max_backpressure).unwrap_or(usize::MAX),
            shutdown_timeout: self.shutdown_timeout,
            metrics_listen: self.metrics_listen,
            tls: self.tls_files(),
            protocol: ProtocolConfig {
                max_frame_size: self.max_frame_size,
                max_message_size: self.max_message_size,
                max_fragments: self.max_fragments,
                handshake_timeout: self.handshake_timeout,
                ping_interval: Some(self.ping_interval).filter(|d| !d.is_zero()),
                pong_timeout: self.pong_timeout,
                subprotocols: self.subprotocols.clone(),
                origin,
                allowed_hosts: self.allowed_hosts.clone(),
                deflate: self.deflate_config(),
                ..ProtocolConfig::default()
            },
            trusted_proxies: self.trusted_proxies.iter().cloned().collect(),
            ..ServerConfig::default()
        }
    }
}

/// Warns when a secret file can be read by its group or by others.
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            log::warn!(
                "{} is readable by others (mode {mode:o}): chmod 600 it",
                path.display()
            );
        }
    }
}

/// Parses `64MiB`, `16KiB`, `1MB`, `500` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 64MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses `10s`, `500ms`, `2m`, `0`.
/// A `--trusted-proxy` network.
fn parse_network(s: &str) -> Result<edgews::forwarded::ProxyNetwork, String> {
    s.parse().map_err(|e| format!("{e}"))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(
            n.checked_mul(60)
                .ok_or_else(|| format!("{s:?} is too long"))?,
        ),
        "" if n == 0 => Duration::ZERO,
        _ => return Err(format!("{s:?}: give a unit, as in 500ms, 10s or 2m")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("500"), Ok(500));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("18446744073709551615m").is_err());
        assert!(parse_size("18446744073709551615GiB").is_err());
    }

    #[test]
    fn absurd_values_parse_but_do_not_validate() {
        let cli = Cli::parse_from([
            "edgews",
            "echo",
            "--handshake-timeout",
            "18446744073709551615s",
        ]);
        let Command::Echo(args) = cli.command else {
            panic!("echo expected")
        };
        assert!(args.config().validate().is_err());
    }

    #[test]
    fn defaults_give_the_default_config() {
        let cli = Cli::parse_from(["edgews", "echo"]);
        let Command::Echo(args) = cli.command else {
            panic!("echo expected")
        };
        let c = args.config();
        let d = ServerConfig::default();
        assert_eq!(
            (c.listen, c.max_connections, c.max_backpressure),
            (d.listen, d.max_connections, d.max_backpressure)
        );
        assert_eq!(c.protocol.max_message_size, d.protocol.max_message_size);
        assert_eq!(c.protocol.ping_interval, d.protocol.ping_interval);
        assert_eq!(c.protocol.origin, OriginPolicy::SameHost);
        assert_eq!(c.protocol.max_fragments, d.protocol.max_fragments);
        assert_eq!(c.protocol.deflate, None);
    }

    #[test]
    fn deflate_flags_build_the_engine_settings() {
        let cli = Cli::parse_from([
            "edgews",
            "echo",
            "--deflate",
            "dedicated",
            "--deflate-window-bits",
            "10",
            "--deflate-mem-level",
            "2",
        ]);
        let Command::Echo(args) = cli.command else {
            panic!("echo expected")
        };
        let deflate = args.config().protocol.deflate.unwrap();
        assert_eq!(deflate.mode, DeflateMode::Dedicated);
        assert_eq!((deflate.window_bits, deflate.mem_level), (10, 2));
        let cli = Cli::parse_from([
            "edgews",
            "echo",
            "--deflate",
            "shared",
            "--deflate-window-bits",
            "8",
        ]);
        let Command::Echo(args) = cli.command else {
            panic!("echo expected")
        };
        assert!(args.config().validate().is_err(), "8 bits is refused");
    }
}
