//! Connection identities: a slab index plus a generation, packed into the
//! mio token, so a late event for a closed connection can never reach the
//! connection that reused its slot.

use mio::Token;
use std::fmt;

/// Identifies one connection for its whole life; never reused while the
/// server runs (the generation would have to wrap around 2^32 times on the
/// same slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    pub(crate) fn new(index: usize, generation: u32) -> ConnId {
        ConnId {
            index: index as u32,
            generation,
        }
    }

    /// The slab index.
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    /// The token registered with mio for this connection.
    pub(crate) fn token(self) -> Token {
        Token(((self.generation as usize) << 32) | self.index as usize)
    }

    /// The connection a token names; `None` for the reserved tokens.
    pub(crate) fn from_token(token: Token) -> Option<ConnId> {
        if token.0 >= RESERVED {
            return None;
        }
        Some(ConnId {
            index: token.0 as u32,
            generation: (token.0 >> 32) as u32,
        })
    }

    /// A number for logs and maps: the generation and index together.
    pub fn as_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // by hand: one of these starts every connection's log lines
        let mut buf = [0u8; 24];
        let n = super::show::put_id(&mut buf, *self);
        f.pad(std::str::from_utf8(&buf[..n]).unwrap_or_default())
    }
}

/// Tokens at and above this are the reactor's own. Generations stay below
/// `u32::MAX`, so no connection token reaches it.
const RESERVED: usize = usize::MAX - 15;
/// The listening socket.
pub(crate) const LISTENER: Token = Token(usize::MAX);
/// The signal pipe (SIGINT, SIGTERM).
pub(crate) const SIGNALS: Token = Token(usize::MAX - 1);
/// The metrics listener (`ServerConfig::metrics_listen`).
pub(crate) const METRICS_LISTENER: Token = Token(usize::MAX - 3);
/// The SIGHUP pipe: reload the TLS certificate.
pub(crate) const HANGUP: Token = Token(usize::MAX - 4);
/// The Redis link's publishing connection (`reactor/bridge.rs`).
pub(crate) const REDIS_PUBLISHER: Token = Token(usize::MAX - 5);
/// The Redis link's subscribing connection.
pub(crate) const REDIS_SUBSCRIBER: Token = Token(usize::MAX - 6);
/// The cross-thread waker (a [`crate::reactor::ShutdownHandle`]).
pub(crate) const WAKER: Token = Token(usize::MAX - 2);
/// The loop's alarm: the next timer is due (`reactor/alarm.rs`).
pub(crate) const ALARM: Token = Token(usize::MAX - 7);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_generations_differ() {
        let a = ConnId::new(7, 1);
        let b = ConnId::new(7, 2);
        assert_eq!(ConnId::from_token(a.token()), Some(a));
        assert_ne!(a.token(), b.token());
        assert_eq!(ConnId::from_token(LISTENER), None);
        assert_eq!(ConnId::from_token(WAKER), None);
        assert_eq!(ConnId::from_token(ALARM), None);
        let high = ConnId::new(u32::MAX as usize, u32::MAX - 1);
        assert_eq!(ConnId::from_token(high.token()), Some(high));
    }
}
