//! Surviving a page reload, the JS half: the snapshot a persisted client keeps in the page's
//! storage (read and written as plain arrays), and handing restored requests back to the app
//! (`resumed()`, `reattach(id)`). The machine (`machine/resume.rs`) keeps the session.

use alloc::vec::Vec;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use super::{WasmClient, promise};
use crate::host::{Call, Js, run};
use crate::machine::{Event, Restored};

/// Reads a snapshot from storage: `[session, token, [[id, destination, deadline, idleMs,
/// meta], ...]]`. Storage is input like any other: what is malformed is skipped.
pub(super) fn parse(snapshot: &JsValue) -> Option<Restored<JsValue>> {
    let parts = snapshot.dyn_ref::<Array>()?;
    let (Some(session), Some(token)) = (parts.get(0).as_string(), parts.get(1).as_string()) else {
        return None;
    };
    let mut entries = Vec::new();
    if let Ok(list) = parts.get(2).dyn_into::<Array>() {
        for e in list.iter() {
            let Some(e) = e.dyn_ref::<Array>() else {
                continue;
            };
            if let (Some(id), Some(destination), Some(deadline)) = (
                e.get(0).as_string(),
                e.get(1).as_string(),
                e.get(2).as_f64(),
            ) {
                let idle = e.get(3).as_f64().map(|v| v as u32);
                entries.push((id, destination, deadline, idle, e.get(4)));
            }
        }
    }
    Some(Restored {
        session,
        token,
        entries,
    })
}

fn set(o: &Object, key: &str, v: &JsValue) {
    let _ = Reflect::set(o, &key.into(), v);
}

#[wasm_bindgen(js_class = WasmClient)]
impl WasmClient {
    /// What a persisted client keeps in storage: `[session, token, [[id, destination,
    /// deadline, idleMs, meta], ...]]`, or `undefined` without a resumable session.
    pub fn snapshot(&self) -> JsValue {
        let inner = self.inner.borrow();
        let Some(snap) = inner.machine.snapshot() else {
            return JsValue::UNDEFINED;
        };
        let list = Array::new();
        for e in snap.entries {
            let idle = e.idle_ms.map_or(JsValue::NULL, JsValue::from);
            list.push(&Array::of5(
                &e.id.into(),
                &e.destination.into(),
                &(e.deadline as f64).into(),
                &idle,
                e.meta,
            ));
        }
        Array::of3(&snap.session.into(), &snap.token.into(), &list).into()
    }

    /// The requests restored from storage that the app has not reattached yet:
    /// `[{ id, destination, meta, expired }]`.
    pub fn resumed(&self) -> Array {
        let out = Array::new();
        for (id, destination, meta, expired) in self.inner.borrow().machine.parked() {
            let o = Object::new();
            set(&o, "id", &id.into());
            set(&o, "destination", &destination.into());
            set(&o, "meta", meta);
            set(&o, "expired", &expired.into());
            out.push(&o);
        }
        out
    }

    /// A Promise for the reply of a restored request (settles at once if it already came).
    pub fn reattach(&self, id: &str, on_progress: Option<Function>) -> Promise {
        let (p, Some((resolve, reject))) = promise() else {
            return Promise::reject(&JsValue::UNDEFINED);
        };
        let call = Call {
            resolve,
            reject,
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
