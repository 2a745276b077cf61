//! The bridge's integration tests, one binary (one link, one setup): each module is one
//! concern, against a real RabbitMQ (`FERRY_AMQP_URL`). The `#[ignore]`d ones (a second
//! broker node, a broker restart) run apart from `scripts/test.sh` by module name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod amqps;
mod auth;
mod auth_proxy;
mod bad_input;
mod broker_restart;
mod cancel;
mod cli;
mod errors;
mod gather;
mod happy;
mod hostile;
mod hostile_frames;
mod interop;
mod isolation;
mod load;
mod ops;
mod reconnect;
mod reply_consume;
mod resumable_pool;
mod resume;
mod session_restart;
mod tls;
