//! W3C Trace Context (`traceparent`): parsing a client's header and writing the bridge's.
//!
//! A request that carries a `traceparent` header belongs to that trace: the bridge checks it
//! (a malformed one is refused with `bad_request`), starts its own span in it, and hands the
//! worker a `traceparent` naming that span as the parent (docs/protocol.md §1).

use alloc::string::String;
use core::fmt::Write as _;

/// The header's name (a client sends it as an ordinary request header).
pub const TRACEPARENT: &str = "traceparent";
/// The companion header, passed on unchanged.
pub const TRACESTATE: &str = "tracestate";

/// A parsed `traceparent`: `version-traceid-parentid-flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// The caller's span: 8 bytes, not all zero.
    pub parent_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None, // W3C: lowercase only
    }
}

fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(out)
}

impl TraceParent {
    /// Parses a header value; `None` when it is not a valid W3C `traceparent` (version
    /// `ff`, upper-case hex, an all-zero id, wrong lengths; a future version may append
    /// `-fields` after the 55 characters of version 00).
    pub fn parse(value: &str) -> Option<Self> {
        let b = value.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let [version] = hex::<1>(&b[..2])?;
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let trace_id = hex::<16>(&b[3..35])?;
        let parent_id = hex::<8>(&b[36..52])?;
        let [flags] = hex::<1>(&b[53..55])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The `traceparent` (version 00) of a child span `span_id` in this trace.
    pub fn child(&self, span_id: [u8; 8]) -> String {
        let mut out = String::with_capacity(55);
        let _ = write!(
            out,
            "00-{}-{}-{:02x}",
            to_hex(&self.trace_id),
            to_hex(&span_id),
            self.flags
        );
        out
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_w3c_example_and_writes_a_child() {
        let t = TraceParent::parse(VALID).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.flags, 1);
        assert_eq!(
            t.child([1, 2, 3, 4, 5, 6, 7, 8]),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01"
        );
        assert!(TraceParent::parse(&alloc::format!("cc{}-later", &VALID[2..])).is_some());
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        for bad in [
            "",
            "00-abc-def-01",
            &VALID.to_uppercase(),
            &VALID.replace("00-4b", "ff-4b"),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            &alloc::format!("{VALID}-extra"),
            &VALID.replace('-', "_"),
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }
}
