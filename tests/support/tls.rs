//! TLS for the tests: throwaway certificates made at test time with rcgen
//! (a CA, a leaf it signed for `localhost`, `127.0.0.1` and `::1`, an
//! expired leaf, a leaf for another name) in a private directory under the
//! system's temp dir, removed on drop; and raw rustls clients, for what the
//! edgews client does not show (ALPN, https requests, half a ClientHello).
//! The keys are generated on the spot and never leave the machine.

use edgews::client::{Client, ClientConfig};
use edgews::tls::rustls::{self, ClientConnection, StreamOwned};
use edgews::tls::{ClientTls, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a raw TLS client waits for a read before giving up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A directory of its own under the system's temp dir; removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// `edgews-tls-TAG-PID-N` under `std::env::temp_dir()`, private (0700).
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::DirBuilderExt;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("edgews-tls-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path); // a leftover of a killed run
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .expect("create the certificate directory");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// Whether a leaf is valid now or expired years ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Valid from 1975 to 4096 (rcgen's default).
    Current,
    /// Valid only during 2020.
    Expired,
}

/// A leaf certificate: its chain (leaf, then the CA) and its key, PEM.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub chain_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// A self-signed CA called `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A leaf for `names` (DNS names or IP addresses) signed by this CA.
    pub fn leaf(&self, names: &[&str], validity: Validity) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        Leaf {
            chain_pem: cert.pem() + &self.pem,
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA certificate to `path`; returns it.
    pub fn write(&self, path: PathBuf) -> PathBuf {
        std::fs::write(&path, &self.pem).expect("write the CA certificate");
        path
    }
}

/// The names every good leaf is for.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

impl Leaf {
    /// Writes the chain and the key (the key private, 0600) to
    /// `DIR/NAME.pem` and `DIR/NAME.key`.
    pub fn write(&self, dir: &TempDir, name: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join(&format!("{name}.pem")),
            key: dir.join(&format!("{name}.key")),
        };
        self.write_to(&files);
        files
    }

    /// Writes (or overwrites) the chain and key at `files`' paths, each
    /// through a temporary file renamed over it, so that a reader never
    /// sees half a file.
    pub fn write_to(&self, files: &TlsFiles) {
        replace_file(&files.cert, self.chain_pem.as_bytes());
        replace_file(&files.key, self.key_pem.as_bytes());
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it.
pub fn replace_file(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .expect("create a temporary file");
    file.write_all(bytes).expect("write a temporary file");
    drop(file);
    std::fs::rename(&tmp, path).expect("rename over the file");
}

/// Everything most tests need: one CA and its certificate file, and
/// leaves it signed, written to a temp dir.
pub struct TestPki {
    pub dir: TempDir,
    pub ca: Ca,
    /// The CA certificate, PEM: what clients trust.
    pub ca_file: PathBuf,
    /// A valid leaf for `localhost`, `127.0.0.1` and `::1`.
    pub server: TlsFiles,
    /// The same names, expired in 2021.
    pub expired: TlsFiles,
    /// A valid leaf for `other.example` only.
    pub other_name: TlsFiles,
}

impl TestPki {
    /// Makes the CA and the three leaves in a new temp dir named after `tag`.
    pub fn new(tag: &str) -> TestPki {
        let dir = TempDir::new(tag);
        let ca = Ca::new("edgews test CA");
        let ca_file = ca.write(dir.join("ca.pem"));
        let server = ca
            .leaf(&LOCAL_NAMES, Validity::Current)
            .write(&dir, "server");
        let expired = ca
            .leaf(&LOCAL_NAMES, Validity::Expired)
            .write(&dir, "expired");
        let other_name = ca
            .leaf(&["other.example"], Validity::Current)
            .write(&dir, "other-name");
        TestPki {
            dir,
            ca,
            ca_file,
            server,
            expired,
            other_name,
        }
    }

    /// A client side that trusts only this CA.
    pub fn client_tls(&self) -> ClientTls {
        trusting(&self.ca_file)
    }
}

/// A client side that trusts only the certificates in `ca_file`.
pub fn trusting(ca_file: &Path) -> ClientTls {
    ClientTls {
        ca_file: Some(ca_file.to_path_buf()),
        dangerous_insecure: false,
    }
}

/// A client side that accepts any certificate.
pub fn insecure() -> ClientTls {
    ClientTls {
        ca_file: None,
        dangerous_insecure: true,
    }
}

/// The `wss://` URL of `addr` with `path` (the host is the IP address,
/// which the good leaves name).
pub fn wss_url(addr: SocketAddr, path: &str) -> String {
    format!("wss://{addr}{path}")
}

/// The blocking edgews client's configuration with `tls`, bounded reads
/// and no permessage-deflate offer unless `deflate`.
pub fn client_config(tls: ClientTls, deflate: bool) -> ClientConfig {
    let mut config = ClientConfig {
        read_timeout: Some(READ_TIMEOUT),
        tls,
        ..ClientConfig::default()
    };
    if !deflate {
        config.protocol.deflate = None;
    }
    config
}

/// Connects the edgews client to `wss://addr/` with `tls`.
pub fn wss_connect(
    addr: SocketAddr,
    tls: ClientTls,
) -> Result<Client, edgews::client::ClientError> {
    Client::connect_with(&wss_url(addr, "/"), client_config(tls, false))
}

/// A raw rustls client stream over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// The rustls client configuration `tls` describes (ALPN `http/1.1`).
pub fn rustls_config(tls: &ClientTls) -> Arc<rustls::ClientConfig> {
    tls.build().expect("client TLS configuration")
}

/// Opens TCP to `addr` and completes a TLS handshake with `tls`, checking
/// the certificate against `addr`'s IP address.
pub fn tls_connect(addr: SocketAddr, tls: &ClientTls) -> io::Result<TlsStream> {
    tls_connect_with(addr, rustls_config(tls))
}

/// As [`tls_connect`], with a rustls configuration of the caller's.
pub fn tls_connect_with(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))?;
    tcp.set_write_timeout(Some(READ_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    let name = edgews::tls::server_name(&addr.ip().to_string()).expect("a server name");
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The bytes of a client's first flight: its ClientHello, as a client of
/// `tls` would send it to `addr`.
pub fn client_hello(addr: SocketAddr, tls: &ClientTls) -> Vec<u8> {
    let name = edgews::tls::server_name(&addr.ip().to_string()).expect("a server name");
    let mut conn = ClientConnection::new(rustls_config(tls), name).expect("client connection");
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).expect("write the ClientHello");
    }
    hello
}

/// Reads from `stream` until an HTTP head (up to the blank line) and its
/// `Content-Length` body are in (or, without one, to the end): the head
/// and the body. A TCP close without `close_notify` ends it too.
pub fn read_http_response(stream: &mut impl Read) -> io::Result<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end + 4]).into_owned();
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            let body_end = match length {
                Some(n) => end + 4 + n,
                None if head.starts_with("HTTP/1.1 101 ") => end + 4,
                None => usize::MAX,
            };
            if data.len() >= body_end {
                return Ok((head, data[end + 4..body_end].to_vec()));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no complete HTTP head"))?;
    Ok((
        String::from_utf8_lossy(&data[..end + 4]).into_owned(),
        data[end + 4..].to_vec(),
    ))
}

/// `GET path` over https: the response head and body.
pub fn https_get(addr: SocketAddr, tls: &ClientTls, path: &str) -> (String, Vec<u8>) {
    let mut stream = tls_connect(addr, tls).expect("TLS handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("write the request");
    stream.flush().expect("flush the request");
    read_http_response(&mut stream).expect("an https response")
}

/// Runs `edgews ARGS…` to its end, killing it after `limit`: its exit
/// status (`None` when it had to be killed) and its stdout and stderr
/// together.
pub fn run_edgews(args: &[&str], limit: Duration) -> (Option<ExitStatus>, String) {
    let mut child = Command::new(super::process::BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("EDGEWS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn edgews");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    (status, text)
}

/// Sends SIGHUP to process `pid`.
pub fn sighup(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP {pid}: {status}");
}
