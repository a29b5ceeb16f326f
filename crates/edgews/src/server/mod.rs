//! Ready-made handlers on top of the [`reactor`](crate::reactor): echo,
//! broadcast, pub/sub, chat and the proxy, each a small implementation of [`Handler`], and
//! the topic registry they share.

pub mod auth;
mod broadcast;
pub mod chat;
mod chat_bridge;
mod chat_message;
mod chat_rooms;
mod echo;
pub mod guard;
pub mod limits;
pub mod proxy;
mod proxy_health;
pub mod pubsub;
mod pubsub_control;
mod query;
pub mod topics;

pub use crate::reactor::{
    Accept, ConnId, Context, Handler, HttpResponse, OpenInfo, Reactor, SendError, ShutdownHandle,
};
pub use auth::{Authenticated, JwtAuth};
pub use broadcast::Broadcast;
pub use chat::{Chat, ChatConfig};
pub use chat_message::{parse_message, ChatMessage};
pub use chat_rooms::ChatRooms;
pub use echo::Echo;
pub use guard::{GuardConfig, GuardShared, GuardStats, Guarded, OverRate};
pub use limits::{RateLimit, TokenBucket};
pub use proxy::{Balance, Proxy, ProxyConfig, ProxyShared, Upstream};
pub use pubsub::{PubSub, PubSubConfig};
pub use pubsub_control::{check_topic, parse_control, Control};
pub use topics::{SubscribeError, TopicCensus, TopicLimits, Topics};
