//! Child processes. The real `edgews` binary on an ephemeral loopback
//! port, measured from outside: its peak and current memory
//! (/proc/PID/status), its open descriptors (/proc/PID/fd), its `/metrics`
//! and its log (stderr, collected by a thread). Killed on drop, so a test
//! that panics leaves no server behind. And a test run again, alone, in a
//! fresh process of its test binary ([`ran_in_child`]).

use super::measure::{fd_count_of, rss_bytes, status_kib};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_edgews");

/// How long the server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How a server process is started: mode, arguments, environment, and
/// optionally a lower descriptor limit (via `prlimit`).
#[derive(Debug, Clone)]
pub struct Launch {
    mode: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    nofile: Option<u64>,
}

impl Launch {
    /// `edgews MODE --listen 127.0.0.1:0`, logging at the default level.
    pub fn new(mode: &str) -> Launch {
        Launch {
            mode: mode.to_string(),
            args: Vec::new(),
            envs: Vec::new(),
            nofile: None,
        }
    }

    /// Adds command-line arguments after the mode.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Launch {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Sets an environment variable (e.g. `EDGEWS_LOG=debug`).
    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs the binary under `prlimit --nofile=N:N` (soft and hard limit).
    pub fn nofile(mut self, limit: u64) -> Launch {
        self.nofile = Some(limit);
        self
    }

    fn command(&self) -> Command {
        let mut command = match self.nofile {
            Some(n) => {
                // prlimit sets the limits, then execs the binary: same pid
                let mut c = Command::new("/usr/bin/prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        command
            .arg(&self.mode)
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.args)
            .env_remove("RUST_LOG")
            .env_remove("EDGEWS_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Starts the server and waits for its `listening on` line (and its
    /// `serving /metrics on` line when `--metrics-listen` is given).
    pub fn start(self) -> ServerProcess {
        let mut child = self.command().spawn().expect("spawn edgews");
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_thread = collect(child.stderr.take().expect("stderr"), stderr.clone());
        let lines = stdout_lines(child.stdout.take().expect("stdout"));
        let mut server = ServerProcess {
            pid,
            addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: None,
            stdout: Vec::new(),
            child: Some(child),
            stderr,
            stderr_thread: Some(stderr_thread),
        };
        let wants_metrics = self.args.iter().any(|a| a == "--metrics-listen");
        let listening = format!("edgews {} listening on ", self.mode);
        let serving = format!("edgews {} serving /metrics on http://", self.mode);
        let deadline = Instant::now() + START_TIMEOUT;
        while server.addr.port() == 0 || (wants_metrics && server.metrics_addr.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines.recv_timeout(left) else {
                panic!(
                    "edgews {} did not start: stdout {:?}, stderr:\n{}",
                    self.mode,
                    server.stdout,
                    server.stderr_text()
                );
            };
            let url = line.strip_prefix(&listening);
            let addr = url.and_then(|u| u.strip_prefix("wss://").or(u.strip_prefix("ws://")));
            if let Some(addr) = addr {
                server.addr = addr.trim().parse().expect("the listening address");
            } else if let Some(addr) = line.strip_prefix(&serving) {
                server.metrics_addr = Some(addr.trim().parse().expect("the metrics address"));
            }
            server.stdout.push(line);
        }
        server
    }

    /// Runs a command line expected to end on its own within `limit`:
    /// its exit status (`None` if it had to be killed), stdout and stderr.
    pub fn run_to_exit(self, limit: Duration) -> (Option<ExitStatus>, String, String) {
        output_within(self.command().spawn().expect("spawn edgews"), limit)
    }
}

/// Starts `edgews MODE --listen 127.0.0.1:0 ARGS…`.
pub fn start(mode: &str, args: &[&str]) -> ServerProcess {
    Launch::new(mode).args(args).start()
}

/// A running `edgews` process; killed (and reaped) on drop.
pub struct ServerProcess {
    /// Its process id.
    pub pid: u32,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The address of its `--metrics-listen` listener, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// What it printed on stdout while starting.
    pub stdout: Vec<String>,
    child: Option<Child>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl ServerProcess {
    /// Its log so far (stderr).
    pub fn stderr_text(&self) -> String {
        text(&self.stderr)
    }

    /// Stops it with SIGTERM (graceful: its final log lines are written),
    /// waits up to `limit`, kills it if it is still running, and returns
    /// everything it wrote on stderr.
    pub fn terminate(mut self, limit: Duration) -> (Option<ExitStatus>, String) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let status = wait_or_kill(&mut child, limit);
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        (status, self.stderr_text())
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The address `/metrics` is served on.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr.unwrap_or(self.addr)
    }

    /// `GET /metrics`: the Prometheus text (panics unless 200).
    pub fn metrics(&self) -> String {
        let (head, body) = http_get(self.metrics_addr(), "/metrics", &[]);
        assert!(head.starts_with("HTTP/1.1 200 "), "GET /metrics: {head}");
        String::from_utf8(body).expect("metrics are UTF-8")
    }

    /// The value of one series (`name` or `name{label="…"}`) in `/metrics`;
    /// `None` when it is missing or `/metrics` did not answer 200.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (head, body) = http_get(self.metrics_addr(), "/metrics", &[]);
        if !head.starts_with("HTTP/1.1 200 ") {
            return None;
        }
        metric_value(&String::from_utf8_lossy(&body), series)
    }

    /// Peak resident memory (VmHWM) in bytes.
    pub fn vm_hwm(&self) -> u64 {
        status_kib(self.pid, "VmHWM:") * 1024
    }

    /// Resident memory now (VmRSS) in bytes.
    pub fn vm_rss(&self) -> u64 {
        rss_bytes(self.pid)
    }

    /// Resets the peak (VmHWM) to the current RSS, so that a later
    /// [`vm_hwm`](Self::vm_hwm) is the peak since now. Returns false where
    /// the kernel does not allow it (then the peak includes the start).
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// Open file descriptors (entries of /proc/PID/fd).
    pub fn fd_count(&self) -> usize {
        fd_count_of(self.pid)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
    }
}

/// The value of `series` in a Prometheus text: the sample whose name (and
/// labels) is exactly `series`.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(name, _)| *name == series)
        .and_then(|(_, value)| value.parse().ok())
}

/// The sample lines' names and labels (the values left out), in order.
pub fn series_of(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.rsplit_once(' ').map_or(l, |(name, _)| name).to_string())
        .collect()
}

/// A one-shot HTTP/1.1 GET with extra header lines (`Host` is added unless
/// given): the response head and its body (`Content-Length`, or to EOF).
pub fn http_get(addr: SocketAddr, path: &str, headers: &[&str]) -> (String, Vec<u8>) {
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        request += &format!("Host: {addr}\r\n");
    }
    for h in headers {
        request += h;
        request += "\r\n";
    }
    request += "\r\n";
    http_exchange(addr, request.as_bytes())
}

