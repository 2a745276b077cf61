//! Surviving a page reload: the snapshot a persisted client keeps in the page's storage
//! (session, resume token, the requests still awaited), restoring it into parked slots, and
//! handing restored requests back to the app (`resumed()`, `reattach(id)`).

use alloc::borrow::ToOwned;
use ferry_protocol::ErrorCode;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use super::{WasmClient, rejected};
use crate::error::Failure;
use crate::events::dispatch;
use crate::js;
use crate::state::{Inner, Parked, RequestSlot, Slot};

/// Puts a snapshot's session and requests into a new client (before its first HELLO).
/// Anything malformed is skipped: storage is input like any other.
pub(super) fn restore(inner: &mut Inner, snapshot: &JsValue) {
    let Some(parts) = snapshot.dyn_ref::<Array>() else {
        return;
    };
    let (Some(session), Some(token)) = (parts.get(0).as_string(), parts.get(1).as_string()) else {
        return;
    };
    inner.resume = Some((session, token));
    let now = js::now_ms();
    let Some(entries) = parts.get(2).dyn_into::<Array>().ok() else {
        return;
    };
    for e in entries.iter() {
        let Some(e) = e.dyn_ref::<Array>() else {
            continue;
        };
        let (Some(id), Some(destination), Some(deadline)) = (
            e.get(0).as_string(),
            e.get(1).as_string(),
            e.get(2).as_f64(),
        ) else {
            continue;
        };
        if deadline <= now as f64 || id.contains(' ') {
            continue;
        }
        let parked = Parked {
            destination,
            idle_ms: e.get(3).as_f64().map(|v| v as u32).filter(|v| *v > 0),
            meta: e.get(4),
            reply: None,
            expired: false,
        };
        let _ = inner
            .pending
            .insert(id, deadline as u64, Slot::Parked(parked));
    }
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
        let Some((session, token)) = &inner.resume else {
            return JsValue::UNDEFINED;
        };
        let entries = Array::new();
        for (id, deadline, slot) in inner.pending.iter() {
            let Some(r) = slot.resumable() else {
                continue;
            };
            let idle = r.idle_ms.map_or(JsValue::NULL, JsValue::from);
            let e = Array::of5(
                &id.into(),
                &r.destination.into(),
                &(deadline as f64).into(),
                &idle,
                r.meta,
            );
            entries.push(&e);
        }
        Array::of3(&session.into(), &token.into(), &entries).into()
    }

    /// The requests restored from storage that the app has not reattached yet:
    /// `[{ id, destination, meta, expired }]`.
    pub fn resumed(&self) -> Array {
        let out = Array::new();
        for (id, _, slot) in self.inner.borrow().pending.iter() {
            if let Slot::Parked(p) = slot {
                let o = Object::new();
                set(&o, "id", &id.into());
                set(&o, "destination", &p.destination.as_str().into());
                set(&o, "meta", &p.meta);
                set(&o, "expired", &p.expired.into());
                out.push(&o);
            }
        }
        out
    }

    /// A Promise for the reply of a restored request (settles at once if it already came).
    pub fn reattach(&self, id: &str, on_progress: Option<Function>) -> Promise {
        let parked = {
            let mut inner = self.inner.borrow_mut();
            let is_parked = matches!(inner.pending.get(id), Some(Slot::Parked(_)));
            match (inner.pending.deadline(id), is_parked) {
                (Some(deadline), true) => match inner.pending.remove(id) {
                    Some(Slot::Parked(p)) => Some((deadline, p)),
                    _ => None,
                },
                _ => None,
            }
        };
        let Some((deadline, mut p)) = parked else {
            let f =
                Failure::new(ErrorCode::BadRequest, "no restored request has this id").with_id(id);
            return rejected(self.inner.borrow().error(&f));
        };
        if p.expired {
            let f = Failure::new(
                ErrorCode::SessionExpired,
                "the session expired before the page could resume it",
            )
            .with_id(id);
            let mut inner = self.inner.borrow_mut();
            inner.rearm();
            return rejected(inner.error(&f));
        }
        let reply = p.reply.take();
        let mut slot = Some(p);
        let promise = Promise::new(&mut |resolve, reject| {
            if let Some(p) = slot.take() {
                let mut inner = self.inner.borrow_mut();
                let _ = inner.pending.insert(
                    id.to_owned(),
                    deadline,
                    Slot::Request(RequestSlot {
                        resolve,
                        reject,
                        destination: p.destination,
                        unsent: None,
                        sent: None,
                        meta: p.meta,
                        on_progress: on_progress.clone(),
                        idle_ms: p.idle_ms,
                        gather: false,
                        _abort: None,
                    }),
                );
                inner.rearm();
            }
        });
        if let Some(raw) = reply {
            dispatch(&self.inner, &raw);
        }
        promise
    }
}
