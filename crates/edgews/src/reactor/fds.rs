//! File descriptors as a resource an attacker can exhaust: raising the soft
//! `RLIMIT_NOFILE` to the hard limit at start, and a reserve descriptor
//! that lets the reactor answer the connections waiting in the backlog when
//! `accept` fails with `EMFILE` (the libev/nginx "spare fd" technique).
//! Without it those clients hang until they time out, since the listener
//! stays readable and nothing can be accepted.

use super::conn::Hub;
use crate::protocol::HandshakeError;
use std::fs::File;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// The soft and hard `RLIMIT_NOFILE` before and after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimits {
    /// The soft limit found at start.
    pub soft_before: u64,
    /// The soft limit now: the hard limit, if raising it worked.
    pub soft: u64,
    /// The hard limit (only a privileged process can raise it).
    pub hard: u64,
}

/// Raises this process's soft limit on open files to its hard limit, so
/// that `--max-connections` is not silently capped by a shell's default
/// (often 1,024). Returns the limits before and after.
pub fn raise_fd_limit() -> io::Result<FdLimits> {
    use rlimit::Resource;
    let (soft_before, hard) = Resource::NOFILE.get()?;
    if soft_before < hard {
        Resource::NOFILE.set(hard, hard)?;
    }
    let (soft, hard) = Resource::NOFILE.get()?;
    Ok(FdLimits {
        soft_before,
        soft,
        hard,
    })
}

/// The most often the "out of descriptors" warning is logged.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// One descriptor held in reserve (`/dev/null`), and the rate limit of the
/// warning that says it was used.
#[derive(Debug)]
pub(super) struct Reserve {
    file: Option<File>,
    last_warning: Option<Instant>,
    refused_since_warning: u64,
}

impl Reserve {
    /// Opens the reserve descriptor.
    pub fn new() -> Reserve {
        Reserve {
            file: File::open("/dev/null").ok(),
            last_warning: None,
            refused_since_warning: 0,
        }
    }

    /// Out of descriptors with a client waiting: frees the reserve,
    /// accepts that client, answers 503 and closes it, then takes the
    /// reserve back. Returns false when that was impossible (no reserve,
    /// or the accept failed too): the caller then pauses accepting.
    pub fn refuse_one(&mut self, listener: &mio::net::TcpListener, hub: &mut Hub) -> bool {
        if self.file.take().is_none() {
            return false;
        }
        let refused = match listener.accept() {
            Ok((mut socket, _peer)) => {
                // read what it sent (so closing does not reset the answer)
                let mut sink = [0u8; 4096];
                let _ = socket.read(&mut sink);
                let mut answer = Vec::new();
                HandshakeError::ServerFull.write_response(&mut answer);
                let _ = socket.write(&answer);
                let _ = socket.shutdown(std::net::Shutdown::Write);
                true
            }
            Err(_) => false,
        };
        self.file = File::open("/dev/null").ok();
        if refused {
            hub.stats.fd_exhaustion_refusals += 1;
            self.refused_since_warning += 1;
            self.warn(hub.now);
        }
        refused
    }

    fn warn(&mut self, now: Instant) {
        if self
            .last_warning
            .is_some_and(|at| now.duration_since(at) < WARN_EVERY)
        {
            return;
        }
        log::warn!(
            "out of file descriptors: {} client(s) answered 503 and closed \
             (raise the hard RLIMIT_NOFILE or lower --max-connections)",
            self.refused_since_warning
        );
        self.last_warning = Some(now);
        self.refused_since_warning = 0;
    }
}
