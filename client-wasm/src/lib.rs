//! Ferry client for WebAssembly: request-reply over a WebSocket to a Ferry bridge.
//!
//! The npm package `ferry-client` wraps this crate with hand-written JS (`js/`): `connect()`,
//! the `FerryError` class and the wasm loading live there; everything stateful lives here.
//!
//! - [`client`]: `WasmClient`: connect, request, gather, close (what JS calls).
//! - `events`: socket, timer and abort handlers (what calls back from JS).
//! - `session`: HELLO/WELCOME, resuming, ACKs, reconnecting with backoff.
//! - `state`: `Inner` (socket, closures, pending slots, timer) and its cleanup on drop.
//! - [`pending`]: the pending map and its one timer (pure, unit-tested natively).
//! - [`body`]: received bodies → JS values (decoded by the JS hooks: `TextDecoder`, `JSON`).
//! - [`error`]: failures and their messages, turned into `FerryError`s by a JS hook.
//! - [`js`]: bindings to host globals (`setTimeout`, `crypto`, `Date`) and the hooks object.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod body;
pub mod client;
pub mod error;
mod events;
pub mod js;
pub mod pending;
mod session;
mod state;

pub use client::WasmClient;

/// Without std on wasm, no panic machinery (and no `core::fmt` it would pull in): a panic
/// traps, which JS sees as a `RuntimeError: unreachable`.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// A small free-list allocator instead of std's dlmalloc: saves the wasm ~6 KB. The module
/// is single-threaded; the lock is uncontended.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
