//! A real `redis-server` for the tests that share topics through Redis:
//! started on a free loopback port with its own temporary directory, no
//! persistence (`--save "" --appendonly no`), optionally a password; killed
//! (SIGKILL) and its directory removed on drop. It can be killed, stopped
//! (SIGSTOP) and continued, and restarted on the same port with the same
//! password, to play an outage.
//!
//! [`RedisServer::command`] speaks RESP over a plain `TcpStream` (a tiny
//! sender and reply reader here, no crate), for what the tests ask Redis
//! directly: `PUBSUB CHANNELS`, `PUBLISH`, `CLIENT KILL TYPE pubsub`…
//! [`Subscriber`] listens on channels and keeps what was published there,
//! byte for byte, to replay it.
//!
//! [`RedisServer::start_tls`] starts one that speaks TLS only
//! (`--port 0 --tls-port P`), with a certificate for `localhost`,
//! `127.0.0.1` and `::1` signed by a throwaway CA made with rcgen
//! (tests/support/tls.rs); its URL is then `rediss://localhost:P`, its CA
//! certificate [`RedisServer::ca_file`], and the harness's own commands go
//! over TLS too.
//!
//! And what the tests of `--redis` share: `edgews` instances given the
//! server's URL ([`instance`]), their health and metrics ([`status`],
//! [`wait_ready`], [`wait_metric`]), what Redis subscribes
//! ([`wait_subscribers`]), clients and what they receive ([`connect`],
//! [`read_until`], [`assert_silent`]), pub/sub frames ([`publish`],
//! [`delivery`]) and chat members ([`Member`], what they saw: [`Room`]);
//! an instance stopped (SIGSTOP) until its guard continues it ([`stop`]).
//!
//! When `redis-server` is not installed, starting one panics and says to
//! run `scripts/install-redis.sh` (which `scripts/test-all.sh` runs): the
//! Redis tests are never skipped silently.

use super::measure::poll_every;
use super::process::{http_get, Launch, ServerProcess};
use super::tls::{tls_connect, trusting, TestPki, TlsStream};
use edgews::client::{Client, ClientConfig, ClientError};
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a redis-server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The read and write timeout of a command's connection.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A loopback port free right now (bound, then let go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A running `redis-server` child process.
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
    /// With TLS only: the certificates it serves and clients trust.
    tls: Option<TestPki>,
}

impl RedisServer {
    /// Starts a redis-server without a password on a free port.
    pub fn start() -> RedisServer {
        RedisServer::start_with(None)
    }

    /// Starts a redis-server that requires `password` (`--requirepass`).
    pub fn start_with_password(password: &str) -> RedisServer {
        RedisServer::start_with(Some(password))
    }

    /// Starts a redis-server on `port` (which must be free), e.g. the port
    /// of a URL that instances were already given.
    pub fn start_on_port(port: u16, password: Option<&str>) -> RedisServer {
        let mut server = RedisServer::unstarted(port, password);
        if let Err(e) = server.spawn() {
            panic!("{e}");
        }
        server
    }

    /// Starts a redis-server without a password that speaks TLS only
    /// (`--port 0 --tls-port P --tls-auth-clients no`), with a certificate
    /// for `localhost`, `127.0.0.1` and `::1` signed by a CA of its own
    /// ([`ca_file`](Self::ca_file)).
    pub fn start_tls() -> RedisServer {
        RedisServer::start_retrying(None, true)
    }

    fn start_with(password: Option<&str>) -> RedisServer {
        RedisServer::start_retrying(password, false)
    }

    fn start_retrying(password: Option<&str>, tls: bool) -> RedisServer {
        // another process may take the port between the probe and the
        // bind: try a few
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = RedisServer::unstarted(free_port(), password);
            if tls {
                server.tls = Some(TestPki::new("redis"));
            }
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    fn unstarted(port: u16, password: Option<&str>) -> RedisServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "edgews-redis-{}-{}-{port}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("the redis-server's directory");
        RedisServer {
            port,
            password: password.map(str::to_string),
            dir,
            child: None,
            tls: None,
        }
    }

