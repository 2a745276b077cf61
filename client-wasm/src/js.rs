//! Bindings to host globals every runtime has (browsers, Node 20, Deno, workers), and the
//! hooks object the hand-written JS layer passes in.

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::cell::RefCell;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `globalThis.setTimeout`; the handle is a number in browsers, an object in Node.
    #[wasm_bindgen(js_name = setTimeout)]
    pub fn set_timeout(callback: &js_sys::Function, ms: f64) -> JsValue;

    /// `globalThis.clearTimeout`.
    #[wasm_bindgen(js_name = clearTimeout)]
    pub fn clear_timeout(handle: &JsValue);

    /// `crypto.getRandomValues` (works in insecure contexts, unlike `randomUUID`).
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    pub fn get_random_values(buf: &mut [u8]);

    /// `Date.now()`.
    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    pub fn date_now() -> f64;

    /// What `js/core.js` passes to the client: makes `FerryError`s and hears when the
    /// connection ends.
    #[derive(Clone)]
    pub type Hooks;

    /// `hooks.error(code, message, correlationId, details, remoteCode)` → a `FerryError`.
    #[wasm_bindgen(method, structural)]
    pub fn error(
        this: &Hooks,
        code: &str,
        message: &str,
        id: Option<&str>,
        details: &JsValue,
        remote_code: Option<&str>,
    ) -> JsValue;

    /// `hooks.decode(bytes, contentType)`: a received body as a JS value (`bytes` is a view
    /// into wasm memory, valid during the call only). Throws what an unparsable JSON body said.
    #[wasm_bindgen(method, structural, catch)]
    pub fn decode(
        this: &Hooks,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<JsValue, JsValue>;

    /// `hooks.ended(error)`: the connection is over (`error.code` says why).
    #[wasm_bindgen(method, structural)]
    pub fn ended(this: &Hooks, error: &JsValue);

    /// `hooks.state(name)`: the connection is now `open` or `reconnecting`.
    #[wasm_bindgen(method, structural)]
    pub fn state(this: &Hooks, name: &str);

    /// `hooks.token()`: the access token for the next HELLO (`connect`'s `token` option), or
    /// undefined.
    #[wasm_bindgen(method, structural)]
    pub fn token(this: &Hooks) -> Option<String>;

    /// `hooks.changed()`: what a persisted client keeps in storage changed.
    #[wasm_bindgen(method, structural)]
    pub fn changed(this: &Hooks);

    /// `queueMicrotask(callback)`.
    #[wasm_bindgen(js_name = queueMicrotask)]
    pub fn queue_microtask(callback: &js_sys::Function);
}

/// Bytes from `crypto.getRandomValues`, drawn a block at a time: one call (a copy across
/// the wasm boundary each way) per 64 request ids instead of one per id.
struct RandomPool {
    bytes: [u8; 1024],
    used: usize,
}

thread_local! {
    static RANDOM: RefCell<RandomPool> = const {
        RefCell::new(RandomPool { bytes: [0; 1024], used: 1024 })
    };
}

impl RandomPool {
    /// Fills `out` (at most a block) with bytes not handed out before, drawing a new block
    /// from `fill` when the rest is too short.
    fn take(&mut self, out: &mut [u8], fill: impl FnOnce(&mut [u8])) {
        if self.used + out.len() > self.bytes.len() {
            fill(&mut self.bytes);
            self.used = 0;
        }
        out.copy_from_slice(&self.bytes[self.used..self.used + out.len()]);
        self.used += out.len();
    }
}

/// Fills `out` from the platform's cryptographic random source (through [`RandomPool`]).
fn random_bytes(out: &mut [u8]) {
    RANDOM.with_borrow_mut(|pool| pool.take(out, get_random_values));
}

/// A random fraction in `[0, 1)` from the platform's cryptographic random source.
pub fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    random_bytes(&mut b);
    f64::from(u32::from_le_bytes(b)) / 4_294_967_296.0
}

/// Milliseconds since the epoch, as an integer.
pub fn now_ms() -> u64 {
    date_now() as u64
}

/// A fresh UUID v4 from the platform's cryptographic random source.
pub fn uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes);
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::RandomPool;

    #[test]
    fn the_random_pool_hands_out_each_byte_once_and_refills_when_short() {
        let mut pool = RandomPool {
            bytes: [0; 1024],
            used: 1024,
        };
        let mut fills = 0u8;
        let mut seen = alloc::vec::Vec::new();
        for _ in 0..64 * 3 {
            let mut id = [0u8; 16];
            pool.take(&mut id, |block| {
                fills += 1;
                for (i, b) in block.iter_mut().enumerate() {
                    *b = (i / 16) as u8 ^ fills.wrapping_mul(101);
                }
            });
            seen.push(id);
        }
        assert_eq!(fills, 3, "one block per 64 ids of 16 bytes");
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 64 * 3, "no bytes handed out twice");
        let mut odd = [0u8; 12];
        pool.take(&mut odd, |_| fills += 1);
        assert_eq!(
            fills, 4,
            "a request longer than what is left draws a new block"
        );
    }
}
