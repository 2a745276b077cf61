//! Surviving a page reload, the JS half: the snapshot a persisted client keeps in the page's
//! storage (a versioned serde struct, JSON in storage), and handing restored requests back to
//! the app (`resumed()`, `reattach(id)`). The machine (`machine/resume.rs`) keeps the session.

use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Function, Promise};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use super::WasmClient;
use crate::host::{Call, Js, promise, run};
use crate::machine::{Event, Restored};

/// The snapshot's format; a snapshot of another version (or the unversioned array an
/// earlier release kept) is refused, never read by guesswork: the client starts a new session.
pub const SNAPSHOT_VERSION: u32 = 2;

/// What a persisted client keeps in storage.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// [`SNAPSHOT_VERSION`].
    version: u32,
    /// The session id.
    session: String,
    /// Its resume token.
    token: String,
    /// The requests a resume can still answer.
    requests: Vec<StoredRequest>,
}

/// One awaited request in the snapshot.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredRequest {
    id: String,
    destination: String,
    /// When it times out (milliseconds since the epoch).
    deadline: f64,
    idle_ms: Option<u32>,
    /// The app's `meta`, as it gave it (JSON-able if it is to survive in storage).
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    meta: JsValue,
}

/// Reads a snapshot from storage. Storage is input like any other: a snapshot that is not
/// this version's struct is refused whole.
pub(super) fn parse(snapshot: JsValue) -> Option<Restored<JsValue>> {
    if snapshot.is_undefined() || snapshot.is_null() {
        return None;
    }
    let stored: Stored = serde_wasm_bindgen::from_value(snapshot).ok()?;
    if stored.version != SNAPSHOT_VERSION {
        return None;
    }
    let entries = stored
        .requests
        .into_iter()
        .map(|r| (r.id, r.destination, r.deadline, r.idle_ms, r.meta))
        .collect();
    Some(Restored {
        session: stored.session,
        token: stored.token,
        entries,
    })
}

/// A restored request the app has not reattached yet, as `resumed()` lists it.
#[derive(Serialize)]
struct Parked<'a> {
    id: &'a str,
    destination: &'a str,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    meta: JsValue,
    expired: bool,
}

#[wasm_bindgen(js_class = WasmClient)]
impl WasmClient {
    /// What a persisted client keeps in storage: `{ version, session, token, requests: [{
    /// id, destination, deadline, idleMs, meta }] }`, or `undefined` without a resumable
    /// session.
    pub fn snapshot(&self) -> JsValue {
        let inner = self.inner.borrow();
        let Some(snap) = inner.machine.snapshot() else {
            return JsValue::UNDEFINED;
        };
        let stored = Stored {
            version: SNAPSHOT_VERSION,
            session: snap.session.into(),
            token: snap.token.into(),
            requests: snap
                .entries
                .into_iter()
                .map(|e| StoredRequest {
                    id: e.id.into(),
                    destination: e.destination.into(),
                    deadline: e.deadline as f64,
                    idle_ms: e.idle_ms,
                    meta: e.meta.clone(),
                })
                .collect(),
        };
        serde_wasm_bindgen::to_value(&stored).unwrap_or(JsValue::UNDEFINED)
    }

    /// The requests restored from storage that the app has not reattached yet:
    /// `[{ id, destination, meta, expired }]`.
    pub fn resumed(&self) -> JsValue {
        let inner = self.inner.borrow();
        let parked: Vec<Parked<'_>> = inner
            .machine
            .parked()
            .map(|(id, destination, meta, expired)| Parked {
                id,
                destination,
                meta: meta.clone(),
                expired,
            })
            .collect();
        serde_wasm_bindgen::to_value(&parked).unwrap_or(JsValue::UNDEFINED)
    }

    /// A Promise for the reply of a restored request (settles at once if it already came).
    pub fn reattach(&self, id: &str, on_progress: Option<Function>) -> Promise {
        let (p, settle) = promise();
        let call = Call {
            settle,
            _abort: None,
        };
        let event: Event<'_, Js> = Event::Reattach {
            id,
            call,
            progress: on_progress,
        };
        run(&self.inner, event);
        p
    }
}