/// Sends raw request bytes and reads one response: head and body (after
/// a `101` head, whatever came with it; without `Content-Length`, to EOF).
/// A connection that ends before a whole head gives what came, as the head.
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("write the request");
    let mut seen = Vec::new();
    match super::tls::read_http_response(&mut Recording(&mut s, &mut seen)) {
        Ok(response) => response,
        Err(_) => (String::from_utf8_lossy(&seen).into_owned(), Vec::new()),
    }
}

/// A reader that keeps a copy of what it read.
struct Recording<'a, R>(&'a mut R, &'a mut Vec<u8>);

impl<R: Read> Read for Recording<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Set in a child process to the one test it runs.
const CHILD_ENV: &str = "EDGEWS_TEST_IN_CHILD";
/// The most a test may take in its child process before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a test alone in a fresh child process of this test binary, for
/// measurements that need a process of their own: memory freed by an
/// earlier test stays resident and would hide growth, and other tests'
/// sockets would blur the descriptor count. The children run one at a time
/// (they compete for 2 cores otherwise).
///
/// In the test process: runs the test `name` in a child, prints its output
/// (without the test harness's own lines), fails if it failed, and returns
/// true. In the child: returns false, and the caller runs the test body.
pub fn ran_in_child(name: &str) -> bool {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        return false;
    }
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let (status, stdout, stderr) = output_within(child, CHILD_TIMEOUT);
    // the figures, without the harness's own lines
    // (with --nocapture, the first one follows "test name ... " on its line)
    for line in stdout.lines() {
        let line = match line.split_once(" ... ") {
            Some((test, rest)) if test.starts_with("test ") => rest,
            _ => line,
        };
        let harness = matches!(line, "" | "ok" | "FAILED")
            || line.starts_with("running ")
            || line.starts_with("test result:")
            || line.starts_with("successes:")
            || line.starts_with("failures:");
        if !harness {
            println!("{line}");
        }
    }
    match status {
        Some(s) if s.success() => true,
        Some(s) => panic!("{name} failed in its own process ({s}):\n{stdout}\n{stderr}"),
        None => panic!("{name} took over {CHILD_TIMEOUT:?}:\n{stdout}\n{stderr}"),
    }
}

/// Waits up to `limit` for `child` (its stdout and stderr piped) to exit:
/// its exit status (`None` if it had to be killed), stdout and stderr.
fn output_within(mut child: Child, limit: Duration) -> (Option<ExitStatus>, String, String) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let out_thread = collect(child.stdout.take().expect("stdout"), out.clone());
    let err_thread = collect(child.stderr.take().expect("stderr"), err.clone());
    let status = wait_or_kill(&mut child, limit);
    let _ = out_thread.join();
    let _ = err_thread.join();
    (status, text(&out), text(&err))
}

/// What a [`collect`] thread gathered, as text.
fn text(bytes: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&bytes.lock().unwrap()).into_owned()
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    })
}

fn stdout_lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            // keep draining after the start, so that a later line never
            // meets a closed pipe
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits up to `limit` for `child` to exit: its status, or `None` when it
/// had to be killed (and reaped).
fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
