//! The TLS peer (tokio-websockets behind tokio-rustls) upgrades over
//! wss:// with a certificate from its PEM files, negotiates ALPN
//! http/1.1, echoes every size of frame byte for byte, answers a ping and
//! a close; and `handshake-load` completes connections against it without
//! errors.

mod common;

use common::{masked, read_frame};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The TLS peer, and the folder of its PEM files: dropped in that order,
/// so the process is gone before its files are.
struct Peer {
    peer: common::Peer,
    dir: CertDir,
}

/// Removed when dropped.
struct CertDir(PathBuf);

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
    let peer = common::spawn(
        common::peers()
            .args([
                "tokio-websockets-tls",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
            ])
            .arg(dir.join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.join("key.pem")),
    );
    Peer {
        peer,
        dir: CertDir(dir),
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(peer: &Peer) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(peer.dir.0.join("ca.pem")).unwrap() {
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
    let tcp = common::connect(&peer.peer.addr);
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    common::send_upgrade(&mut tls, "127.0.0.1", common::KEY_HEADERS);
    tls.flush().unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let head = common::read_101(&mut tls);
    assert!(head.contains(common::ACCEPT), "{head}");
    tls
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
        // Sent in two pieces, the second after a pause: the peer must
        // assemble the frame across TLS records.
        common::write_in_two(&mut tls, &masked(0x82, &payload));
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
    let out = common::peers()
        .args([
            "handshake-load",
            "--parallel",
            "2",
            "--duration",
            "0.5",
            "--url",
        ])
        .arg(format!("wss://{}/", peer.peer.addr))
        .arg("--ca-file")
        .arg(peer.dir.0.join("ca.pem"))
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
