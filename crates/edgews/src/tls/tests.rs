//! The TLS layer against an in-memory rustls peer, over a pipe that blocks
//! like a non-blocking socket: records split anywhere, a socket that takes
//! everything (no edge would come for the rest), one that takes little,
//! garbage, and `close_notify`.

use super::{TlsLayer, TlsRead, ALPN_HTTP1};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConnection, ServerConnection};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

/// One direction of a socket: bytes in flight, and how much a write may
/// add before it blocks.
#[derive(Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    /// Most bytes in flight (the peer's receive buffer); `usize::MAX`: no limit.
    capacity: usize,
}

/// One end of a connection: reads `inbound`, writes `outbound`.
struct End<'a> {
    inbound: &'a mut Pipe,
    outbound: &'a mut Pipe,
}

impl Read for End<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inbound.bytes.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.inbound.bytes.read(buf)
    }
}

impl Write for End<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.outbound.capacity - self.outbound.bytes.len();
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(buf.len());
        self.outbound.bytes.extend(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let mut client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    (Arc::new(server), Arc::new(client))
}

/// A server layer and a rustls client, and the two directions between them.
struct Pair {
    server: TlsLayer,
    client: ClientConnection,
    /// Plaintext the client received.
    received: Vec<u8>,
    to_server: Pipe,
    to_client: Pipe,
}

impl Pair {
    fn new() -> Pair {
        let (server, client) = configs();
        let mut pair = Pair {
            server: TlsLayer::new(ServerConnection::new(server).unwrap().into()),
            client: ClientConnection::new(client, "localhost".try_into().unwrap()).unwrap(),
            received: Vec::new(),
            to_server: Pipe {
                capacity: usize::MAX,
                ..Pipe::default()
            },
            to_client: Pipe {
                capacity: usize::MAX,
                ..Pipe::default()
            },
        };
        pair.client.set_buffer_limit(None);
        for _ in 0..10 {
            pair.client_io();
            let _ = pair.server_read(1 << 16);
        }
        assert!(!pair.client.is_handshaking(), "handshake done");
        pair
    }

    /// The server reads with a buffer of `size`.
    fn server_read(&mut self, size: usize) -> io::Result<(Vec<u8>, TlsRead)> {
        let mut buf = vec![0; size];
        let mut end = End {
            inbound: &mut self.to_server,
            outbound: &mut self.to_client,
        };
        let read = self.server.read(&mut end, &mut buf)?;
        let len = match read {
            TlsRead::Data { len, .. } => len,
            TlsRead::Eof => 0,
        };
        buf.truncate(len);
        Ok((buf, read))
    }

    /// The client sends what it has and takes what came.
    fn client_io(&mut self) {
        while self.client.wants_write() {
            let mut out = Vec::new();
            self.client.write_tls(&mut out).unwrap();
            self.to_server.bytes.extend(out);
        }
        let incoming: Vec<u8> = self.to_client.bytes.drain(..).collect();
        let mut input = &incoming[..];
        while !input.is_empty() {
            self.client.read_tls(&mut input).unwrap();
            self.client.process_new_packets().unwrap();
            let _ = self.client.reader().read_to_end(&mut self.received);
        }
    }

    fn client_plaintext(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.received)
    }
}

#[test]
fn the_handshake_completes_with_alpn_http1() {
    let pair = Pair::new();
    assert_eq!(pair.client.alpn_protocol(), Some(ALPN_HTTP1));
    assert!(!pair.server.connection().is_handshaking());
}

