//! The bridge's configuration: every CLI flag, each also readable from a `FERRY_*` env var.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::allow::Allowlist;
use crate::logging::LogFormat;

mod validate;

/// The queue type of resumable sessions' reply queues and leases (`--reply-queue-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplyQueueType {
    /// A classic durable queue on the node the bridge is connected to.
    Classic,
    /// A quorum queue, replicated over the cluster's nodes.
    Quorum,
}

/// `ferry-bridge` options. Durations use humantime (`30s`, `1h`, `250ms`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ferry-bridge",
    version,
    about = "Ferry's WebSocket-to-AMQP request-reply bridge"
)]
pub struct Config {
    /// A TOML file holding any of these settings by their long names (`max-inflight = 64`,
    /// `allow = ["reports.*"]`); flags and `FERRY_*` variables override it.
    #[arg(long, env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,

    /// Export each traced request's span over OTLP/HTTP to this collector
    /// (`http://collector:4318`; spans go to its `/v1/traces`). Off by default.
    #[arg(long, env = "FERRY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Log lines on stderr as `text` or `json` (one object per line); `RUST_LOG` filters
    /// them (default `info,lapin=warn`).
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address to listen on; the socket is at `/ws`, health at `/healthz` and `/readyz`.
    #[arg(long, env = "FERRY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address of the admin listener: `/metrics` (Prometheus), `/healthz`, `/readyz`. Keep it
    /// off the public network (`/healthz` and `/readyz` are on `--listen` too, for load
    /// balancers; `/metrics` only here).
    #[arg(long, env = "FERRY_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// AMQP URI of the broker (`?heartbeat=10` is honoured); on a RabbitMQ cluster, one per
    /// node (repeatable and/or comma-separated): the bridge connects to one, chosen at random,
    /// and moves on to the next when it fails.
    #[arg(
        long,
        env = "FERRY_AMQP_URL",
        value_delimiter = ',',
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: Vec<String>,

