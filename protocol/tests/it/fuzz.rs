//! Property tests of the decoder and the request rules (proptest, on stable): no input makes
//! them panic, every repeatable list a decoded frame holds stays within its cap (so a message
//! cannot allocate more than its own size suggests), and what the encoder writes decodes to
//! the same frame. Also replays the corpus in `tests/corpus/` (inputs worth keeping: shapes
//! that once mattered), each through every decoder.
//!
//! A short bounded pass runs in every `cargo test` (and so in CI); `PROPTEST_CASES=100000`
//! runs a long one.

use ferry_protocol::validate::{self, MAX_ACK_IDS, MAX_ATTACH, MAX_HEADERS};
use ferry_protocol::{Frame, Request};
use proptest::prelude::*;

/// Decodes `bytes` every way; checks the caps and runs the bridge's validation.
fn exercise(bytes: &[u8]) {
    for decoded in [
        Frame::decode(bytes),
        Frame::decode_from_client(bytes),
        Frame::decode_from_bridge(bytes),
    ] {
        let Ok(frame) = decoded else { continue };
        match &frame {
            Frame::Request(r) => {
                assert!(r.headers.len() <= MAX_HEADERS);
                let _ = validate::request(r);
            }
            Frame::Gather(g) => {
                assert!(g.headers.len() <= MAX_HEADERS);
                let _ = validate::gather(g);
            }
            Frame::Ack(a) => assert!(a.ids.len() <= MAX_ACK_IDS),
            Frame::Hello(h) => {
                assert!(h.attach.len() <= MAX_ATTACH);
                for a in &h.attach {
                    let _ = validate::id(a.id);
                    let _ = validate::destination(a.destination);
                }
            }
            Frame::Reply(r) => assert!(r.headers.len() <= MAX_HEADERS),
            _ => {}
        }
        // Whatever decoded encodes and decodes to itself.
        let again = frame.encode();
        assert_eq!(Frame::decode(&again).as_ref(), Ok(&frame));
    }
}

/// Field lists built from valid-looking tags, so the decoder gets past the kind byte often.
fn tagged() -> impl Strategy<Value = Vec<u8>> {
    let field = (0u8..0x20, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(tag, v)| {
        let mut f = vec![tag];
        f.extend_from_slice(&(v.len() as u16).to_be_bytes());
        f.extend_from_slice(&v);
        f
    });
    (
        prop::sample::select(vec![
            0x01u8, 0x02, 0x03, 0x04, 0x05, 0x06, 0x81, 0x82, 0x83, 0x87,
        ]),
        prop::collection::vec(field, 0..60),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(kind, fields, body)| {
            let mut m = vec![kind];
            for f in fields {
                m.extend(f);
            }
            m.push(0);
            m.extend(body);
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn tagged_fields_never_panic_and_respect_the_caps(bytes in tagged()) {
        exercise(&bytes);
    }

    #[test]
    fn requests_round_trip(
        id in "[!-~]{1,40}",
        dest in "[a-z0-9._:-]{1,60}",
        headers in prop::collection::vec(("[a-z0-9_-]{1,20}", "[ -~]{0,60}"), 0..8),
        body in prop::collection::vec(any::<u8>(), 0..200),
        timeout in proptest::option::of(any::<u32>()),
    ) {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let frame = Frame::Request(Request {
            id: &id,
            destination: &dest,
            content_type: Some("application/json"),
            timeout_ms: timeout,
            idle_timeout_ms: None,
            headers,
            body: &body,
        });
        let bytes = frame.encode();
        prop_assert_eq!(Frame::decode_from_client(&bytes), Ok(frame));
    }
}

#[test]
fn the_corpus_decodes_without_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus folder") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        exercise(&bytes);
        n += 1;
    }
    assert!(n >= 8, "the corpus has its inputs ({n})");
}