#[test]
fn plaintext_arrives_in_order_however_the_records_are_split() {
    let mut pair = Pair::new();
    let message: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    pair.client.writer().write_all(&message).unwrap();
    let mut wire = Vec::new();
    while pair.client.wants_write() {
        pair.client.write_tls(&mut wire).unwrap();
    }
    let mut got = Vec::new();
    // deliver the ciphertext in uneven pieces, reading after each
    for (i, piece) in wire.chunks(1 + 977 * 3).enumerate() {
        pair.to_server.bytes.extend(piece);
        let size = [40 << 10, 64 << 10, 256 << 10][i % 3];
        loop {
            match pair.server_read(size) {
                Ok((bytes, TlsRead::Data { .. })) => got.extend(bytes),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(got, message);
}

#[test]
fn a_read_says_drained_only_when_the_socket_is_empty() {
    let mut pair = Pair::new();
    pair.client.writer().write_all(&[1; 300_000]).unwrap();
    pair.client_io();
    // 300 KB of ciphertext: a 64 KiB buffer stages less than that
    let (first, read) = pair.server_read(64 << 10).unwrap();
    assert!(
        matches!(read, TlsRead::Data { drained: false, .. }),
        "{read:?}"
    );
    let mut total = first.len();
    let drained = loop {
        match pair.server_read(64 << 10) {
            Ok((bytes, TlsRead::Data { drained, .. })) => {
                total += bytes.len();
                if drained {
                    break true;
                }
            }
            other => panic!("{other:?}"),
        }
    };
    assert!(drained);
    assert_eq!(total, 300_000);
    assert!(pair.to_server.bytes.is_empty());
}

#[test]
fn a_write_goes_on_while_the_socket_takes_everything() {
    let mut pair = Pair::new();
    let data = vec![9u8; 200_000];
    let taken = {
        let Pair {
            server,
            to_server,
            to_client,
            ..
        } = &mut pair;
        let mut end = End {
            inbound: to_server,
            outbound: to_client,
        };
        server
            .write_vectored(&mut end, &[IoSlice::new(&data)])
            .unwrap()
    };
    assert_eq!(taken, data.len(), "no edge would come for a remainder");
    assert_eq!(pair.server.pending(), 0);
    pair.client_io();
    assert_eq!(pair.client_plaintext(), data);
}

#[test]
fn a_full_socket_leaves_at_most_one_write_inside_the_layer() {
    let mut pair = Pair::new();
    pair.to_client.capacity = pair.to_client.bytes.len() + 10_000;
    let data = vec![3u8; 500_000];
    let mut end = End {
        inbound: &mut pair.to_server,
        outbound: &mut pair.to_client,
    };
    let taken = pair
        .server
        .write_vectored(&mut end, &[IoSlice::new(&data)])
        .unwrap();
    assert!(taken <= 64 << 10, "took {taken}");
    assert!(pair.server.wants_write());
    assert!(pair.server.pending() > 0 && pair.server.pending() <= (64 << 10) + 200);
    // while ciphertext waits, nothing more is taken
    let again = pair
        .server
        .write_vectored(&mut end, &[IoSlice::new(&data[taken..])]);
    assert_eq!(again.unwrap_err().kind(), io::ErrorKind::WouldBlock);
    // room again: the flush empties the layer
    end.outbound.capacity = usize::MAX;
    pair.server.flush(&mut end).unwrap();
    assert!(!pair.server.wants_write());
    assert_eq!(pair.server.pending(), 0);
    pair.client_io();
    assert_eq!(pair.client_plaintext(), &data[..taken]);
}

#[test]
fn garbage_is_invalid_data_and_the_peer_hears_an_alert() {
    let mut pair = Pair::new();
    pair.to_server
        .bytes
        .extend(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".iter());
    let error = pair.server_read(64 << 10).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(!pair.to_client.bytes.is_empty(), "an alert was sent");
}

#[test]
fn plain_http_before_any_handshake_is_invalid_data() {
    let (server, _) = configs();
    let mut layer = TlsLayer::new(ServerConnection::new(server).unwrap().into());
    let mut inbound = Pipe {
        capacity: usize::MAX,
        ..Pipe::default()
    };
    inbound
        .bytes
        .extend(b"GET /chat HTTP/1.1\r\nHost: localhost\r\n\r\n".iter());
    let mut outbound = Pipe {
        capacity: usize::MAX,
        ..Pipe::default()
    };
    let mut end = End {
        inbound: &mut inbound,
        outbound: &mut outbound,
    };
    let error = layer.read(&mut end, &mut [0; 64 << 10]).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn close_notify_is_sent_on_close_and_read_as_eof() {
    let mut pair = Pair::new();
    let done = {
        let Pair {
            server,
            to_server,
            to_client,
            ..
        } = &mut pair;
        server
            .close(&mut End {
                inbound: to_server,
                outbound: to_client,
            })
            .unwrap()
    };
    assert!(done);
    pair.client_io();
    assert!(pair.client.process_new_packets().unwrap().peer_has_closed());
    // and the other way: the client's close_notify is the end of input
    pair.client.send_close_notify();
    pair.client_io();
    assert_eq!(pair.server_read(64 << 10).unwrap().1, TlsRead::Eof);
}

#[test]
fn tcp_closed_without_close_notify_is_the_end_of_input() {
    let mut pair = Pair::new();
    pair.client.writer().write_all(b"last words").unwrap();
    pair.client_io();
    let (bytes, _) = pair.server_read(64 << 10).unwrap();
    assert_eq!(bytes, b"last words");
    // an `End` whose reads return 0: the peer's FIN
    struct Fin;
    impl Read for Fin {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }
    impl Write for Fin {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let read = pair.server.read(&mut Fin, &mut [0; 64 << 10]).unwrap();
    assert_eq!(read, TlsRead::Eof);
}

mod files {
    use super::super::{ClientTls, TlsFiles};
    use std::path::PathBuf;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edgews-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_pair(dir: &std::path::Path, tag: &str) -> TlsFiles {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{tag}-cert.pem")),
            key: dir.join(format!("{tag}-key.pem")),
        };
        std::fs::write(&files.cert, cert.cert.pem()).unwrap();
        std::fs::write(&files.key, cert.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let files = write_pair(&dir("ok"), "a");
        let config = files.load().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn missing_empty_or_mismatched_files_are_errors_that_name_the_file() {
        let dir = dir("bad");
        let a = write_pair(&dir, "a");
        let b = write_pair(&dir, "b");
        let missing = TlsFiles {
            cert: dir.join("nope.pem"),
            key: a.key.clone(),
        };
        assert!(missing.load().unwrap_err().0.contains("nope.pem"));
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not PEM at all\n").unwrap();
        let no_cert = TlsFiles {
            cert: empty.clone(),
            key: a.key.clone(),
        };
        assert!(no_cert.load().unwrap_err().0.contains("no certificate"));
        let no_key = TlsFiles {
            cert: a.cert.clone(),
            key: empty,
        };
        assert!(no_key
            .load()
            .unwrap_err()
            .0
            .contains("no usable private key"));
        let mismatched = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        assert!(
            mismatched.load().is_err(),
            "a key that is not the certificate's"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let dir = dir("ca");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let tls = ClientTls {
            ca_file: Some(empty),
            dangerous_insecure: false,
        };
        assert!(tls.build().is_err());
        let insecure = ClientTls {
            ca_file: None,
            dangerous_insecure: true,
        };
        assert!(insecure.build().is_ok());
    }
}