    /// Spawns redis-server on `self.port` and waits for its PONG; on
    /// failure, the reason with its log (and no process left).
    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(pki) => command
                .args(["--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(&pki.server.cert)
                .arg("--tls-key-file")
                .arg(&pki.server.key)
                .arg("--tls-ca-cert-file")
                .arg(&pki.ca_file)
                .args(["--tls-auth-clients", "no"]),
        };
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(pw) = &self.password {
            command.args(["--requirepass", pw]);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
                "redis-server is not installed (not on PATH): run scripts/install-redis.sh \
                 (scripts/test-all.sh runs it), which installs Debian's redis-server"
            ),
            Err(e) => panic!("spawn redis-server: {e}"),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(format!(
                    "redis-server on port {port} exited with {status}: {stderr}\nlog:\n{}",
                    self.log()
                ));
            }
            if self.try_command(&["PING"]).is_ok_and(|r| r == "PONG") {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {port} did not answer PING within {START_TIMEOUT:?}; \
                     log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Its log file so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `redis://127.0.0.1:P`, or `redis://:PASSWORD@127.0.0.1:P`; with TLS
    /// `rediss://localhost:P` (or `rediss://:PASSWORD@localhost:P`), the
    /// name its certificate is for.
    pub fn url(&self) -> String {
        let (scheme, host) = match self.tls {
            Some(_) => ("rediss", "localhost"),
            None => ("redis", "127.0.0.1"),
        };
        match &self.password {
            Some(pw) => format!("{scheme}://:{pw}@{host}:{}", self.port),
            None => format!("{scheme}://{host}:{}", self.port),
        }
    }

    /// With TLS: the PEM file of the CA that signed its certificate (what
    /// `--redis-ca-file` is given).
    pub fn ca_file(&self) -> &Path {
        &self.tls.as_ref().expect("a TLS redis-server").ca_file
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills it with SIGKILL and waits for it to be gone: every client's
    /// connection drops at once, nothing is flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same password (after
    /// [`kill`](Self::kill); kills it first if it still runs).
    pub fn restart(&mut self) {
        self.kill();
        // the port was ours a moment ago; a client of the old process in
        // TIME_WAIT does not keep redis-server (SO_REUSEADDR) from binding
        if let Err(e) = self.spawn() {
            panic!("restart: {e}");
        }
    }

    /// Stops the process (SIGSTOP): connections stay open, nothing is read
    /// or answered until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Continues a [`pause`](Self::pause)d process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("redis-server is running");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    /// Sends one command (authenticating first when there is a password)
    /// and returns the reply as text (see [`Reply::text`]); panics if Redis
    /// does not answer.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("redis {args:?} on port {}: {e}", self.port))
    }

    /// [`command`](Self::command), or the I/O error.
    pub fn try_command(&self, args: &[&str]) -> io::Result<String> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.try_command_bytes(&args).map(|r| r.text())
    }

    /// One command whose arguments are bytes (e.g. a binary `PUBLISH`
    /// payload); the reply as it came.
    pub fn command_bytes(&self, args: &[&[u8]]) -> Reply {
        self.try_command_bytes(args)
            .unwrap_or_else(|e| panic!("redis command on port {}: {e}", self.port))
    }

    fn try_command_bytes(&self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut conn = self.connect()?;
        if let Some(pw) = &self.password {
            conn.send(&[b"AUTH", pw.as_bytes()])?;
            match conn.read()? {
                Reply::Simple(ok) if ok == "OK" => {}
                other => return Err(io::Error::other(format!("AUTH refused: {}", other.text()))),
            }
        }
        conn.send(args)?;
        conn.read()
    }

    /// A RESP connection to it (over TLS, trusting its CA, when it speaks
    /// TLS).
    fn connect(&self) -> io::Result<RespConn> {
        RespConn::connect(
            self.addr(),
            self.tls.as_ref().map(|pki| pki.ca_file.as_path()),
        )
    }

    /// The channels someone subscribes to that match `pattern`
    /// (`PUBSUB CHANNELS pattern`), sorted.
    pub fn channels(&self, pattern: &str) -> Vec<String> {
        let mut list: Vec<String> = self
            .command(&["PUBSUB", "CHANNELS", pattern])
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect();
        list.sort();
        list
    }

