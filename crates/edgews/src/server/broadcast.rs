//! The broadcast server: every message goes to every other open connection.

use crate::protocol::Message;
use crate::reactor::{ConnId, Context, Handler};

/// Relays each message to every other open connection (and to the sender
/// too when `include_sender` is set). The frame is encoded once and its
/// bytes shared by all recipients. A recipient that falls more than
/// `max_backpressure` bytes behind is closed with 1008.
#[derive(Debug, Default, Clone, Copy)]
pub struct Broadcast {
    /// Whether the sender receives its own messages too.
    pub include_sender: bool,
}

impl Handler for Broadcast {
    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        let except = (!self.include_sender).then_some(id);
        if let Err(e) = ctx.broadcast_message(&message, except) {
            log::debug!("{id}: broadcast not sent: {e}");
        }
    }
}
