//! Ready-made handlers on top of the [`reactor`](crate::reactor): echo and
//! broadcast. Each is a small implementation of [`Handler`].

mod broadcast;
mod echo;

pub use crate::reactor::{
    ConnId, Context, Handler, HttpResponse, OpenInfo, Reactor, SendError, ShutdownHandle,
};
pub use broadcast::Broadcast;
pub use echo::Echo;
