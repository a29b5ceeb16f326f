//! A connection's life in the reactor: one value whose transitions are the
//! only way to change it.
//!
//! ```text
//!   Dialing ──connect done──▶ Handshake ──upgrade accepted──▶ Open
//!  (outbound)                (inbound starts here)              │
//!                                 │ refused, answered,          │ on_close
//!                                 │ failed, timed out           ▼
//!                                 └───────────────────────▶   Ended
//!                                                               │ engine closed,
//!                                                               ▼ output written
//!                                                            Draining ──▶ removed
//! ```
//!
//! `Open` is exactly "`on_open` was called and `on_close` not yet": the
//! reactor owes the handler one `on_close` for it. `Draining` is "our side
//! is shut down; what still arrives is read and dropped until the peer's
//! FIN" (a lingering close). The peer's half-close (`Conn::peer_eof`,
//! `Conn::hup`) is not part of it: the peer may close its side in any phase.

/// Where a connection is; see the module docs for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Outbound: the TCP connect has not completed.
    Dialing,
    /// The opening handshake is under way (either role).
    Handshake,
    /// `on_open` was called and `on_close` not yet.
    Open,
    /// The WebSocket connection is over (closed after opening, or never
    /// opened): its last output may still be queued.
    Ended,
    /// Everything is written and our side shut down; what still arrives
    /// is read and dropped until the peer's FIN (a lingering close, so the
    /// kernel does not answer unread data with a reset that would destroy
    /// our last response or close frame).
    Draining,
}

/// A connection's [`Phase`], changed only by the transitions below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifecycle(Phase);

impl Lifecycle {
    /// An accepted connection: its handshake starts now.
    pub fn inbound() -> Lifecycle {
        Lifecycle(Phase::Handshake)
    }

    /// An outbound connection: its TCP connect is under way.
    pub fn outbound() -> Lifecycle {
        Lifecycle(Phase::Dialing)
    }

    /// The phase (the predicates below are what the reactor asks most).
    pub fn phase(self) -> Phase {
        self.0
    }

    /// The TCP connect has not completed.
    #[inline]
    pub fn is_dialing(self) -> bool {
        self.0 == Phase::Dialing
    }

    /// `on_open` was called and `on_close` not yet.
    #[inline]
    pub fn is_open(self) -> bool {
        self.0 == Phase::Open
    }

    /// Our side is shut down; waiting for the peer's FIN.
    #[inline]
    pub fn is_draining(self) -> bool {
        self.0 == Phase::Draining
    }

    /// Dialing → Handshake: the TCP connect completed.
    pub fn connected(&mut self) {
        debug_assert_eq!(self.0, Phase::Dialing);
        self.0 = Phase::Handshake;
    }

    /// Handshake → Open: the upgrade was accepted (or, as a client, ours
    /// was); the caller calls `on_open`.
    pub fn open(&mut self) {
        debug_assert_eq!(self.0, Phase::Handshake);
        self.0 = Phase::Open;
    }

    /// Open → Ended. True when the connection was open: the caller owes
    /// the handler its one `on_close`. False (and no change) otherwise.
    pub fn end(&mut self) -> bool {
        let was_open = self.0 == Phase::Open;
        if was_open {
            self.0 = Phase::Ended;
        }
        was_open
    }

    /// Handshake or Ended → Draining, once the engine is closed and its
    /// output written. False (and no change) from any other phase: an open
    /// connection has not had its `on_close` yet, a dialing one has no
    /// connection to drain.
    pub fn start_draining(&mut self) -> bool {
        let can = matches!(self.0, Phase::Handshake | Phase::Ended);
        if can {
            self.0 = Phase::Draining;
        }
        can
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_connection_opens_ends_and_drains() {
        let mut life = Lifecycle::inbound();
        assert_eq!(life.phase(), Phase::Handshake);
        life.open();
        assert!(life.is_open());
        assert!(!life.start_draining(), "on_close first");
        assert!(life.end());
        assert!(!life.end(), "on_close is owed once");
        assert!(life.start_draining());
        assert!(life.is_draining());
    }

    #[test]
    fn a_refused_handshake_drains_without_opening() {
        let mut life = Lifecycle::inbound();
        assert!(!life.end());
        assert!(life.start_draining());
    }

    #[test]
    fn an_outbound_connection_dials_first() {
        let mut life = Lifecycle::outbound();
        assert!(life.is_dialing());
        assert!(!life.start_draining());
        life.connected();
        life.open();
        assert!(life.is_open());
    }
}
