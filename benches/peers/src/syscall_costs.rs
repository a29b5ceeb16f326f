//! `syscall-costs`: what the system calls of a connection's life cost on
//! this machine when they find nothing to do, timed in a loop. The
//! figure that matters is `accept` on an empty backlog: Linux sets up a
//! socket and a file for the connection before it looks at the queue, so
//! the `accept` that ends an edge-triggered listener's drain costs far
//! more than an `epoll_wait` or a `recv` that finds nothing. edgews and
//! the floors register their listeners level-triggered so that no
//! `accept` fails (docs/benchmarks.md, "Connection setup", "no `accept`
//! fails").
//!
//! Each line: the call, then nanoseconds per call, the median of five
//! batches (the lowest and highest in brackets). Pin it to one CPU, as
//! the servers are: `taskset -c 0 edgews-peers syscall-costs`.

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Calls per batch.
const CALLS: u32 = 100_000;
/// Batches per call; the median is reported.
const BATCHES: usize = 5;

/// Times each call and prints the table.
pub fn run() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    // a connected socket with nothing to read, for `recv`
    let other = TcpListener::bind("127.0.0.1:0")?;
    let _client = TcpStream::connect(other.local_addr()?)?;
    let (mut idle, _) = other.accept()?;
    idle.set_nonblocking(true)?;
    let mut poll = mio::Poll::new()?;
    let mut events = mio::Events::with_capacity(8);
    let mut buf = [0u8; 64];
    println!("call (finding nothing to do)            ns per call, median of {BATCHES} x {CALLS} [min..max]");
    report("accept4, empty backlog (EAGAIN)", || {
        expect_would_block(listener.accept().map(drop))
    })?;
    report("recv, nothing to read (EAGAIN)", || {
        expect_would_block(idle.read(&mut buf).map(drop))
    })?;
    report("epoll_wait, nothing ready (timeout 0)", || {
        poll.poll(&mut events, Some(Duration::ZERO))
    })?;
    report("getppid (the cheapest system call)", || {
        std::hint::black_box(std::os::unix::process::parent_id());
        Ok(())
    })?;
    Ok(())
}

/// `Ok` for `WouldBlock`; the call was meant to find nothing.
fn expect_would_block(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
        Ok(()) => Err(io::Error::other("the call found something to do")),
    }
}

/// Runs `call` in batches and prints its line.
fn report(name: &str, mut call: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    let mut batches = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let start = Instant::now();
        for _ in 0..CALLS {
            call()?;
        }
        batches.push(start.elapsed().as_nanos() as f64 / f64::from(CALLS));
    }
    batches.sort_by(f64::total_cmp);
    let (min, median, max) = (batches[0], batches[BATCHES / 2], batches[BATCHES - 1]);
    println!("{name:<40} {median:>8.0}  [{min:.0}..{max:.0}]");
    Ok(())
}
