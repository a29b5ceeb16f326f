//! The event loop every floor runs (`floor`, `relay-floor`,
//! `connect-floor`, `fanout-floor`): one `Poll`, the listener registered
//! for readability under [`LISTENER`] and announced, then turns of
//! `epoll_wait` until an error. What a floor does with each turn's events
//! (accepting, reading, writing) stays its own.
//!
//! The listener is registered level-triggered, as edgews registers its
//! own (`register_listener` in its reactor): reported on every turn while
//! a connection waits, it is accepted from once per report ([`accept`]),
//! and no `accept` ends in `EAGAIN`, which costs more on Linux than a
//! whole `epoll_wait`. mio registers edge-triggered only, hence rustix.

use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use rustix::event::epoll;
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
    let listener = bind(addr)?;
    let data = epoll::EventData::new_u64(LISTENER.0 as u64);
    epoll::add(poll.registry(), &listener, data, epoll::EventFlags::IN)?;
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

/// Takes the one connection the listener was reported for, if it is
/// still there: `None` on `EAGAIN` and on a connection gone before it was
/// taken; other errors (out of descriptors and the like) are printed, and
/// the next turn reports the listener again.
pub fn accept(listener: &TcpListener, who: &str) -> Option<mio::net::TcpStream> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Some(stream),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => return None,
            Err(e) => {
                eprintln!("{who}: accept: {e}");
                return None;
            }
        }
    }
}
