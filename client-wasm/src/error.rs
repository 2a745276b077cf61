//! Failures before they become JS `FerryError`s (`host.rs` makes them), and their messages
//! (built without `core::fmt`, which would cost the wasm several kilobytes). No JS here.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use ferry_protocol::ErrorCode;
use ferry_protocol::validate::{Subject, ValidationError};

/// A failure the client reports: a code, a message, and optional extras.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The stable code (`error.code`).
    pub code: ErrorCode,
    /// A message a person understands.
    pub message: String,
    /// The request's correlation id.
    pub id: Option<String>,
    /// A worker's error body and its content type (decoded by the host), if any.
    pub details: Option<Box<(Vec<u8>, Option<String>)>>,
    /// The worker's own error code (for `remote`).
    pub remote_code: Option<String>,
}

impl Failure {
    /// A failure with just a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            id: None,
            details: None,
            remote_code: None,
        }
    }

    /// Adds the correlation id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Concatenates string pieces.
pub fn cat(parts: &[&str]) -> String {
    // Not `concat()`: its generic join costs the wasm about 1 KB.
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// Appends the decimal form of `n`.
pub fn push_u32(out: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// The code and the protocol crate's message for a request field that breaks a protocol
/// rule (the message's pieces joined here: `core::fmt` would cost the wasm kilobytes).
pub fn invalid(e: &ValidationError) -> Failure {
    let m = e.message();
    let mut msg = String::from(m.before);
    match m.subject {
        Subject::None => {}
        Subject::Text(t) => msg.push_str(t),
        Subject::Number(n) => push_u32(&mut msg, u32::try_from(n).unwrap_or(u32::MAX)),
    }
    msg.push_str(m.after);
    Failure::new(e.code(), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_without_fmt() {
        for n in [0u32, 7, 10, 1006, 4000, u32::MAX] {
            let mut s = String::new();
            push_u32(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn validation_failures_keep_the_protocol_code() {
        let e = ValidationError::ReservedHeader("x-ferry-kind".into());
        let f = invalid(&e);
        assert_eq!(f.code, ErrorCode::Forbidden);
        assert_eq!(f.message, e.to_string());
        let e = ValidationError::HeaderBytes(20_000);
        assert_eq!(invalid(&e).message, e.to_string());
        let f = invalid(&ValidationError::Destination);
        assert_eq!(f.code, ErrorCode::BadRequest);
    }
}
