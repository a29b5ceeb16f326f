//! The broadcast server over real loopback TCP: every client hears every
//! other client, in order per sender; a slow consumer is cut off with 1008
//! while the others keep receiving everything.
//!
//! Every blocking read has a timeout, so a broken server fails a test
//! instead of hanging it.

mod support;

use edgews::protocol::frame::{decode_header, OpCode};
use edgews::protocol::mask::apply_mask;
use edgews::server::Broadcast;
use edgews::{ProtocolConfig, ServerConfig};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::{client_frame, upgrade_request, Frame, TestServer};

/// A raw WebSocket peer whose frame reader keeps a cursor into its buffer,
/// so reading thousands of small frames costs no quadratic copying.
struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Peer {
    /// Connects and completes the opening handshake.
    fn open(addr: SocketAddr) -> Peer {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut peer = Peer {
            stream,
            buf: Vec::new(),
            start: 0,
        };
        peer.send(&upgrade_request(addr, "/"));
        let end = loop {
            if let Some(i) = peer.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(peer.fill() > 0, "EOF during the handshake");
        };
        let head = String::from_utf8_lossy(&peer.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "upgrade refused: {head}");
        peer.start = end;
        peer
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads more; 0 at EOF, on a reset or on the read timeout.
    fn fill(&mut self) -> usize {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; 64 << 10];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(_) => 0,
        }
    }

    /// The next frame; `None` at EOF or after the read timeout.
    fn read_frame(&mut self) -> Option<Frame> {
        loop {
            let avail = &self.buf[self.start..];
            match decode_header(avail, 0) {
                Ok(Some((h, n))) if avail.len() >= n + h.len as usize => {
                    let total = n + h.len as usize;
                    let mut payload = avail[n..total].to_vec();
                    if let Some(key) = h.mask() {
                        apply_mask(&mut payload, key, 0);
                    }
                    self.start += total;
                    return Some(Frame {
                        fin: h.fin,
                        opcode: h.opcode,
                        payload,
                    });
                }
                Ok(_) => {}
                Err(e) => panic!("the server sent an invalid frame: {e}"),
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// Sends a close and expects the server's close reply as the very next
    /// frame (so nothing unexpected was still on its way).
    fn close_cleanly(&mut self, who: &str) {
        self.send(&client_frame(true, OpCode::Close, &1000u16.to_be_bytes()));
        let frame = self.read_frame();
        let code = frame.as_ref().and_then(Frame::close_code);
        assert_eq!(
            code,
            Some(1000),
            "{who}: expected the close reply, got {frame:?}"
        );
    }
}

/// The payload of message `seq` of client `sender`: names both, and its
/// length varies (some frames cross the 125/126 boundary).
fn payload(sender: usize, seq: usize) -> Vec<u8> {
    let mut p = format!("{sender}:{seq}:").into_bytes();
    let pad = (sender * 13 + seq * 7) % 150;
    p.extend(std::iter::repeat_n(b'.', pad));
    p
}

fn parse(frame: &Frame) -> (usize, usize) {
    let text = String::from_utf8_lossy(&frame.payload);
    let mut parts = text.split(':');
    let sender = parts.next().and_then(|s| s.parse().ok());
    let seq = parts.next().and_then(|s| s.parse().ok());
    match (sender, seq) {
        (Some(sender), Some(seq)) => (sender, seq),
        _ => panic!("unexpected message {text:?}"),
    }
}

/// The `count` messages of client `me`, text and binary alternating, in one write.
fn send_all(peer: &mut Peer, me: usize, count: usize) {
    let mut bytes = Vec::new();
    for seq in 0..count {
        let opcode = if seq % 2 == 0 {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        bytes.extend(client_frame(true, opcode, &payload(me, seq)));
    }
    peer.send(&bytes);
}

/// Reads what client `me` must receive when each of `clients` senders sends
/// `count` messages; checks each is a broadcast of the right kind, in order
/// per sender, and that its own come back only with `include_sender`.
fn receive_all(peer: &mut Peer, me: usize, clients: usize, count: usize, include_sender: bool) {
    let senders = if include_sender { clients } else { clients - 1 };
    let mut next: HashMap<usize, usize> = HashMap::new();
    for received in 0..senders * count {
        let frame = peer.read_frame().unwrap_or_else(|| {
            panic!(
                "client {me}: only {received} of {} messages arrived",
                senders * count
            )
        });
        let (sender, seq) = parse(&frame);
        assert!(
            include_sender || sender != me,
            "client {me} received its own message {seq}"
        );
        assert!(sender < clients, "client {me}: unknown sender {sender}");
        let expected = next.entry(sender).or_insert(0);
        assert_eq!(
            seq, *expected,
            "client {me}: message {seq} of {sender} out of order"
        );
        *expected += 1;
        let opcode = if seq % 2 == 0 {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        assert_eq!(frame.opcode, opcode, "client {me}: kind of {sender}:{seq}");
        assert!(frame.fin);
        assert_eq!(frame.payload, payload(sender, seq));
    }
    assert_eq!(next.len(), senders, "client {me}: senders heard");
    assert!(next.values().all(|&n| n == count));
}

/// `clients` clients, each sending `count` messages from `threads` threads;
/// every client must receive exactly what it should.
fn broadcast_round(clients: usize, count: usize, threads: usize, include_sender: bool) {
    let server = TestServer::start(ServerConfig::default(), move || Broadcast {
        include_sender,
    });
    let mut groups: Vec<Vec<(usize, Peer)>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..clients {
        groups[i % threads].push((i, Peer::open(server.addr)));
    }
    // every client is open (it saw its 101) before anyone sends
    let workers: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            thread::spawn(move || {
                for (me, peer) in group.iter_mut() {
                    send_all(peer, *me, count);
                }
                for (me, peer) in group.iter_mut() {
                    receive_all(peer, *me, clients, count, include_sender);
                }
                for (me, peer) in group.iter_mut() {
                    peer.close_cleanly(&format!("client {me}"));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a client saw something wrong");
    }
    let stats = server.stop();
    assert_eq!(stats.opened, clients as u64);
    assert_eq!(stats.messages_in, (clients * count) as u64);
    assert_eq!(stats.slow_consumer_closes, 0);
}

#[test]
fn three_clients_each_receive_every_other_clients_messages_in_order_but_not_their_own() {
    broadcast_round(3, 50, 3, false);
}

#[test]
fn with_include_sender_three_clients_also_receive_their_own_messages_in_order() {
    broadcast_round(3, 50, 3, true);
}

#[test]
fn five_hundred_clients_each_receive_every_other_clients_messages_in_order() {
    let started = Instant::now();
    broadcast_round(500, 3, 4, false);
    let elapsed = started.elapsed();
    eprintln!("500 clients x 3 messages broadcast in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(45), "took {elapsed:?}");
}

#[test]
fn a_consumer_that_never_reads_is_closed_with_1008_while_the_others_receive_everything() {
    const MSG: usize = 16 << 10;
    const COUNT: usize = 1024; // 16 MiB: far more than the kernel buffers hold
    const BATCH: usize = 2; // at most 32 KiB ahead of the readers: under the cap
    let config = ServerConfig {
        max_backpressure: 64 << 10,
        protocol: ProtocolConfig {
            // the slow consumer's close frame waits behind its queue: keep it
            close_timeout: Duration::from_secs(60),
            ..ProtocolConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, Broadcast::default);
    let mut slow = Peer::open(server.addr);
    let mut flooder = Peer::open(server.addr);
    let observers: Vec<Peer> = (0..2).map(|_| Peer::open(server.addr)).collect();
    let body = |seq: usize| {
        let mut p = vec![(seq % 251) as u8; MSG];
        p[..8].copy_from_slice(&(seq as u64).to_le_bytes());
        p
    };

    let progress: Vec<Arc<AtomicUsize>> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let readers: Vec<_> = observers
        .into_iter()
        .zip(progress.clone())
        .enumerate()
        .map(|(k, (mut peer, progress))| {
            thread::spawn(move || {
                for seq in 0..COUNT {
                    let frame = peer.read_frame().unwrap_or_else(|| {
                        panic!("observer {k}: message {seq} of {COUNT} never came")
                    });
                    assert_eq!(
                        frame.opcode,
                        OpCode::Binary,
                        "observer {k}: at message {seq} got {frame:?}"
                    );
                    assert!(frame.payload == body(seq), "observer {k}: message {seq}");
                    progress.store(seq + 1, Ordering::SeqCst);
                }
                peer.close_cleanly(&format!("observer {k}"));
            })
        })
        .collect();

    for first in (0..COUNT).step_by(BATCH) {
        let mut bytes = Vec::new();
        for seq in first..first + BATCH {
            bytes.extend(client_frame(true, OpCode::Binary, &body(seq)));
        }
        flooder.send(&bytes);
        let deadline = Instant::now() + Duration::from_secs(20);
        while progress
            .iter()
            .any(|p| p.load(Ordering::SeqCst) < first + BATCH)
        {
            assert!(
                Instant::now() < deadline,
                "observers stuck at {:?} of {}",
                progress
                    .iter()
                    .map(|p| p.load(Ordering::SeqCst))
                    .collect::<Vec<_>>(),
                first + BATCH
            );
            assert!(
                !readers
                    .iter()
                    .zip(&progress)
                    .any(|(r, p)| r.is_finished() && p.load(Ordering::SeqCst) < first + BATCH),
                "an observer gave up"
            );
            thread::sleep(Duration::from_micros(200));
        }
    }
    for r in readers {
        r.join().expect("an observer missed something");
    }

    // The slow consumer now reads: a prefix of the flood, in order, then 1008.
    let mut received = 0;
    let code = loop {
        let frame = slow.read_frame().unwrap_or_else(|| {
            panic!("slow consumer: EOF after {received} messages, no close frame")
        });
        if let Some(code) = frame.close_code() {
            break code;
        }
        assert_eq!(frame.opcode, OpCode::Binary);
        assert!(
            frame.payload == body(received),
            "slow consumer: message {received}"
        );
        received += 1;
    };
    eprintln!("slow consumer got {received} of {COUNT} messages, then close {code}");
    assert_eq!(code, 1008, "the slow consumer's close code");
    assert!(received < COUNT, "the slow consumer was never cut off");
    slow.send(&client_frame(true, OpCode::Close, &1008u16.to_be_bytes()));
    slow.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert!(
        slow.read_frame().is_none(),
        "the server sent more after its close"
    );
    flooder.close_cleanly("flooder");
    drop((slow, flooder));
    let stats = server.stop();
    assert_eq!(stats.slow_consumer_closes, 1);
    assert_eq!(stats.messages_in, COUNT as u64);
}
