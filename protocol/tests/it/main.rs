//! The protocol crate's integration tests, one binary: the cross-language contracts (error
//! codes in TypeScript and the docs) and the decoder's property tests and corpus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contracts;
mod fuzz;
