//! What the client sends: each socket message read (a binary frame, or a close, a ping, an
//! error), checked against the size limit, decoded and dispatched by frame kind.

use bytes::Bytes;
use ferry_protocol::headers::CancelReason;
use ferry_protocol::{ErrorCode, Frame, validate};
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::debug;

use super::{End, Flow, Session};
use crate::error::BridgeError;
use crate::stats::Outcome;

impl Session {
    pub(super) async fn on_socket(&mut self, msg: Option<Result<Message, WsError>>) -> Flow {
        match msg {
            Some(Ok(Message::Binary(bytes))) => self.on_frame(bytes).await,
            Some(Ok(Message::Text(_))) => {
                self.send_error(None, &BridgeError::TextFrame).await;
                Flow::Continue
            }
            Some(Ok(Message::Pong(_))) => {
                self.out.pong();
                Flow::Continue
            }
            Some(Ok(Message::Ping(_) | Message::Frame(_))) => Flow::Continue,
            Some(Ok(Message::Close(frame))) => {
                if frame.is_some_and(|f| f.code == CloseCode::Normal) {
                    self.end = End::Closed;
                }
                Flow::Stop
            }
            None => Flow::Stop,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                let max = self.shared.config.max_frame_bytes;
                self.send_error(None, &BridgeError::TooLarge { size, max })
                    .await;
                let reason = format!("message exceeds {max} bytes");
                self.out.close(CloseCode::Size, &reason).await;
                Flow::Stop
            }
            Some(Err(e)) => {
                debug!(session = %self.id, error = %e, "socket error");
                if let Some((code, reason)) = crate::outbound::close_for(&e) {
                    self.out.close(code, reason).await;
                }
                Flow::Stop
            }
        }
    }

    async fn on_frame(&mut self, bytes: Bytes) -> Flow {
        let max = self.shared.config.max_frame_bytes;
        self.shared.stats.bytes_received.inc_by(bytes.len() as u64);
        let frame = match Frame::decode_from_client(&bytes) {
            Ok(f) => f,
            Err(e) => {
                self.send_error(None, &e.into()).await;
                return Flow::Continue;
            }
        };
        if bytes.len() > max as usize {
            let id = match &frame {
                Frame::Request(r) if validate::id(r.id).is_ok() => Some(r.id),
                _ => None,
            };
            let e = BridgeError::TooLarge {
                size: bytes.len(),
                max,
            };
            self.send_error(id, &e).await;
            return Flow::Continue;
        }
        match frame {
            Frame::Request(req) => {
                let id_ok = validate::id(req.id).is_ok();
                let id: Box<str> = req.id.into();
                let dest = req.destination;
                if let Err(e) = self.on_request(&req, &bytes).await {
                    let trace_id = req
                        .headers
                        .iter()
                        .find(|(n, _)| *n == ferry_protocol::trace::TRACEPARENT)
                        .and_then(|(_, v)| ferry_protocol::trace::TraceParent::parse(v))
                        .map(|t| t.trace_id_hex());
                    debug!(session = %self.id, id = %id, destination = dest, trace_id, error = %e, "request refused");
                    self.send_error(id_ok.then_some(&*id), &e).await;
                }
            }
            Frame::Cancel(c) => {
                let cancelled = Outcome::Error(ErrorCode::Cancelled);
                if let Some(entry) = self.pending.remove(c.id, cancelled) {
                    debug!(session = %self.id, id = c.id, destination = %entry.destination, trace_id = entry.trace_id(), "request cancelled");
                    self.notify(c.id.into(), entry, CancelReason::Cancelled);
                }
            }
            Frame::Hello(_) => self.send_error(None, &BridgeError::HelloTwice).await,
            Frame::Auth(a) => return Box::pin(self.on_auth(a.token)).await,
            Frame::Ack(a) => self.on_ack(&a.ids),
            Frame::Gather(g) => {
                if let Err(e) = self.on_gather(&g, &bytes).await {
                    debug!(session = %self.id, id = g.id, error = %e, "gather refused");
                    let id = validate::id(g.id).is_ok().then_some(g.id);
                    self.send_error(id, &e).await;
                }
            }
            other => {
                let e = BridgeError::Unexpected(other.kind_name());
                self.send_error(None, &e).await;
            }
        }
        Flow::Continue
    }
}
