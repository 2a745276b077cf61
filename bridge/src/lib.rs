//! Ferry bridge: relays WebSocket requests to AMQP queues and routes every reply back to
//! the socket that asked.
//!
//! Map of the crate (one responsibility per file):
//! - [`config`]: CLI flags / `FERRY_*` env vars; [`config_file`]: `--config ferry.toml` and
//!   `ferry-bridge config`. [`allow`]: destination allowlists.
//! - [`auth`]: who is calling (JWT verification, development tokens); [`limits`]: connection
//!   caps, per-address limits and the per-socket request rate.
//! - [`http`]: the listening port (`/ws`, `/healthz`, `/readyz`, static files via
//!   [`static_files`]); [`handshake`]: upgrade checks, Origin, subprotocol negotiation.
//! - [`resume`]: resume tokens and who holds a session; [`session`]: one task per socket
//!   (HELLO/WELCOME in [`session::hello`], requests, gathers, replies, deadlines, cancel
//!   notices, ACCEPTED reports, drain, detaching a resumable session);
//!   [`outbound`]: its writer task (bounded queue, pings); [`pending`]: its pending map;
//!   [`span`]: a traced request's span (W3C Trace Context), exported by [`otlp`].
//! - [`broker`]: the live broker links and their manager (one node of a cluster at a time,
//!   failing over to the next); [`broker::port`]: the seam sessions reach the broker through
//!   (an in-memory fake behind it in the session loop's unit tests); [`broker::publish`], [`broker::probe`], [`broker::replies`]
//!   (reply queues, classic or quorum); [`amqp_props`]: the worker contract (properties and
//!   headers); [`frames`]: what replies become on the socket (REPLY, PROGRESS, ERROR, PART,
//!   DONE).
//! - [`tls`]: `--tls-cert`/`--tls-key` (rustls), re-read on SIGHUP; [`proxy_protocol`]: the
//!   PROXY header of a trusted load balancer.
//! - [`error`]: `BridgeError` and its wire codes; [`stats`]: metrics (`/metrics`);
//!   [`logging`]: `--log-format`, and what a log line may carry.
//!
//! - [`cli`]: `ferry-bridge call` (a request from a terminal, over the wire protocol) and
//!   `ferry-bridge check` (a configuration against the broker).
//!
//! Use: [`Bridge::bind`] then [`Bridge::run`] with a [`CancellationToken`] that starts the drain.

pub mod allow;
pub mod amqp_props;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod config_file;
pub mod error;
pub mod frames;
pub mod handshake;
pub mod http;
pub mod limits;
pub mod logging;
pub mod otlp;
pub mod outbound;
pub mod pending;
pub mod proxy_protocol;
pub mod resume;
pub mod session;
pub mod span;
pub mod static_files;
pub mod stats;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::Config;
pub use error::BridgeError;
pub use stats::{Stats, StatsSnapshot};

use allow::Allowlist;
use broker::Broker;

/// State every connection shares.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// Compiled `--allow`.
    pub allow: Allowlist,
    /// Compiled `--allow-waiting`.
    pub waiting: Allowlist,
    /// Compiled `--allow-exchange`.
    pub exchanges: allow::ExchangeList,
    /// The broker links.
    pub broker: Broker,
    /// What sessions publish and consume through: the broker (an in-memory fake in the
    /// session loop's unit tests).
    pub port: Arc<dyn broker::port::Port>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Cancelled when the drain starts.
    pub shutdown: CancellationToken,
    /// Owns every connection and session task.
    pub tracker: TaskTracker,
    /// `ferry-bridge/VERSION`, sent in WELCOME.
    pub server_name: String,
    /// A random id of this bridge process, in its AMQP connection names and logs.
    pub instance: String,
    /// The sessions this bridge holds, so a resume here takes the old socket's place.
    pub holders: resume::Holders,
    /// How sockets authenticate.
    pub auth: auth::Auth,
    /// Per-address socket counts and open rates.
    pub admission: Arc<limits::Admission>,
    /// One permit per open TCP connection (`--max-connections`).
    pub connections: Arc<Semaphore>,
    /// `--content-security-policy`, sent with static files.
    pub csp: hyper::header::HeaderValue,
    /// The TLS acceptor, when the bridge serves TLS itself.
    pub tls: Option<tls::Tls>,
    /// The span exporter (`--otlp-endpoint`).
    pub otlp: Option<otlp::Otlp>,
}

/// A bound, not yet running bridge.
pub struct Bridge {
    listener: TcpListener,
    admin: TcpListener,
    shared: Arc<Shared>,
    broker_task: tokio::task::JoinHandle<()>,
    broker_stop: CancellationToken,
    _broker_guard: DropGuard,
}

/// Startup failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

