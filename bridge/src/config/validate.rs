//! What `ferry-bridge` refuses to start with: settings the bridge cannot work with, each
//! named with its flag.

use std::time::Duration;

use super::Config;

impl Config {
    /// Refuses settings the bridge cannot work with.
    pub fn validate(&self) -> Result<(), String> {
        if self.amqp_url.is_empty() {
            return Err("--amqp-url needs at least one amqp:// or amqps:// URL".into());
        }
        for url in &self.amqp_url {
            let url = url.trim();
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                return Err(format!(
                    "--amqp-url {} is not an amqp:// or amqps:// URL",
                    crate::broker::node_name(url)
                ));
            }
        }
        if self.max_frame_bytes < 1024 {
            return Err("--max-frame-bytes must be at least 1024".into());
        }
        if self.max_inflight == 0 {
            return Err("--max-inflight must be at least 1".into());
        }
        if self.reply_queue_pool > 100_000 {
            return Err("--reply-queue-pool must be at most 100000".into());
        }
        if self.resumable_queue_pool > 100_000 {
            return Err("--resumable-queue-pool must be at most 100000".into());
        }
        if self.default_timeout.is_zero() || self.max_timeout.is_zero() {
            return Err("--default-timeout and --max-timeout must be positive".into());
        }
        if self.amqp_heartbeat > Duration::from_secs(u64::from(u16::MAX)) {
            return Err("--amqp-heartbeat must be at most 65535s".into());
        }
        if self.session_grace > Duration::from_secs(24 * 3600) {
            return Err("--session-grace must be at most 24h".into());
        }
        if self.ping_interval.is_zero() {
            return Err("--ping-interval must be positive".into());
        }
        if self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.session_rate == 0
            || self.request_rate == 0
            || self.request_burst == 0
        {
            return Err("connection and rate limits must be at least 1".into());
        }
        if self.max_reply_bytes < 1024 || self.max_outbound_bytes < 1024 {
            return Err("--max-reply-bytes and --max-outbound-bytes must be at least 1024".into());
        }
        if self.header_read_timeout.is_zero() {
            return Err("--header-read-timeout must be positive".into());
        }
        if let Some(bad) = self.forward_claim.iter().find(|n| {
            n.is_empty()
                || n.len() > 48
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        }) {
            return Err(format!(
                "--forward-claim {bad:?} must be 1 to 48 of a-z 0-9 _ -"
            ));
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if self.cancel_exchange.len() > 255
            || !self.cancel_exchange.chars().all(name_ok)
            || self.cancel_exchange.starts_with("amq.")
        {
            return Err(
                "--cancel-exchange must be up to 255 of A-Z a-z 0-9 . _ : - and not start with amq."
                    .into(),
            );
        }
        Ok(())
    }
}