    /// How many connections subscribe to `channel` (`PUBSUB NUMSUB`).
    pub fn subscribers(&self, channel: &str) -> u64 {
        let reply = self.command(&["PUBSUB", "NUMSUB", channel]);
        reply
            .lines()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("PUBSUB NUMSUB {channel}: {reply:?}"))
    }

    /// Listens on `channels` on a connection of its own.
    pub fn subscriber(&self, channels: &[&str]) -> Subscriber {
        let mut conn = self.connect().expect("connect to redis-server");
        if let Some(pw) = &self.password {
            conn.send(&[b"AUTH", pw.as_bytes()]).expect("AUTH");
            let reply = conn.read().expect("AUTH reply");
            assert_eq!(reply, Reply::Simple("OK".into()), "AUTH");
        }
        let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        args.extend(channels.iter().map(|c| c.as_bytes()));
        conn.send(&args).expect("SUBSCRIBE");
        for _ in channels {
            let reply = conn.read().expect("SUBSCRIBE reply");
            assert!(
                matches!(&reply, Reply::Array(Some(items)) if items.first() == Some(&Reply::Bulk(Some(b"subscribe".to_vec())))),
                "SUBSCRIBE: {reply:?}"
            );
        }
        Subscriber { conn }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // a stopped process dies of SIGKILL too; continue it anyway
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An `edgews` process stopped with SIGSTOP by [`stop`]: continued
/// (SIGCONT) by [`resume`](Stopped::resume), or on drop, so that a failed
/// assertion never leaves it stopped.
pub struct Stopped {
    pid: u32,
    resumed: bool,
}

/// Stops `server`'s process (SIGSTOP): its sockets stay open, nothing is
/// read, written or answered (not even `/metrics`: ask it nothing) until
/// the returned guard resumes it.
pub fn stop(server: &ServerProcess) -> Stopped {
    signal_pid(server.pid, "-STOP");
    Stopped {
        pid: server.pid,
        resumed: false,
    }
}

impl Stopped {
    /// Continues the process (SIGCONT).
    pub fn resume(mut self) {
        self.resumed = true;
        signal_pid(self.pid, "-CONT");
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.resumed {
            let _ = Command::new("kill")
                .args(["-CONT", &self.pid.to_string()])
                .status();
        }
    }
}

/// Sends `signal` (e.g. `-STOP`) to process `pid` with kill(1).
fn signal_pid(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}: {status}");
}

/// A connection subscribed to some channels.
pub struct Subscriber {
    conn: RespConn,
}

impl Subscriber {
    /// The next message published on one of its channels: the channel and
    /// the payload, byte for byte; `None` when nothing came within `limit`.
    pub fn next(&mut self, limit: Duration) -> Option<(String, Vec<u8>)> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.conn
                .reader
                .get_ref()
                .tcp()
                .set_read_timeout(Some(left))
                .unwrap();
            match self.conn.read() {
                Ok(Reply::Array(Some(items))) => {
                    if let [Reply::Bulk(Some(kind)), Reply::Bulk(Some(channel)), Reply::Bulk(Some(payload))] =
                        items.as_slice()
                    {
                        if kind == b"message" {
                            return Some((
                                String::from_utf8_lossy(channel).into_owned(),
                                payload.clone(),
                            ));
                        }
                    }
                }
                Ok(other) => panic!("unexpected push on a subscribed connection: {other:?}"),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("the subscribed connection failed: {e}"),
            }
        }
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR …`
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$n` bytes, or nil (`$-1`)
    Bulk(Option<Vec<u8>>),
    /// `*n` replies, or nil (`*-1`)
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// As text: a simple string or bulk as it is (lossy UTF-8), an error as
    /// `(error) MESSAGE`, an integer in decimal, nil as `(nil)`, an array as
    /// its elements' texts, one a line.
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) => s.clone(),
            Reply::Error(e) => format!("(error) {e}"),
            Reply::Integer(n) => n.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) | Reply::Array(None) => "(nil)".to_string(),
            Reply::Array(Some(items)) => {
                items.iter().map(Reply::text).collect::<Vec<_>>().join("\n")
            }
        }
    }
}