    /// Queue type of resumable sessions' reply queues and leases: `classic` (cheap; on a
    /// cluster, a session whose queue lived on a node that fails ends) or `quorum`
    /// (replicated: sessions survive a node's loss, at several times the broker's cost per
    /// session; docs/scaling.md has the numbers).
    #[arg(
        long,
        env = "FERRY_REPLY_QUEUE_TYPE",
        value_enum,
        default_value_t = ReplyQueueType::Classic
    )]
    pub reply_queue_type: ReplyQueueType,

    /// Reply queues for plain (not resumable) sessions kept declared and consumed ahead of
    /// demand, so a session's first request does not wait for its queue: size it to the
    /// sessions that arrive together (a shift start, a reconnect storm). Each ready queue is
    /// an idle exclusive queue on the broker. `0`: each session declares its own.
    #[arg(long, env = "FERRY_REPLY_QUEUE_POOL", default_value_t = 0)]
    pub reply_queue_pool: usize,

    /// Reply queues for resumable sessions kept declared and consumed ahead of demand: a new
    /// resumable session takes one (its session id is the queue's), so its first request
    /// waits for no declare (its resume token's lease is declared in the background). Each
    /// ready queue is an idle durable queue on the broker that expires `--session-grace` after
    /// this bridge stops consuming it. `0`: each session declares its own.
    #[arg(long, env = "FERRY_RESUMABLE_QUEUE_POOL", default_value_t = 0)]
    pub resumable_queue_pool: usize,

    /// A PEM file of certificate authorities to trust for an `amqps://` `--amqp-url`, besides
    /// the system's (a broker with a certificate of a private CA).
    #[arg(long, env = "FERRY_AMQP_CA_FILE")]
    pub amqp_ca_file: Option<PathBuf>,

    /// AMQP heartbeat interval asked of the broker (a dead broker connection is noticed within
    /// about two of them); used unless `--amqp-url` sets `heartbeat=` itself. `0s`: none.
    #[arg(long, env = "FERRY_AMQP_HEARTBEAT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub amqp_heartbeat: Duration,

    /// Destinations clients may call: exact queue names, `prefix.*`, or `*` for all.
    /// Repeatable and/or comma-separated. Without any, every destination is forbidden.
    #[arg(long = "allow", env = "FERRY_ALLOW", value_delimiter = ',')]
    pub allow: Vec<String>,

    /// Exchanges clients may scatter-gather from (GATHER publishes once to the exchange and
    /// collects every reply in a window): exact names, `prefix.*`, or `*`, each optionally
    /// with `/KEY` to bound the routing key the same way (`reports/daily.*`). Without any, none.
    #[arg(
        long = "allow-exchange",
        env = "FERRY_ALLOW_EXCHANGE",
        value_delimiter = ','
    )]
    pub allow_exchange: Vec<String>,

    /// Destinations where requests may wait for a worker: the `no_responders` check is skipped.
    #[arg(
        long = "allow-waiting",
        env = "FERRY_ALLOW_WAITING",
        value_delimiter = ','
    )]
    pub allow_waiting: Vec<String>,

    /// Largest WebSocket message accepted, in bytes.
    #[arg(long, env = "FERRY_MAX_FRAME_BYTES", default_value_t = 1_048_576)]
    pub max_frame_bytes: u32,

    /// Largest worker reply (or progress message) relayed to a socket, in bytes; a bigger
    /// final reply fails its request with `too_large` (and is dropped).
    #[arg(long, env = "FERRY_MAX_REPLY_BYTES", default_value_t = 1_048_576)]
    pub max_reply_bytes: u32,

    /// Bytes of frames one socket may have queued for writing; past them the session waits
    /// and replies stay in RabbitMQ. A socket that stops reading is closed after its write
    /// stalls for `--ping-interval` (at least 10 s).
    #[arg(long, env = "FERRY_MAX_OUTBOUND_BYTES", default_value_t = 4 * 1_048_576)]
    pub max_outbound_bytes: u32,

    /// Most pending requests per socket.
    #[arg(long, env = "FERRY_MAX_INFLIGHT", default_value_t = 1024)]
    pub max_inflight: u32,

    /// Timeout of a request that names none.
    #[arg(long, env = "FERRY_DEFAULT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub default_timeout: Duration,

    /// Largest timeout a request may ask for (larger ones are clamped).
    #[arg(long, env = "FERRY_MAX_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration)]
    pub max_timeout: Duration,

    /// On SIGTERM, how long pending requests may take to finish before sockets are closed.
    #[arg(long, env = "FERRY_DRAIN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// How long a session outlives a dropped socket: its reply queue (and the replies that
    /// arrive meanwhile) waits this long for the client to resume it, on this bridge or any
    /// other on the same broker. Every bridge sharing a broker should use the same value.
    /// `0s` turns resuming off (a session ends with its socket).
    #[arg(long, env = "FERRY_SESSION_GRACE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub session_grace: Duration,

    /// Interval of WebSocket pings; a socket that has not answered the previous ping is closed.
    #[arg(long, env = "FERRY_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// How long a new socket has to send HELLO.
    #[arg(long, env = "FERRY_HELLO_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub hello_timeout: Duration,

    /// Serve the files of this directory over HTTP (GET only; `index.html` for directories).
    #[arg(long, env = "FERRY_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// The `Content-Security-Policy` of static files. The default lets a page run its own
    /// scripts (inline ones too: import maps are inline) and WebAssembly, load from its own
    /// origin, open sockets, and keeps it out of other sites' frames.
    #[arg(
        long = "content-security-policy",
        env = "FERRY_CONTENT_SECURITY_POLICY",
        default_value = "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; \
            style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; \
            object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
    )]
    pub content_security_policy: String,

    /// A PEM certificate chain: the bridge serves `https://` and `wss://` itself (with
    /// `--tls-key`). Both files are re-read on SIGHUP. Without them, put a TLS-terminating
    /// proxy in front in production.
    #[arg(long, env = "FERRY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "FERRY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Origins allowed to open a socket (exact, e.g. `https://app.example`; `*` for any).
    /// Repeatable and/or comma-separated. Without any, a browser page must have the bridge's
    /// own origin (same-origin); clients that send no Origin (Node, Deno, workers, CLIs) are
    /// never refused for it.
    #[arg(
        long = "allowed-origin",
        env = "FERRY_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Topic exchange the bridge publishes cancel notices to (routing key: the request's
    /// destination) when a caller aborts, times out or goes away; `""` turns them off.
    #[arg(long, env = "FERRY_CANCEL_EXCHANGE", default_value = ferry_protocol::headers::CANCEL_EXCHANGE)]
    pub cancel_exchange: String,

    /// HS256: a file whose bytes are the shared secret (one trailing newline ignored; at
    /// least 32 bytes). Sockets must then send a JWT in HELLO.
    #[arg(long, env = "FERRY_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// RS256, ES256 or EdDSA: a PEM public key file (repeatable, for key rotation).
    #[arg(long, env = "FERRY_JWT_PUBLIC_KEY_FILE", value_delimiter = ',')]
    pub jwt_public_key_file: Vec<PathBuf>,

    /// A JWKS document (`{"keys": [...]}`); a token's `kid` selects the key. Re-read on SIGHUP,
    /// like every key file.
    #[arg(long, env = "FERRY_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,

    /// The `iss` every token must carry.
    #[arg(long, env = "FERRY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// An `aud` every token must name.
    #[arg(long, env = "FERRY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock skew allowed on `exp` and `nbf`.
    #[arg(long, env = "FERRY_JWT_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,

    /// A token claim to pass to workers as the header `x-ferry-claim-<NAME>` (repeatable).
    #[arg(long, env = "FERRY_FORWARD_CLAIM", value_delimiter = ',')]
    pub forward_claim: Vec<String>,

    /// A connect proxy: the queue of the app's own service the bridge asks, with each HELLO's
    /// token (and the socket's Origin and address), who is calling (`docs/protocol.md` §2.2).
    /// Excludes `--jwt-*`.
    #[arg(long, env = "FERRY_AUTH_RPC")]
    pub auth_rpc: Option<String>,

    /// How long the bridge waits for the connect proxy before refusing the socket.
    #[arg(long, env = "FERRY_AUTH_RPC_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub auth_rpc_timeout: Duration,

    /// Run without authentication on a non-loopback address (every socket may call every
    /// allowed destination). Without it, such a bridge refuses to start.
    #[arg(long, env = "FERRY_NO_AUTH")]
    pub no_auth: bool,

    /// Most open TCP connections (sockets and plain HTTP); more are answered 503 and closed.
    #[arg(long, env = "FERRY_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: u32,

    /// Most open sockets from one client address; more are refused with 429.
    #[arg(long, env = "FERRY_MAX_CONNECTIONS_PER_IP", default_value_t = 1000)]
    pub max_connections_per_ip: u32,

    /// New sockets per second one client address may open (bursts of twice this); more are
    /// refused with 429.
    #[arg(long, env = "FERRY_SESSION_RATE", default_value_t = 50)]
    pub session_rate: u32,

    /// Requests and gathers per second one socket may send (bursts of `--request-burst`);
    /// more fail with `rate_limited` and the socket stays open.
    #[arg(long, env = "FERRY_REQUEST_RATE", default_value_t = 500)]
    pub request_rate: u32,

    /// The burst of `--request-rate`.
    #[arg(long, env = "FERRY_REQUEST_BURST", default_value_t = 1000)]
    pub request_burst: u32,

    /// A proxy or load balancer (CIDR, repeatable) whose `X-Forwarded-For` names the client
    /// address the per-address limits count. Without it, the TCP peer is the client.
    #[arg(
        long = "trusted-proxy",
        env = "FERRY_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<ipnet::IpNet>,

    /// Connections from a `--trusted-proxy` start with a PROXY protocol header (v1 or v2, as
    /// HAProxy's `send-proxy`/`send-proxy-v2` write): its source address is the client's.
    /// Connections from other addresses are served as they come.
    #[arg(long, env = "FERRY_PROXY_PROTOCOL")]
    pub proxy_protocol: bool,

    /// How long a client may take to send an HTTP request's headers (and how long an idle
    /// keep-alive connection stays open).
    #[arg(long, env = "FERRY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Threads that run the sessions (tokio workers), 1 to 256. Default: half the cores, at
    /// least 1 (the AMQP client runs an I/O thread per broker connection beside them; on 2
    /// cores one worker costs a fifth less CPU per request than two, docs/benchmarks.md).
    #[arg(long, env = "FERRY_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_threads: Option<u16>,
}

