//! Round-trip and malformed-input tests of the codec.

use std::vec;
use std::vec::Vec;

use super::*;
use crate::ErrorCode;
use crate::frame::*;

fn round_trip(frame: Frame<'_>) {
    let bytes = frame.encode();
    assert_eq!(
        Frame::decode(&bytes).as_ref(),
        Ok(&frame),
        "bytes: {bytes:02x?}"
    );
}

#[test]
fn every_kind_round_trips() {
    round_trip(Frame::Hello(Hello {
        client: Some("ferry-client/0.1.0"),
        resume: Some("s-1"),
        resume_token: Some("tok"),
        attach: vec![
            Attach {
                id: "c1",
                timeout_ms: 5_000,
                idle_timeout_ms: Some(1_000),
                destination: "patient_summary_request",
            },
            Attach {
                id: "c2",
                timeout_ms: 1,
                idle_timeout_ms: None,
                destination: "q",
            },
        ],
        acks: true,
        token: Some("eyJ.a.b"),
    }));
    round_trip(Frame::Auth(Auth { token: "eyJ.c.d" }));
    round_trip(Frame::Hello(Hello::default()));
    round_trip(Frame::Request(Request {
        id: "c1",
        destination: "patient_summary_request",
        content_type: Some("application/json"),
        timeout_ms: Some(300_000),
        idle_timeout_ms: Some(30_000),
        headers: vec![("x-tenant", "a"), ("traceparent", "00-1-2-01")],
        body: br#"{"patientId":42}"#,
    }));
    round_trip(Frame::Cancel(Cancel { id: "c1" }));
    round_trip(Frame::Gather(Gather {
        id: "g1",
        destination: "reviewers",
        routing_key: Some("cardiology.#"),
        content_type: Some("application/json"),
        timeout_ms: Some(2_000),
        max_replies: Some(3),
        headers: vec![("x-tenant", "a")],
        body: b"{}",
    }));
    round_trip(Frame::Ack(Ack {
        ids: vec!["c1", "c2", "c3"],
    }));
    round_trip(Frame::Part(Part {
        id: "g1",
        replier: Some("worker-2"),
        content_type: Some("application/json"),
        remote_code: None,
        message: None,
        body: br#"{"name":"Dr. Ada"}"#,
    }));
    round_trip(Frame::Done(Done { id: "g1", count: 3 }));
    round_trip(Frame::Heartbeat);
    round_trip(Frame::Accepted(Ack {
        ids: vec!["a", "b"],
    }));
    round_trip(Frame::Welcome(Welcome {
        session: "s-1",
        resumed: true,
        limits: Limits {
            max_frame_bytes: 1 << 20,
            max_inflight: 1024,
            default_timeout_ms: 30_000,
            max_timeout_ms: 3_600_000,
            session_grace_ms: 60_000,
            heartbeat_ms: 25_000,
        },
        resume_token: Some("tok"),
        server: Some("ferry-bridge/0.1.0"),
        user: Some("alice"),
    }));
    round_trip(Frame::Reply(Reply {
        id: "c1",
        content_type: None,
        headers: vec![],
        body: &[0, 1, 2, 255],
    }));
    round_trip(Frame::Progress(Progress {
        id: "c1",
        content_type: Some("application/json"),
        body: b"{}",
    }));
    round_trip(Frame::Error(ErrorFrame {
        id: Some("c1"),
        code: ErrorCode::Remote,
        message: "unknown patient 7",
        remote_code: Some("unknown_patient"),
        content_type: Some("application/json"),
        details: br#"{"patientId":7}"#,
    }));
}

#[test]
fn json_body_stays_readable_on_the_wire() {
    let body = br#"{"patientId":42}"#;
    let bytes = Frame::Request(Request {
        id: "c1",
        destination: "q",
        content_type: Some("application/json"),
        timeout_ms: None,
        idle_timeout_ms: None,
        headers: vec![],
        body,
    })
    .encode();
    assert!(bytes.ends_with(body));
}

