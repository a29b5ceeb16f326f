//! Ready-made handlers on top of the [`reactor`](crate::reactor): echo,
//! broadcast and pub/sub, each a small implementation of [`Handler`], and
//! the topic registry they share.

pub mod auth;
mod broadcast;
pub mod chat;
mod echo;
pub mod guard;
pub mod limits;
pub mod pubsub;
pub mod topics;

pub use crate::reactor::{
    Accept, ConnId, Context, Handler, HttpResponse, OpenInfo, Reactor, SendError, ShutdownHandle,
};
pub use auth::{Authenticated, JwtAuth};
pub use broadcast::Broadcast;
pub use chat::{Chat, ChatConfig};
pub use echo::Echo;
pub use guard::{GuardConfig, GuardStats, Guarded, OverRate};
pub use limits::{RateLimit, TokenBucket};
pub use pubsub::PubSub;
pub use topics::Topics;