/// A connection to redis-server: plain TCP, or TLS over it.
enum RespStream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl RespStream {
    /// The TCP connection underneath (for its timeouts).
    fn tcp(&self) -> &TcpStream {
        match self {
            RespStream::Plain(tcp) => tcp,
            RespStream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for RespStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RespStream::Plain(tcp) => tcp.read(buf),
            RespStream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for RespStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            RespStream::Plain(tcp) => tcp.write(buf),
            RespStream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            RespStream::Plain(tcp) => tcp.flush(),
            RespStream::Tls(tls) => tls.flush(),
        }
    }
}

/// One RESP connection: commands out as arrays of bulk strings, replies in.
struct RespConn {
    reader: BufReader<RespStream>,
}

impl RespConn {
    /// Connects to `addr`; over TLS trusting the CA in `ca_file` when one
    /// is given (the certificate checked against `addr`'s IP address).
    fn connect(addr: SocketAddr, ca_file: Option<&Path>) -> io::Result<RespConn> {
        let stream = match ca_file {
            None => {
                let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                stream.set_nodelay(true)?;
                RespStream::Plain(stream)
            }
            Some(ca) => {
                let stream = tls_connect(addr, &trusting(ca))?;
                stream.sock.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.sock.set_write_timeout(Some(IO_TIMEOUT))?;
                RespStream::Tls(Box::new(stream))
            }
        };
        Ok(RespConn {
            reader: BufReader::new(stream),
        })
    }

    fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        let stream = self.reader.get_mut();
        stream.write_all(&out)?;
        stream.flush()
    }

    fn read(&mut self) -> io::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1);
        let number = || {
            rest.parse::<i64>()
                .map_err(|_| io::Error::other(format!("bad RESP line {line:?}")))
        };
        Ok(match kind {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Integer(number()?),
            "$" => match number()? {
                n if n < 0 => Reply::Bulk(None),
                n => {
                    let mut data = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(n as usize);
                    Reply::Bulk(Some(data))
                }
            },
            "*" => match number()? {
                n if n < 0 => Reply::Array(None),
                n => Reply::Array(Some(
                    (0..n).map(|_| self.read()).collect::<io::Result<_>>()?,
                )),
            },
            _ => return Err(io::Error::other(format!("bad RESP line {line:?}"))),
        })
    }

    /// One `\r\n`-terminated line, without the terminator.
    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection ended mid-reply",
            ));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| io::Error::other("a reply line that is not UTF-8"))
    }
}

// ------------------------------------------- instances and their clients

/// A bound for what should happen soon: a message arriving, a count
/// settling, a subscription showing in Redis.
pub const SOON: Duration = Duration::from_secs(5);
/// A bound for a reconnection to Redis: the back-off is capped at 5 s, plus
/// jitter.
pub const RECONNECT: Duration = Duration::from_secs(10);
/// How long "nothing more arrives" is watched.
pub const QUIET: Duration = Duration::from_millis(300);

/// `edgews MODE --workers 2 --redis URL EXTRA…` on an ephemeral port.
pub fn instance(mode: &str, url: &str, extra: &[&str]) -> ServerProcess {
    instance_with_workers(mode, url, 2, extra)
}

/// Two `edgews broadcast` instances on `redis` (`extra_a` for the first),
/// both ready and both subscribed to the broadcast channel.
pub fn broadcast_pair(redis: &RedisServer, extra_a: &[&str]) -> (ServerProcess, ServerProcess) {
    let a = instance("broadcast", &redis.url(), extra_a);
    let b = instance("broadcast", &redis.url(), &[]);
    wait_ready(&[&a, &b], RECONNECT);
    wait_subscribers(redis, "edgews:broadcast", 2, &[&a, &b]);
    (a, b)
}

/// `edgews MODE --workers N --redis URL EXTRA…` on an ephemeral port.
pub fn instance_with_workers(mode: &str, url: &str, workers: u16, extra: &[&str]) -> ServerProcess {
    Launch::new(mode)
        .args(["--workers", &workers.to_string(), "--redis", url])
        .args(extra)
        .start()
}

