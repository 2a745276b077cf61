//! The binary's subcommands for people: `call` (one request from a terminal) and `check` (a
//! configuration against the broker). (`token` lives with authentication, in `auth::mint`;
//! `config` with the configuration, in `config_file`.)

pub mod call;
pub mod check;
mod render;
