//! The effects the app sees: a reply decoded by its content type, a failure made into a JS
//! `FerryError`, each settling the waiting call's promise, calling its callback or a hook.

use wasm_bindgen::JsValue;

use crate::error::Failure;
use crate::host::Js;
use crate::js::Hooks;
use crate::machine::{Body, Effect};

/// Performs an effect the app sees: settles a promise, calls a callback or a hook.
pub(crate) fn deliver(hooks: &Hooks, effect: Effect<'_, Js>) {
    let this = &JsValue::UNDEFINED;
    match effect {
        Effect::Reply { call, id, body } => {
            let settled = decode(hooks, body).map_err(|text| unparsable(hooks, id, &text));
            let _ = call.settle.send(settled);
        }
        Effect::Done { call, count } => {
            let count = count.map_or(JsValue::UNDEFINED, JsValue::from);
            let _ = call.settle.send(Ok(count));
        }
        Effect::Reject { call, failure } => {
            let _ = call.settle.send(Err(to_js(hooks, &failure)));
        }
        Effect::Progress { callback, body } => {
            if let Ok(v) = decode(hooks, body) {
                let _ = callback.call1(this, &v);
            }
        }
        Effect::Part {
            callback,
            id,
            replier,
            body,
            remote,
        } => {
            let replier = replier.map_or(JsValue::UNDEFINED, JsValue::from);
            let (value, error) = match (remote, decode(hooks, body)) {
                (None, Ok(value)) => (value, JsValue::UNDEFINED),
                (Some((code, message)), details) => {
                    let details = details.unwrap_or_else(|t| t);
                    let e = hooks.error("remote", message, Some(id), &details, Some(code));
                    (JsValue::UNDEFINED, e)
                }
                (None, Err(text)) => (JsValue::UNDEFINED, unparsable(hooks, id, &text)),
            };
            let _ = callback.call3(this, &replier, &value, &error);
        }
        Effect::Ready(settle) | Effect::Closed(settle) => {
            let _ = settle.send(Ok(JsValue::UNDEFINED));
        }
        Effect::NotReady { ready, failure } => {
            let _ = ready.send(Err(to_js(hooks, &failure)));
        }
        Effect::Changed => hooks.changed(),
        Effect::State(name) => hooks.state(name),
        Effect::Ended(failure) => hooks.ended(&to_js(hooks, &failure)),
        _ => {}
    }
}

fn decode(hooks: &Hooks, body: Body<'_>) -> Result<JsValue, JsValue> {
    hooks.decode(body.bytes, body.content_type)
}

/// A worker's reply says it is JSON but does not parse: `remote` / `invalid_json`, with the
/// text as details.
fn unparsable(hooks: &Hooks, id: &str, text: &JsValue) -> JsValue {
    let msg = "the worker's reply says it is JSON but does not parse";
    hooks.error("remote", msg, Some(id), text, Some("invalid_json"))
}

/// The JS `FerryError` for a failure (a worker's error body decoded by content type).
pub(crate) fn to_js(hooks: &Hooks, f: &Failure) -> JsValue {
    let details = match &f.details {
        Some(d) => hooks.decode(&d.0, d.1.as_deref()).unwrap_or_else(|t| t),
        None => JsValue::UNDEFINED,
    };
    hooks.error(
        f.code.as_str(),
        &f.message,
        f.id.as_deref(),
        &details,
        f.remote_code.as_deref(),
    )
}