/// The status code `GET path` is answered with.
pub fn status(server: &ServerProcess, path: &str) -> u16 {
    let (head, _) = http_get(server.addr, path, &[]);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status in {head:?}"))
}

/// The value of a metric (summed over workers); panics when it is missing.
pub fn metric(server: &ServerProcess, name: &str) -> f64 {
    server.metric(name).unwrap_or_else(|| {
        panic!(
            "{name} is not in /metrics:\n{}\nlog:\n{}",
            server.metrics(),
            server.stderr_text()
        )
    })
}

/// Polls `cond` (every 50 ms) until it holds; panics after `limit` with
/// `what` and the logs of `servers`.
pub fn wait_for(
    limit: Duration,
    what: &str,
    servers: &[&ServerProcess],
    cond: impl FnMut() -> bool,
) {
    if poll_every(Duration::from_millis(50), limit, cond).is_none() {
        panic!("not within {limit:?}: {what}\n{}", logs(servers));
    }
}

/// Waits until `name` on `server` satisfies `cond`; returns its value.
pub fn wait_metric(
    server: &ServerProcess,
    name: &str,
    limit: Duration,
    cond: impl Fn(f64) -> bool,
) -> f64 {
    let mut last = None;
    let settled = poll_every(Duration::from_millis(50), limit, || {
        last = server.metric(name);
        last.is_some_and(&cond)
    });
    assert!(
        settled.is_some(),
        "{name} on {} stayed at {last:?} for {limit:?}; log:\n{}",
        server.addr,
        server.stderr_text()
    );
    last.unwrap()
}

/// Waits until every instance is connected to Redis and ready.
pub fn wait_ready(servers: &[&ServerProcess], limit: Duration) {
    for s in servers {
        wait_for(limit, "/readyz 200 and connected", servers, || {
            status(s, "/readyz") == 200 && s.metric("edgews_redis_connected") == Some(1.0)
        });
    }
}

/// Waits until exactly `n` connections subscribe to `channel` in Redis.
pub fn wait_subscribers(redis: &RedisServer, channel: &str, n: u64, servers: &[&ServerProcess]) {
    let mut last = 0;
    let settled = poll_every(Duration::from_millis(50), RECONNECT, || {
        last = redis.subscribers(channel);
        last == n
    });
    assert!(
        settled.is_some(),
        "{channel} has {last} subscribers in Redis, not {n} (channels: {:?})\n{}",
        redis.channels("*"),
        logs(servers)
    );
}

/// A WebSocket client of `server` on `path`; reads time out after SOON.
pub fn connect(server: &ServerProcess, path: &str) -> Client {
    let config = ClientConfig {
        read_timeout: Some(SOON),
        ..ClientConfig::default()
    };
    Client::connect_with(&format!("ws://{}{path}", server.addr), config)
        .unwrap_or_else(|e| panic!("connect to {path} on {}: {e}", server.addr))
}

/// The next text message.
pub fn recv_text(client: &mut Client, who: &str) -> String {
    match client.recv_message() {
        Ok(m) => m
            .as_text()
            .unwrap_or_else(|| panic!("{who}: a binary message"))
            .to_string(),
        Err(e) => panic!("{who}: no message: {e}"),
    }
}

/// The next message, as JSON.
pub fn recv_json(client: &mut Client, who: &str) -> Value {
    let text = recv_text(client, who);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{who}: {e}: {text}"))
}

/// Nothing arrives within [`QUIET`].
pub fn assert_silent(client: &mut Client, who: &str) {
    client.stream().set_read_timeout(Some(QUIET)).unwrap();
    match client.recv_message() {
        Err(ClientError::Timeout) => {}
        Ok(m) => panic!("{who}: expected silence, got {m:?}"),
        Err(e) => panic!("{who}: expected silence, got {e}"),
    }
    client.stream().set_read_timeout(Some(SOON)).unwrap();
}