#[test]
fn wire_layout_is_the_documented_one() {
    let bytes = Frame::Cancel(Cancel { id: "ab" }).encode();
    assert_eq!(bytes, [0x03, 0x01, 0x00, 0x02, b'a', b'b', 0x00]);
}

#[test]
fn unknown_tags_are_skipped() {
    let bytes = [0x03, 0x7f, 0x00, 0x01, 0xaa, 0x01, 0x00, 0x01, b'x', 0x00];
    assert_eq!(Frame::decode(&bytes), Ok(Frame::Cancel(Cancel { id: "x" })));
}

#[test]
fn malformed_input_names_the_problem() {
    assert_eq!(Frame::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(
        Frame::decode(&[0x42, 0x00]),
        Err(DecodeError::UnknownKind(0x42))
    );
    assert_eq!(Frame::decode(&[0x03]), Err(DecodeError::NoEndTag));
    assert_eq!(
        Frame::decode(&[0x03, 0x01, 0x00]),
        Err(DecodeError::Truncated(0x01))
    );
    assert_eq!(
        Frame::decode(&[0x03, 0x01, 0x00, 0x05, b'a']),
        Err(DecodeError::Truncated(0x01))
    );
    assert_eq!(
        Frame::decode(&[0x03, 0x00]),
        Err(DecodeError::MissingField {
            frame: "cancel",
            field: "id"
        })
    );
    assert_eq!(
        Frame::decode(&[0x03, 0x01, 0x00, 0x01, 0xff, 0x00]),
        Err(DecodeError::InvalidUtf8("id"))
    );
    assert_eq!(
        Frame::decode(&[
            0x02, 0x01, 0, 1, b'i', 0x02, 0, 1, b'q', 0x04, 0, 2, 0, 1, 0x00
        ]),
        Err(DecodeError::BadLength {
            field: "timeout_ms",
            expected: 4,
            got: 2
        })
    );
    let cancel = Frame::Cancel(Cancel { id: "x" }).encode();
    assert!(Frame::decode_from_client(&cancel).is_ok());
    let reply = Frame::Reply(Reply {
        id: "x",
        content_type: None,
        headers: vec![],
        body: &[],
    })
    .encode();
    assert_eq!(
        Frame::decode_from_client(&reply),
        Err(DecodeError::WrongDirection("reply"))
    );
    assert!(Frame::decode_from_bridge(&reply).is_ok());
    assert_eq!(
        Frame::decode_from_bridge(&cancel),
        Err(DecodeError::NotFromBridge("cancel"))
    );
}

#[test]
fn each_direction_decodes_its_frames_as_the_generic_decoder_does() {
    let bridge_frames = [
        Frame::Reply(Reply {
            id: "r",
            content_type: Some("application/json"),
            headers: vec![("x-a", "1")],
            body: b"{}",
        }),
        Frame::Welcome(Welcome {
            session: "s",
            resumed: true,
            limits: Limits {
                max_frame_bytes: 1,
                max_inflight: 2,
                default_timeout_ms: 3,
                max_timeout_ms: 4,
                session_grace_ms: 5,
                heartbeat_ms: 6,
            },
            resume_token: Some("t"),
            server: Some("ferry-bridge"),
            user: None,
        }),
        Frame::Heartbeat,
    ];
    for frame in bridge_frames {
        let bytes = frame.encode();
        assert_eq!(Frame::decode_from_bridge(&bytes), Frame::decode(&bytes));
        assert_eq!(Frame::decode_from_bridge(&bytes).as_ref(), Ok(&frame));
    }
    let hello = Frame::Hello(Hello {
        client: Some("c"),
        resume: Some("s"),
        resume_token: Some("t"),
        attach: vec![Attach {
            id: "a",
            timeout_ms: 10,
            idle_timeout_ms: None,
            destination: "q",
        }],
        acks: true,
        token: Some("t"),
    });
    let bytes = hello.encode();
    assert_eq!(Frame::decode_from_client(&bytes).as_ref(), Ok(&hello));
    // A client-only tag in a bridge frame is skipped like an unknown one, by both decoders.
    let (id, dest) = ([tag::ID, 0, 1, b'r'], [tag::DESTINATION, 0, 1, b'q']);
    let reply = [&[kind::REPLY][..], &id, &dest, &[tag::END]].concat();
    let expected = Frame::Reply(Reply {
        id: "r",
        content_type: None,
        headers: vec![],
        body: &[],
    });
    assert_eq!(Frame::decode_from_bridge(&reply), Ok(expected.clone()));
    assert_eq!(Frame::decode(&reply), Ok(expected));
}

#[test]
fn random_bytes_never_panic() {
    // A small deterministic xorshift so the test needs no dependency.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut buf = Vec::new();
    for _ in 0..20_000 {
        buf.clear();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 40) as usize;
        for i in 0..len {
            let b = (state >> ((i % 8) * 8)) as u8;
            buf.push(if i == 0 { b % 5 } else { b % 20 });
        }
        let _ = Frame::decode(&buf);
    }
}

