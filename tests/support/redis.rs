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
//! When `redis-server` is not installed, starting one panics and says to
//! run `scripts/install-redis.sh` (which `scripts/test-all.sh` runs): the
//! Redis tests are never skipped silently.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
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

    fn start_with(password: Option<&str>) -> RedisServer {
        // another process may take the port between the probe and the
        // bind: try a few
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = RedisServer::unstarted(free_port(), password);
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
        }
    }

    /// Spawns redis-server on `self.port` and waits for its PONG; on
    /// failure, the reason with its log (and no process left).
    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1"])
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

    /// `redis://127.0.0.1:P`, or `redis://:PASSWORD@127.0.0.1:P`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
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
        let mut conn = RespConn::connect(self.addr())?;
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
        let mut conn = RespConn::connect(self.addr()).expect("connect to redis-server");
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

/// One RESP connection: commands out as arrays of bulk strings, replies in.
struct RespConn {
    reader: BufReader<TcpStream>,
}

impl RespConn {
    fn connect(addr: SocketAddr) -> io::Result<RespConn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
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
        self.reader.get_mut().write_all(&out)
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