/// Reads text messages until `done(all read so far)` holds; each read
/// waits at most `each`.
pub fn read_until(
    client: &mut Client,
    who: &str,
    each: Duration,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    client.stream().set_read_timeout(Some(each)).unwrap();
    let mut got = Vec::new();
    while !done(&got) {
        match client.recv_message() {
            Ok(m) => got.push(
                m.as_text()
                    .unwrap_or_else(|| panic!("{who}: a binary message"))
                    .to_string(),
            ),
            Err(e) => panic!(
                "{who}: {e} after {} messages; the last ones: {:?}",
                got.len(),
                &got[got.len().saturating_sub(5)..]
            ),
        }
    }
    client.stream().set_read_timeout(Some(SOON)).unwrap();
    got
}

/// The message `seq` of `sender`: `SENDER/SEQ`.
pub fn numbered(sender: &str, seq: u64) -> String {
    format!("{sender}/{seq}")
}

/// The sequence numbers `got` holds from `sender` (texts `SENDER/SEQ…`),
/// checked to be strictly increasing: each at most once, in the sender's
/// order.
pub fn seqs_from(got: &[String], sender: &str, who: &str) -> Vec<u64> {
    let prefix = format!("{sender}/");
    let seqs: Vec<u64> = got
        .iter()
        .filter_map(|t| t.strip_prefix(&prefix))
        .map(|rest| {
            let n = rest.split('/').next().unwrap();
            n.parse()
                .unwrap_or_else(|_| panic!("{who}: unexpected {rest:?}"))
        })
        .collect();
    if let Some(w) = seqs.windows(2).find(|w| w[0] >= w[1]) {
        panic!(
            "{who}: {sender}'s messages twice or out of order: {} then {}",
            w[0], w[1]
        );
    }
    seqs
}

/// Whether `got` holds `SENDER/SEQ` as a whole text or a prefix of one.
pub fn has(got: &[String], sender: &str, seq: u64) -> bool {
    let want = numbered(sender, seq);
    got.iter()
        .any(|t| t == &want || t.starts_with(&format!("{want}/")))
}

/// Sends `SENDER/SEQ` for each seq in `seqs`.
pub fn send_numbered(client: &mut Client, sender: &str, seqs: impl IntoIterator<Item = u64>) {
    for seq in seqs {
        client.send_text(&numbered(sender, seq)).expect("send");
    }
}

/// Of `sent` messages from `from` to `to`, `delivered` crossed: the others
/// must be counted lost, on the way out of `from` (not sent to Redis) or
/// on the way into `to` (a gap in the sequence); a loss may be counted on
/// both sides. The counters may lag a little behind the deliveries.
pub fn assert_losses_counted(from: &ServerProcess, to: &ServerProcess, delivered: u64, sent: u64) {
    let (mut out, mut into) = (0.0, 0.0);
    let counted = poll_every(Duration::from_millis(50), SOON, || {
        out = metric(from, "edgews_redis_lost_out_total");
        into = metric(to, "edgews_redis_lost_in_total");
        delivered as f64 + out + into >= sent as f64
    });
    println!("{delivered} of {sent} crossed; counted lost: {out} out of the sender's instance, {into} into the receiver's");
    assert!(
        counted.is_some(),
        "{delivered} of {sent} crossed, yet only {out} + {into} were counted lost\n{}",
        logs(&[from, to])
    );
}

