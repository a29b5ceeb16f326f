//! Redis pub/sub across instances: several edgews processes that share a
//! Redis server share one set of topics (`--redis URL`).
//!
//! - [`resp`]: a sans-I/O RESP2 codec (commands out, replies and pushes in).
//! - [`url`]: `redis://[:password@]host:port[/db]` and `rediss://`.
//! - [`envelope`]: what one cross-instance message carries (instance id,
//!   per-instance sequence number per topic, kind, topic, payload).

pub mod backoff;
pub mod envelope;
pub mod link;
pub mod resp;
pub mod sequence;
pub mod url;
