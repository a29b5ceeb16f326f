//! The echo server: every message goes back to its sender.

use crate::protocol::Message;
use crate::reactor::{ConnId, Context, Handler};

/// Sends every message back to the connection it came from, as the same
/// kind. A sender that does not read its echoes is paused by backpressure,
/// so nothing is lost and memory stays bounded.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        if let Err(e) = ctx.send_message(id, &message) {
            log::debug!("{id}: echo not sent: {e}");
        }
    }
}