#[test]
fn over_long_text_is_cut_at_a_char_boundary() {
    let long = "é".repeat(40_000); // 80,000 bytes
    let bytes = Frame::Error(ErrorFrame {
        id: None,
        code: ErrorCode::Internal,
        message: &long,
        remote_code: None,
        content_type: None,
        details: &[],
    })
    .encode();
    match Frame::decode(&bytes) {
        Ok(Frame::Error(e)) => assert!(e.message.len() <= 65_535 && e.message.len() % 2 == 0),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_truncated_attach_is_an_error() {
    // HELLO, ATTACH field of 8 bytes: the id length byte is missing.
    let mut bytes = vec![0x01, super::tag::ATTACH, 0, 8];
    bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    bytes.push(super::tag::END);
    assert_eq!(
        Frame::decode(&bytes),
        Err(DecodeError::Truncated(super::tag::ATTACH))
    );
    // The id length says 5, only 2 bytes follow.
    let mut bytes = vec![0x01, super::tag::ATTACH, 0, 11];
    bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 5, b'a', b'b']);
    bytes.push(super::tag::END);
    assert_eq!(
        Frame::decode(&bytes),
        Err(DecodeError::Truncated(super::tag::ATTACH))
    );
}

#[test]
fn repeatable_fields_are_capped_before_they_grow() {
    use crate::validate::{MAX_ACK_IDS, MAX_HEADERS};
    // 33 empty headers: one more than any valid request carries.
    let mut buf = vec![kind::REQUEST];
    for _ in 0..=MAX_HEADERS {
        buf.extend_from_slice(&[tag::HEADER, 0, 1, 0]);
    }
    buf.push(tag::END);
    assert_eq!(
        Frame::decode_from_client(&buf),
        Err(DecodeError::TooMany("header"))
    );
    let mut buf = vec![kind::ACK];
    for _ in 0..=MAX_ACK_IDS {
        buf.extend_from_slice(&[tag::ID, 0, 1, b'x']);
    }
    buf.push(tag::END);
    assert_eq!(
        Frame::decode_from_client(&buf),
        Err(DecodeError::TooMany("id"))
    );
}

#[test]
fn each_side_reads_the_id_lists_meant_for_it() {
    // The client learns which requests the broker took (ACCEPTED), the bridge which replies
    // arrived (ACK); a decoder for one direction must still read the list of ids.
    let accepted = Frame::Accepted(Ack {
        ids: vec!["a", "b"],
    });
    assert_eq!(Frame::decode_from_bridge(&accepted.encode()), Ok(accepted));
    let ack = Frame::Ack(Ack { ids: vec!["c"] });
    assert_eq!(Frame::decode_from_client(&ack.encode()), Ok(ack));
}