/// The logs of the instances, for a failure message.
pub fn logs(servers: &[&ServerProcess]) -> String {
    servers
        .iter()
        .map(|s| format!("--- instance on {}:\n{}", s.addr, s.stderr_text()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A publication of `data` on `topic`.
pub fn publish(client: &mut Client, topic: &str, data: &str) {
    let frame = json!({"op": "publish", "topic": topic, "data": data});
    client.send_text(&frame.to_string()).expect("publish");
}

/// The data of the next delivery, which must be on `topic`.
pub fn delivery(client: &mut Client, who: &str, topic: &str) -> String {
    let v = recv_json(client, who);
    assert_eq!(v["type"], "message", "{who}: {v}");
    assert_eq!(v["topic"], topic, "{who}: {v}");
    v["data"]
        .as_str()
        .unwrap_or_else(|| panic!("{who}: {v}"))
        .to_string()
}

/// What one chat member saw: the members (its welcome's, with the joins
/// and leaves applied), every event, the messages and the lost counts.
#[derive(Debug, Default)]
pub struct Room {
    pub members: Vec<String>,
    pub events: Vec<Value>,
    pub messages: Vec<Value>,
    pub lost: Vec<u64>,
}

impl Room {
    pub fn knows(&self, name: &str) -> bool {
        self.members.iter().any(|m| m == name)
    }

    /// The texts of the messages from `from`, in order.
    pub fn texts_from(&self, from: &str) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m["from"] == from)
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    }

    /// The ids of the messages, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.messages
            .iter()
            .map(|m| m["id"].as_u64().expect("a numeric id"))
            .collect()
    }

    pub fn apply(&mut self, who: &str, room: &str, v: Value) {
        let name = || v["name"].as_str().unwrap_or_else(|| panic!("{who}: {v}"));
        assert_eq!(v["room"], room, "{who}: {v}");
        match v["type"].as_str() {
            Some("join") => self.members.push(name().to_string()),
            Some("leave") => {
                if let Some(at) = self.members.iter().position(|m| m == name()) {
                    self.members.remove(at);
                }
            }
            Some("message") => {
                for field in ["id", "ts"] {
                    assert!(v[field].is_u64(), "{who}: no numeric {field}: {v}");
                }
                assert!(v["from"].is_string() && v["text"].is_string(), "{who}: {v}");
                self.messages.push(v.clone());
            }
            Some("lost") => self
                .lost
                .push(v["count"].as_u64().unwrap_or_else(|| panic!("{who}: {v}"))),
            _ => panic!("{who}: unexpected event {v}"),
        }
        self.events.push(v);
    }
}

/// A member of a room on an instance.
pub struct Member {
    pub who: String,
    pub room: String,
    pub client: Client,
    pub seen: Room,
}

impl Member {
    /// Joins `room` as `name`; the welcome is checked and its members kept.
    pub fn join(server: &ServerProcess, room: &str, name: &str) -> Member {
        let who = format!("{name} on {}", server.addr);
        let mut client = connect(server, &format!("/ws?room={room}&name={name}"));
        let welcome = recv_json(&mut client, &who);
        assert_eq!(welcome["type"], "welcome", "{who}: {welcome}");
        assert_eq!(welcome["room"], room, "{who}: {welcome}");
        assert_eq!(welcome["name"], name, "{who}: {welcome}");
        let members = welcome["members"]
            .as_array()
            .unwrap_or_else(|| panic!("{who}: {welcome}"))
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        Member {
            who,
            room: room.to_string(),
            client,
            seen: Room {
                members,
                ..Room::default()
            },
        }
    }

    /// Reads events until `done` holds of what it saw, within `limit`.
    pub fn read_until(&mut self, limit: Duration, done: impl Fn(&Room) -> bool) {
        if let Err(e) = self.try_read_until(limit, done) {
            panic!("{e}");
        }
    }

    /// [`read_until`](Self::read_until), or why not (what it saw in it).
    pub fn try_read_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&Room) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let result = loop {
            if done(&self.seen) {
                break Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(format!(
                    "{}: not within {limit:?}; saw {:#?}",
                    self.who, self.seen
                ));
            }
            self.client.stream().set_read_timeout(Some(left)).unwrap();
            let v = match self.client.recv_message() {
                Ok(m) => serde_json::from_str(m.as_text().expect("text")).expect("JSON"),
                Err(e) => break Err(format!("{}: {e}; saw {:#?}", self.who, self.seen)),
            };
            self.seen.apply(&self.who, &self.room, v);
        };
        self.client.stream().set_read_timeout(Some(SOON)).unwrap();
        result
    }

    pub fn say(&mut self, text: &str) {
        let m = json!({"type": "message", "room": self.room, "text": text});
        self.client.send_text(&m.to_string()).expect("send");
    }

    pub fn assert_silent(&mut self) {
        assert_silent(&mut self.client, &self.who);
    }
}
