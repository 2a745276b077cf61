//! Received bodies → JS values, through the hooks (`js/core.js` decodes with the host's
//! `TextDecoder` and `JSON.parse`, which costs the wasm nothing). Request bodies are encoded
//! in JS too and arrive here as bytes plus a content type.

use alloc::string::String;
use wasm_bindgen::JsValue;

use crate::js::Hooks;

/// Decodes a received body by its content type: JSON → value, `text/*` → string, anything
/// else → `Uint8Array`. `Err` carries what a JSON body that does not parse said.
pub fn decode(hooks: &Hooks, bytes: &[u8], content_type: Option<&str>) -> Result<JsValue, JsValue> {
    hooks.decode(bytes, content_type)
}

/// `prefix: <the JS error's message>`.
pub fn js_message(prefix: &str, error: &JsValue) -> String {
    let detail = js_sys::Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string());
    let mut out = String::from(prefix);
    if let Some(d) = detail {
        out.push_str(": ");
        out.push_str(&d);
    }
    out
}
