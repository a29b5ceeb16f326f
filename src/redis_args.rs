//! The `--redis*` options of the modes that share topics across instances
//! (broadcast, pubsub, chat).

use crate::cli::{parse_size, BadConfig};
use clap::Args;
use edgews::redis::link::LinkConfig;
use edgews::redis::url::RedisUrl;
use std::path::PathBuf;

/// Options for sharing broadcasts, topics and rooms through Redis.
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Share broadcasts, topics and rooms with every edgews instance using
    /// this Redis server: redis://[[user]:password@]host[:port][/db], or
    /// rediss:// over TLS. Without it the instance stands alone.
    // parsed in `link_config`, not by clap, whose errors quote the value
    // (and the password with it)
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Put before every Redis channel name (broadcast, topic:NAME,
    /// room:NAME), so that deployments can share one Redis server.
    #[arg(long, default_value = "edgews:", value_name = "PREFIX")]
    pub redis_prefix: String,
    /// Largest message sent to other instances (at most 16MiB: Redis cuts
    /// subscribers at 32 MB of output); larger ones reach this instance's
    /// clients only, counted in edgews_redis_oversize_total.
    #[arg(long, default_value = "1MiB", value_parser = parse_size, value_name = "SIZE")]
    pub redis_max_message: u64,
    /// Bytes waiting to go to Redis at most; a publication that finds the
    /// queue full is not sent to other instances (counted in
    /// edgews_redis_lost_out_total, and seen as a gap by them).
    #[arg(long, default_value = "8MiB", value_parser = parse_size, value_name = "SIZE")]
    pub redis_queue: u64,
    /// File holding the Redis password (its first line), instead of the
    /// URL's: the command line is visible to every local user.
    #[arg(long, value_name = "FILE")]
    pub redis_password_file: Option<PathBuf>,
    /// PEM file of the certificate authorities that verify a rediss://
    /// server (default: the system's roots).
    #[arg(long, value_name = "PEM")]
    pub redis_ca_file: Option<PathBuf>,
}

impl RedisArgs {
    /// The link's configuration, when `--redis` is given; `permanent_keys`
    /// are subscribed for the link's whole life.
    pub fn link_config(&self, permanent_keys: &[&str]) -> Result<Option<LinkConfig>, BadConfig> {
        let Some(url) = &self.redis else {
            return Ok(None);
        };
        let mut url: RedisUrl = url
            .parse()
            .map_err(|e| BadConfig(format!("invalid configuration: --redis: {e}")))?;
        if let Some(path) = &self.redis_password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                BadConfig(format!(
                    "invalid configuration: --redis-password-file {}: {e}",
                    path.display()
                ))
            })?;
            let password = text.lines().next().unwrap_or("").to_string();
            if password.is_empty() {
                return Err(BadConfig(format!(
                    "invalid configuration: --redis-password-file {} is empty",
                    path.display()
                )));
            }
            url.password = Some(password);
        }
        let mut config = LinkConfig::new(url);
        config.prefix = self.redis_prefix.clone();
        config.max_message = usize::try_from(self.redis_max_message).unwrap_or(usize::MAX);
        config.queue_bytes = usize::try_from(self.redis_queue).unwrap_or(usize::MAX);
        config.permanent_keys = permanent_keys.iter().map(|k| k.to_string()).collect();
        config.validate().map_err(BadConfig)?;
        Ok(Some(config))
    }
}