impl Bridge {
    /// Binds the listening socket and starts connecting to the broker (in the background,
    /// with retries).
    pub async fn bind(mut config: Config) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        if config.default_timeout > config.max_timeout {
            warn!("--default-timeout exceeds --max-timeout; using --max-timeout as the default");
            config.default_timeout = config.max_timeout;
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.admin_listen,
                source,
            })?;
        let auth = auth::Auth::from_config(&config).map_err(StartError::Config)?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::Tls::new(cert, key).map_err(StartError::Config)?),
            _ => None,
        };
        let csp = hyper::header::HeaderValue::from_str(&config.content_security_policy).map_err(
            |_| StartError::Config("--content-security-policy is not a valid header value".into()),
        )?;
        if !auth.enabled() {
            if !config.listen.ip().is_loopback() && !config.no_auth {
                return Err(StartError::Config(format!(
                    "refusing to serve {} without authentication: set --jwt-secret-file, \
                     --jwt-public-key-file or --jwt-jwks-file, or pass --no-auth",
                    config.listen
                )));
            }
            warn!(
                "no authentication: any client that reaches this bridge may call every allowed destination"
            );
        }
        if config.allow.is_empty() {
            warn!("no --allow pattern: every destination is forbidden");
        }
        for (flag, list) in [
            ("--allow", &config.allow),
            ("--allow-exchange", &config.allow_exchange),
        ] {
            if list.iter().any(|p| p.trim() == "*") {
                warn!(
                    "{flag} '*': clients may call every queue of the vhost except amq.* and ferry.*"
                );
            }
        }
        let otlp = match &config.otlp_endpoint {
            Some(endpoint) => {
                Some(otlp::Otlp::start(endpoint, "ferry-bridge").map_err(StartError::Config)?)
            }
            None => None,
        };
        let broker_stop = CancellationToken::new();
        let instance = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        info!(instance, "bridge instance");
        let ca = match &config.amqp_ca_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                StartError::Config(format!("--amqp-ca-file {}: {e}", path.display()))
            })?),
            None => None,
        };
        let stats = Arc::new(Stats::default());
        let settings = broker::Settings {
            urls: config.broker_urls(),
            ca,
            instance: instance.clone(),
            cancel_exchange: config.cancel_exchange.clone(),
            reply_queue_type: config.reply_queue_type,
            reply_pool: config.reply_queue_pool,
            // With no grace period no session is resumable: nothing to keep ready.
            resumable_pool: if config.session_grace.is_zero() {
                (0, config.session_grace)
            } else {
                (config.resumable_queue_pool, config.session_grace)
            },
            counters: stats.broker.clone(),
        };
        let (broker, broker_task) = Broker::start(settings, broker_stop.clone());
        let config_limits = (
            config.max_connections_per_ip,
            config.session_rate,
            config.trusted_proxy.clone(),
            config.max_connections as usize,
        );
        let shared = Arc::new(Shared {
            allow: config.allowlist(),
            waiting: config.waiting_list(),
            exchanges: config.exchange_list(),
            config,
            port: Arc::new(broker.clone()),
            broker,
            stats,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            server_name: format!("ferry-bridge/{}", env!("CARGO_PKG_VERSION")),
            instance,
            holders: resume::Holders::default(),
            auth,
            admission: Arc::new(limits::Admission::new(
                config_limits.0,
                config_limits.1,
                config_limits.2,
            )),
            connections: Arc::new(Semaphore::new(config_limits.3)),
            csp,
            tls,
            otlp,
        });
        Ok(Self {
            listener,
            admin,
            shared,
            broker_task,
            _broker_guard: broker_stop.clone().drop_guard(),
            broker_stop,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// The admin listener's address (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or(self.shared.config.admin_listen)
    }

    /// True when the bridge serves TLS itself (`https://`, `wss://`).
    pub fn tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// This bridge's instance id (its AMQP connections are named `ferry-bridge publish <id>`
    /// and `ferry-bridge consume <id>`).
    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// What SIGHUP calls: re-reads the key files.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.clone())
    }

    /// A handle that resolves once the broker is connected.
    pub fn broker(&self) -> Broker {
        self.shared.broker.clone()
    }

    /// Serves until `shutdown` is cancelled, then drains: stops accepting, lets pending
    /// requests finish up to `--drain-timeout`, closes sockets with 1001, closes the broker.
    pub async fn run(self, shutdown: CancellationToken) {
        let shared = self.shared;
        // The admin listener answers (`/readyz`: draining) until the very end.
        let admin_stop = CancellationToken::new();
        let admin = tokio::spawn(admin_loop(shared.clone(), self.admin, admin_stop.clone()));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => match shared.connections.clone().try_acquire_owned() {
                        Ok(permit) => {
                            shared.tracker.spawn(http::accept(shared.clone(), tcp, peer, permit));
                        }
                        Err(_) => {
                            shared.stats.connections_refused_total.inc();
                            shared.tracker.spawn(http::too_many(tcp));
                        }
                    },
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        drop(self.listener);
        info!(
            sessions = shared.stats.snapshot().sessions,
            pending = shared.stats.snapshot().pending,
            "draining"
        );
        shared.shutdown.cancel();
        shared.tracker.close();
        let grace = shared.config.drain_timeout + Duration::from_secs(5);
        if tokio::time::timeout(grace, shared.tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not finish draining in time");
        }
        admin_stop.cancel();
        let _ = admin.await;
        self.broker_stop.cancel();
        let _ = self.broker_task.await;
        if let Some(otlp) = &shared.otlp {
            otlp.shutdown().await;
        }
        info!("stopped");
    }
}

/// Accepts admin connections until `stop` (plain HTTP, never TLS, under `--max-connections`).
async fn admin_loop(shared: Arc<Shared>, listener: TcpListener, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => match shared.connections.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let serve = http::serve(shared.clone(), tcp, peer, permit, http::Port::Admin);
                        shared.tracker.spawn(serve);
                    }
                    Err(_) => drop(shared.tracker.spawn(http::too_many(tcp))),
                },
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Re-reads the bridge's key and certificate files (wired to SIGHUP by `main`).
#[derive(Clone)]
pub struct Reloader(Arc<Shared>);

impl Reloader {
    /// Re-reads the JWT key files; on an error the keys in use stay (and it is logged).
    pub fn reload(&self) {
        if let Err(e) = self.0.auth.reload() {
            warn!(error = %e, "cannot reload the JWT keys; keeping the old ones");
        }
        if let Some(tls) = &self.0.tls
            && let Err(e) = tls.reload()
        {
            warn!(error = %e, "cannot reload the TLS certificate; keeping the old one");
        }
    }
}
