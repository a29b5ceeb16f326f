//! The TLS peer (tokio-websockets behind tokio-rustls) upgrades over
//! wss:// with a certificate from its PEM files, negotiates ALPN
//! http/1.1, echoes every size of frame byte for byte, answers a ping and
//! a close; and `handshake-load` completes connections against it without
//! errors.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct Peer(Child, String, PathBuf);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.2);
    }
}

/// A throwaway CA and a certificate it signed for 127.0.0.1, as
/// examples/tls_cert.rs writes them: ca.pem, cert.pem (leaf, CA), key.pem.
fn certs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "peers test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf
        .signed_by(&key, &rcgen::Issuer::new(ca, ca_key))
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem() + &ca_cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

fn start(name: &str) -> Peer {
    let dir = std::env::temp_dir().join(format!("edgews-peers-tls-{}-{name}", std::process::id()));
    certs(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgews-peers"))
        .args([
            "tokio-websockets-tls",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
        ])
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the TLS peer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .expect("announce")
        .to_string();
    Peer(child, addr, dir)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(peer: &Peer) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(peer.2.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(&peer.1).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    tls.flush().unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    tls
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![first];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

fn read_frame(stream: &mut impl Read) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are unmasked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).unwrap();
            u16::from_be_bytes(n) as usize
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).unwrap();
            u64::from_be_bytes(n) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

#[test]
fn echoes_over_tls() {
    let peer = start("echo");
    let mut tls = connect(&peer);
    tls.write_all(&masked(0x81, b"hello over tls")).unwrap();
    tls.flush().unwrap();
    assert_eq!(read_frame(&mut tls), (0x81, b"hello over tls".to_vec()));
    for size in [0, 20, 125, 126, 1024, 65535, 65536, 1 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let frame = masked(0x82, &payload);
        // Sent in two pieces, the second after a pause: the peer must
        // assemble the frame across TLS records.
        let cut = frame.len() / 2;
        tls.write_all(&frame[..cut]).unwrap();
        tls.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        tls.write_all(&frame[cut..]).unwrap();
        tls.flush().unwrap();
        let (first, echoed) = read_frame(&mut tls);
        assert_eq!(first, 0x82, "size {size}");
        assert!(echoed == payload, "size {size}: echo differs");
    }
    tls.write_all(&masked(0x89, b"hi")).unwrap();
    tls.flush().unwrap();
    assert_eq!(read_frame(&mut tls), (0x8A, b"hi".to_vec()));
    tls.write_all(&masked(0x88, &[0x03, 0xE8])).unwrap();
    tls.flush().unwrap();
    assert_eq!(read_frame(&mut tls), (0x88, vec![0x03, 0xE8]));
}

#[test]
fn handshake_load_completes_connections() {
    let peer = start("handshake");
    let out = Command::new(env!("CARGO_BIN_EXE_edgews-peers"))
        .args([
            "handshake-load",
            "--parallel",
            "2",
            "--duration",
            "0.5",
            "--url",
        ])
        .arg(format!("wss://{}/", peer.1))
        .arg("--ca-file")
        .arg(peer.2.join("ca.pem"))
        .output()
        .expect("run handshake-load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.contains("\"errors\":0,"), "{line}");
    assert!(!line.contains("\"handshakes\":0,"), "{line}");
}