impl Config {
    /// The tokio workers to run: `--worker-threads`, or half the cores (at least 1).
    pub fn workers(&self) -> usize {
        self.worker_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            usize::from,
        )
    }

    /// A configuration with every default, listening on `listen` and allowing `allow`, its
    /// admin listener on a free loopback port (so several can run in one process).
    pub fn with_defaults(listen: SocketAddr, allow: &[&str]) -> Self {
        let mut cfg = Self::parse_from(["ferry-bridge"]);
        cfg.listen = listen;
        cfg.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        cfg.allow = allow.iter().map(|s| (*s).to_owned()).collect();
        cfg
    }

    /// The compiled destination allowlist.
    pub fn allowlist(&self) -> Allowlist {
        Allowlist::new(&self.allow)
    }

    /// The compiled list of exchanges (and routing keys) clients may gather from.
    pub fn exchange_list(&self) -> crate::allow::ExchangeList {
        crate::allow::ExchangeList::new(&self.allow_exchange)
    }

    /// The compiled allowlist of destinations exempt from the `no_responders` check.
    pub fn waiting_list(&self) -> Allowlist {
        Allowlist::new(&self.allow_waiting)
    }

    /// Each `--amqp-url` with `--amqp-heartbeat` added, unless the URL names a heartbeat
    /// itself.
    pub fn broker_urls(&self) -> Vec<String> {
        let beat = self.amqp_heartbeat.as_secs();
        self.amqp_url
            .iter()
            .map(|url| {
                let url = url.trim();
                if url.contains("heartbeat=") {
                    return url.to_owned();
                }
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}heartbeat={beat}")
            })
            .collect()
    }

    /// Milliseconds of a duration, saturating at `u32::MAX` (the wire type).
    pub fn millis_u32(d: Duration) -> u32 {
        u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_is_added_unless_the_url_has_one() {
        let mut c = Config::with_defaults(
            "127.0.0.1:0".parse().unwrap_or(([127, 0, 0, 1], 0).into()),
            &[],
        );
        c.amqp_url = vec!["amqp://h:5672/%2f".into()];
        assert_eq!(c.broker_urls(), ["amqp://h:5672/%2f?heartbeat=10"]);
        c.amqp_url = vec!["amqp://h:5672/%2f?frame_max=8192".into()];
        assert_eq!(
            c.broker_urls(),
            ["amqp://h:5672/%2f?frame_max=8192&heartbeat=10"]
        );
        c.amqp_url = vec!["amqp://h:5672/%2f?heartbeat=3".into()];
        assert_eq!(c.broker_urls(), ["amqp://h:5672/%2f?heartbeat=3"]);
        c.amqp_heartbeat = Duration::ZERO;
        c.amqp_url = vec!["amqp://h/%2f".into()];
        assert_eq!(c.broker_urls(), ["amqp://h/%2f?heartbeat=0"]);
    }

    #[test]
    fn several_urls_are_repeated_or_comma_separated_and_checked() {
        let c = Config::parse_from([
            "ferry-bridge",
            "--amqp-url",
            "amqp://a:5681/%2f,amqp://b:5682/%2f",
            "--amqp-url",
            "amqps://c:5683/%2f",
        ]);
        assert_eq!(c.amqp_url.len(), 3);
        assert_eq!(c.broker_urls()[2], "amqps://c:5683/%2f?heartbeat=10");
        assert!(c.validate().is_ok());
        let c = Config::parse_from(["ferry-bridge", "--amqp-url", "http://u:secret@h:80/"]);
        let e = c.validate().err().unwrap_or_default();
        assert!(e.contains("not an amqp://"), "{e}");
        assert!(
            !e.contains("secret"),
            "the password stays out of messages: {e}"
        );
    }

    #[test]
    fn the_reply_queue_pools_are_bounded() {
        for flag in ["--reply-queue-pool", "--resumable-queue-pool"] {
            let ok = Config::parse_from(["ferry-bridge", flag, "100000"]);
            assert!(ok.validate().is_ok());
            let c = Config::parse_from(["ferry-bridge", flag, "100001"]);
            let e = c.validate().err().unwrap_or_default();
            assert!(e.contains(&format!("{flag} must be at most 100000")), "{e}");
        }
    }
}
