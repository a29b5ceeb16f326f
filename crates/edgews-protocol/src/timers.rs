//! The clock-driven inputs of [`Connection`] and the ways it ends:
//! timeouts, end of file, finishing and failing.

use super::close::CloseCode;
use super::connection::{CloseCause, Closed, Connection, Event, Role, State};
use super::error::{HandshakeError, ProtocolError, ResponseError};
use super::frame::OpCode;
use std::time::Instant;

impl Connection {
    /// When [`handle_timeout`](Connection::handle_timeout) should next be
    /// called: the handshake deadline, the keep-alive ping or its pong
    /// deadline, or the close deadline. `None` when no timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = &self.config;
        match self.state {
            State::Connecting => self
                .handshake
                .as_ref()
                .map(|h| h.started + c.handshake_timeout),
            State::Open => c.ping_interval.map(|interval| {
                if self.awaiting_pong {
                    self.timer_start + c.pong_timeout
                } else {
                    self.last_activity + interval
                }
            }),
            State::Closing => Some(self.timer_start + c.close_timeout),
            State::Closed => None,
        }
    }

    /// Which of the deadlines [`poll_timeout`](Connection::poll_timeout)
    /// reports: it changes with the state and when a keep-alive ping starts
    /// or stops waiting for its answer. While the phase stays the same, the
    /// deadline never moves earlier (traffic only postpones the keep-alive
    /// ping), so a driver whose timer is armed at the deadline it last saw
    /// may skip asking again until the phase changes or the timer fires:
    /// at worst the timer fires early, which
    /// [`handle_timeout`](Connection::handle_timeout) ignores.
    pub fn timer_phase(&self) -> u8 {
        let state = match self.state {
            State::Connecting => 0,
            State::Open => 1,
            State::Closing => 2,
            State::Closed => 3,
        };
        (state << 1) | u8::from(self.awaiting_pong)
    }

    /// Acts on timers due at `now`: fails a handshake that took too long
    /// (a server answers 408), sends a keep-alive ping after silence, fails
    /// the connection with 1011 when that ping goes unanswered, and gives up
    /// on a closing handshake the peer does not finish. Calling it early is
    /// harmless: traffic since the timer was set makes it do nothing.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Event<'static>> {
        if self.poll_timeout().is_none_or(|due| now < due) {
            return None;
        }
        match self.state {
            State::Connecting => {
                self.state = State::Closed;
                Some(match self.role {
                    Role::Server => {
                        let hs = self.handshake.as_ref().is_some_and(|h| !h.awaiting_answer);
                        if hs {
                            super::handshake::write_rejection(out, &HandshakeError::Timeout);
                        }
                        Event::Rejected(HandshakeError::Timeout)
                    }
                    Role::Client => Event::ConnectFailed(ResponseError::Timeout),
                })
            }
            State::Open if self.awaiting_pong => {
                let code = CloseCode::INTERNAL_ERROR;
                self.write_close(code, "ping timeout", out);
                Some(self.finish(code, "ping timeout", CloseCause::PingTimeout))
            }
            State::Open => {
                self.write_frame(true, OpCode::Ping, b"", out);
                self.awaiting_pong = true;
                self.timer_start = now;
                None
            }
            State::Closing => Some(self.finish(CloseCode::ABNORMAL, "", CloseCause::CloseTimeout)),
            State::Closed => None,
        }
    }

    /// The transport ended (the peer closed TCP, or it broke).
    pub fn handle_eof(&mut self, _now: Instant) -> Option<Event<'static>> {
        match self.state {
            State::Closed => None,
            State::Connecting => {
                self.state = State::Closed;
                Some(match self.role {
                    Role::Server => Event::Rejected(HandshakeError::Malformed(
                        "connection closed during handshake",
                    )),
                    Role::Client => Event::ConnectFailed(ResponseError::Malformed(
                        "connection closed during handshake",
                    )),
                })
            }
            State::Open | State::Closing => {
                Some(self.finish(CloseCode::ABNORMAL, "", CloseCause::Eof))
            }
        }
    }

    /// Enters `Closed` and builds the one `Closed` event.
    pub(crate) fn finish(
        &mut self,
        code: CloseCode,
        reason: &str,
        cause: CloseCause,
    ) -> Event<'static> {
        self.state = State::Closed;
        self.partial = None;
        self.deflate = None; // zlib state goes now, not when the caller drops us
        Event::Closed(Closed {
            code,
            reason: reason.to_string(),
            cause,
        })
    }

    /// Fails the connection (§7.1.7): sends the close frame the error
    /// deserves, unless ours was already sent, and closes.
    pub(crate) fn fail(&mut self, error: ProtocolError, out: &mut Vec<u8>) -> Event<'static> {
        let code = error.close_code();
        let reason = error.to_string();
        if self.state == State::Open {
            self.write_close(code, &reason, out);
        }
        self.finish(code, &reason, CloseCause::Failed(error))
    }
}
