//! Ferry client for WebAssembly: request-reply over a WebSocket to a Ferry bridge.
//!
//! The npm package `ferry-client` wraps this crate with hand-written JS (`js/`): `connect()`,
//! the `FerryError` class and body encoding live there; everything stateful lives here.
//!
//! - [`machine`]: the client's states, events and transitions, without I/O (`handle(event)
//!   -> effects`), unit-tested natively.
//! - [`pending`]: the pending map and its one timer (pure).
//! - [`error`]: failures and their messages (pure).
//! - [`options`]: the app's options as typed structs (serde-wasm-bindgen), checked once.
//! - [`client`]: `WasmClient`, what JS calls: each call becomes a machine event.
//! - `host`: the socket, the host's timers and closures; feeds events, performs effects.
//! - `deliver`: the effects the app sees: replies decoded, failures made `FerryError`s.
//! - [`js`]: bindings to host globals (`setTimeout`, `crypto`, `Date`) and the hooks object.

extern crate alloc;

pub mod client;
mod deliver;
pub mod error;
mod host;
pub mod js;
pub mod machine;
pub mod options;
pub mod pending;

pub use client::WasmClient;

/// A small free-list allocator instead of std's dlmalloc: saves the wasm ~6 KB. The module
/// is single-threaded; the lock is uncontended.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
