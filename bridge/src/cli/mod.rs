//! The binary's subcommands for people: `call` (one request from a terminal). (`token` lives
//! with authentication, in `auth::mint`.)

pub mod call;
