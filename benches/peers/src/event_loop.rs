//! The event loop every floor runs (`floor`, `relay-floor`,
//! `connect-floor`, `fanout-floor`): one `Poll`, the listener registered
//! for readability under [`LISTENER`] and announced, then turns of
//! `epoll_wait` until an error. What a floor does with each turn's events
//! (accepting, reading, writing) stays its own.

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;

/// The listener's token; every other token is the floor's own.
pub const LISTENER: Token = Token(usize::MAX);

/// Binds `addr` with `bind`, announces it, and hands each turn's events to
/// `turn`, with the poll (to register what is accepted) and the listener.
/// Returns only on an error from `epoll_wait` (an interrupted wait is
/// retried) or from setting up.
pub fn run(
    addr: SocketAddr,
    bind: impl FnOnce(SocketAddr) -> io::Result<TcpListener>,
    mut turn: impl FnMut(&Poll, &TcpListener, &Events),
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    crate::announce(listener.local_addr()?)?;
    let mut events = Events::with_capacity(1024);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        turn(&poll, &listener, &events);
    }
}
