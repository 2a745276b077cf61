//! Writes frames: [`Frame::encode`] and [`Frame::encode_into`].

use alloc::vec::Vec;

use super::{MAX_FIELD, tag};
use crate::frame::{Attach, Frame};

impl Frame<'_> {
    /// Encodes the frame into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.body_len());
        self.encode_into(&mut out);
        out
    }

    fn body_len(&self) -> usize {
        match self {
            Frame::Request(r) => r.body.len(),
            Frame::Reply(r) => r.body.len(),
            Frame::Progress(p) => p.body.len(),
            Frame::Gather(g) => g.body.len(),
            Frame::Part(p) => p.body.len(),
            Frame::Error(e) => e.details.len(),
            _ => 0,
        }
    }

    /// Appends the encoded frame to `out`. Text fields longer than 65,535 bytes are cut at a
    /// character boundary (the decoder and validator keep ids and names far below that).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.kind());
        let mut w = Writer(out);
        let body: &[u8] = match self {
            Frame::Hello(h) => {
                w.opt_str(tag::CLIENT, h.client);
                w.opt_str(tag::RESUME, h.resume);
                w.opt_str(tag::RESUME_TOKEN, h.resume_token);
                for a in &h.attach {
                    w.attach(a);
                }
                if h.acks {
                    w.field(tag::ACKS, &[1]);
                }
                w.opt_str(tag::TOKEN, h.token);
                &[]
            }
            Frame::Auth(a) => {
                w.str(tag::TOKEN, a.token);
                &[]
            }
            Frame::Request(r) => {
                w.str(tag::ID, r.id);
                w.str(tag::DESTINATION, r.destination);
                w.opt_str(tag::CONTENT_TYPE, r.content_type);
                w.opt_u32(tag::TIMEOUT_MS, r.timeout_ms);
                w.opt_u32(tag::IDLE_TIMEOUT_MS, r.idle_timeout_ms);
                w.headers(&r.headers);
                r.body
            }
            Frame::Cancel(c) => {
                w.str(tag::ID, c.id);
                &[]
            }
            Frame::Gather(g) => {
                w.str(tag::ID, g.id);
                w.str(tag::DESTINATION, g.destination);
                w.opt_str(tag::ROUTING_KEY, g.routing_key);
                w.opt_str(tag::CONTENT_TYPE, g.content_type);
                w.opt_u32(tag::TIMEOUT_MS, g.timeout_ms);
                w.opt_u32(tag::MAX_REPLIES, g.max_replies);
                w.headers(&g.headers);
                g.body
            }
            Frame::Ack(a) | Frame::Accepted(a) => {
                for id in &a.ids {
                    w.str(tag::ID, id);
                }
                &[]
            }
            Frame::Welcome(wl) => {
                w.str(tag::SESSION, wl.session);
                w.field(tag::RESUMED, &[u8::from(wl.resumed)]);
                w.u32(tag::MAX_FRAME_BYTES, wl.limits.max_frame_bytes);
                w.u32(tag::MAX_INFLIGHT, wl.limits.max_inflight);
                w.u32(tag::DEFAULT_TIMEOUT_MS, wl.limits.default_timeout_ms);
                w.u32(tag::MAX_TIMEOUT_MS, wl.limits.max_timeout_ms);
                w.u32(tag::SESSION_GRACE_MS, wl.limits.session_grace_ms);
                if wl.limits.heartbeat_ms != 0 {
                    w.u32(tag::HEARTBEAT_MS, wl.limits.heartbeat_ms);
                }
                w.opt_str(tag::RESUME_TOKEN, wl.resume_token);
                w.opt_str(tag::SERVER, wl.server);
                w.opt_str(tag::USER, wl.user);
                &[]
            }
            Frame::Reply(r) => {
                w.str(tag::ID, r.id);
                w.opt_str(tag::CONTENT_TYPE, r.content_type);
                w.headers(&r.headers);
                r.body
            }
            Frame::Progress(p) => {
                w.str(tag::ID, p.id);
                w.opt_str(tag::CONTENT_TYPE, p.content_type);
                p.body
            }
            Frame::Part(p) => {
                w.str(tag::ID, p.id);
                w.opt_str(tag::REPLIER, p.replier);
                w.opt_str(tag::CONTENT_TYPE, p.content_type);
                w.opt_str(tag::REMOTE_CODE, p.remote_code);
                w.opt_str(tag::MESSAGE, p.message);
                p.body
            }
            Frame::Done(d) => {
                w.str(tag::ID, d.id);
                w.u32(tag::COUNT, d.count);
                &[]
            }
            Frame::Heartbeat => &[],
            Frame::Error(e) => {
                w.opt_str(tag::ID, e.id);
                w.str(tag::CODE, e.code.as_str());
                w.str(tag::MESSAGE, e.message);
                w.opt_str(tag::REMOTE_CODE, e.remote_code);
                w.opt_str(tag::CONTENT_TYPE, e.content_type);
                e.details
            }
        };
        out.push(tag::END);
        out.extend_from_slice(body);
    }
}

struct Writer<'o>(&'o mut Vec<u8>);

impl Writer<'_> {
    fn field(&mut self, tag: u8, value: &[u8]) {
        let len = value.len().min(MAX_FIELD);
        self.0.push(tag);
        self.0.extend_from_slice(&(len as u16).to_be_bytes());
        self.0.extend_from_slice(&value[..len]);
    }
    fn str(&mut self, tag: u8, s: &str) {
        self.field(tag, truncate(s, MAX_FIELD).as_bytes());
    }
    fn opt_str(&mut self, tag: u8, s: Option<&str>) {
        if let Some(s) = s {
            self.str(tag, s);
        }
    }
    fn u32(&mut self, tag: u8, v: u32) {
        self.field(tag, &v.to_be_bytes());
    }
    fn opt_u32(&mut self, tag: u8, v: Option<u32>) {
        if let Some(v) = v {
            self.u32(tag, v);
        }
    }
    /// `timeout_ms:u32 idle_timeout_ms:u32 (0 = none) id_len:u8 id destination`.
    fn attach(&mut self, a: &Attach<'_>) {
        let id = truncate(a.id, u8::MAX as usize);
        let dest = truncate(a.destination, MAX_FIELD - 9 - id.len());
        self.0.push(tag::ATTACH);
        self.0
            .extend_from_slice(&((9 + id.len() + dest.len()) as u16).to_be_bytes());
        self.0.extend_from_slice(&a.timeout_ms.to_be_bytes());
        self.0
            .extend_from_slice(&a.idle_timeout_ms.unwrap_or(0).to_be_bytes());
        self.0.push(id.len() as u8);
        self.0.extend_from_slice(id.as_bytes());
        self.0.extend_from_slice(dest.as_bytes());
    }
    fn headers(&mut self, headers: &[(&str, &str)]) {
        for (name, value) in headers {
            let name = truncate(name, u8::MAX as usize);
            let value = truncate(value, MAX_FIELD - 1 - name.len());
            self.0.push(tag::HEADER);
            self.0
                .extend_from_slice(&((1 + name.len() + value.len()) as u16).to_be_bytes());
            self.0.push(name.len() as u8);
            self.0.extend_from_slice(name.as_bytes());
            self.0.extend_from_slice(value.as_bytes());
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
