//! The frames the bridge sends for what the broker delivers: a reply delivery becomes a
//! REPLY, PROGRESS or ERROR frame ([`Relay`]), a gather's replies PART frames and its end a
//! DONE; and ERROR frames for the bridge's own refusals.

use ferry_protocol::{Done, ErrorCode, ErrorFrame, Frame, Part, Progress, Reply, headers};
use lapin::BasicProperties;
use lapin::types::ShortString;

use crate::amqp_props::{ReplyKind, reply_headers, reply_kind, text};

/// The frame a reply delivery becomes for its request.
#[derive(Debug, PartialEq, Eq)]
pub enum Relay {
    /// A PROGRESS frame: the request stays pending.
    Progress(Vec<u8>),
    /// The final frame (REPLY, or ERROR for a worker's error reply or a lost-reply note):
    /// the request ends, with `ended` as its error code (`None`: answered).
    Final {
        /// The encoded frame.
        frame: Vec<u8>,
        /// `remote`, `broker_unavailable`, or `None` for a reply.
        ended: Option<ErrorCode>,
    },
}

/// Encodes the frame a reply delivery becomes for the request `id`.
pub fn reply_frame(id: &str, props: &BasicProperties, body: &[u8]) -> Relay {
    let content_type = props.content_type().as_ref().map(ShortString::as_str);
    let frame = match reply_kind(props) {
        ReplyKind::Final => Frame::Reply(Reply {
            id,
            content_type,
            headers: reply_headers(props),
            body,
        }),
        ReplyKind::Progress => {
            let frame = Frame::Progress(Progress {
                id,
                content_type,
                body,
            });
            return Relay::Progress(frame.encode());
        }
        ReplyKind::Lost => Frame::Error(ErrorFrame {
            id: Some(id),
            code: ErrorCode::BrokerUnavailable,
            message: "the broker restarted while the session was away; the reply may be lost",
            remote_code: None,
            content_type: None,
            details: &[],
        }),
        ReplyKind::Error { code, message } => Frame::Error(ErrorFrame {
            id: Some(id),
            code: ErrorCode::Remote,
            message: message.unwrap_or("the worker reported an error"),
            remote_code: Some(code),
            content_type,
            details: body,
        }),
    };
    let ended = match &frame {
        Frame::Error(e) => Some(e.code),
        _ => None,
    };
    Relay::Final {
        frame: frame.encode(),
        ended,
    }
}

/// Encodes the PART a final reply to the gather `id` becomes (`None` for a progress message,
/// which gathers do not forward). The replier is the reply's `app_id`, else its
/// `x-ferry-replier` header.
pub fn part_frame(id: &str, props: &BasicProperties, body: &[u8]) -> Option<Vec<u8>> {
    let (remote_code, message) = match reply_kind(props) {
        ReplyKind::Progress | ReplyKind::Lost => return None,
        ReplyKind::Final => (None, None),
        ReplyKind::Error { code, message } => (Some(code), message),
    };
    let replier = props
        .app_id()
        .as_ref()
        .map(ShortString::as_str)
        .or_else(|| {
            let table = props.headers().as_ref()?;
            table.inner().get(headers::REPLIER).and_then(text)
        });
    let frame = Frame::Part(Part {
        id,
        replier,
        content_type: props.content_type().as_ref().map(ShortString::as_str),
        remote_code,
        message,
        body,
    });
    Some(frame.encode())
}

/// Encodes the DONE frame that ends the gather `id` after `count` parts.
pub fn done_frame(id: &str, count: u32) -> Vec<u8> {
    Frame::Done(Done { id, count }).encode()
}

/// Encodes an ERROR frame.
pub fn error_frame(id: Option<&str>, code: ErrorCode, message: &str) -> Vec<u8> {
    Frame::Error(ErrorFrame {
        id,
        code,
        message,
        remote_code: None,
        content_type: None,
        details: &[],
    })
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp_props::lost_properties;

    #[test]
    fn a_lost_note_is_a_final_broker_unavailable_error() {
        let lost = lost_properties("c1");
        let Relay::Final { frame, ended } = reply_frame("c1", &lost, b"") else {
            panic!("a lost note is final");
        };
        assert_eq!(
            ended,
            Some(ErrorCode::BrokerUnavailable),
            "never counted as remote"
        );
        match Frame::decode(&frame) {
            Ok(Frame::Error(e)) => {
                assert_eq!((e.id, e.code), (Some("c1"), ErrorCode::BrokerUnavailable));
            }
            other => panic!("{other:?}"),
        }
    }
}
