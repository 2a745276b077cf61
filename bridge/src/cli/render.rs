//! How `ferry-bridge call` shows bodies: JSON pretty-printed (keys in the worker's order),
//! text as is, other bytes raw on stdout or as numbers inside JSON lines.

use std::io::Write as _;

use super::call::CallError;

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().ends_with("json"))
    })
}

fn is_text(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.starts_with("text/"))
}

/// A body as JSON: parsed JSON, a text string, or bytes as an array of numbers.
pub(super) fn json_value(body: &[u8], content_type: Option<&str>) -> serde_json::Value {
    if is_json(content_type)
        && let Ok(v) = serde_json::from_slice(body)
    {
        return v;
    }
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::Value::String(text.to_owned()),
        Err(_) => serde_json::json!(body),
    }
}

/// A body for people: JSON pretty-printed, text as is.
pub(super) fn pretty(body: &[u8], content_type: Option<&str>) -> String {
    if is_json(content_type)
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
    {
        return serde_json::to_string_pretty(&v).unwrap_or_default();
    }
    String::from_utf8_lossy(body).into_owned()
}

/// A progress message on one line.
pub(super) fn one_line(body: &[u8], content_type: Option<&str>) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if is_json(content_type) => v.to_string(),
        _ => String::from_utf8_lossy(body).replace('\n', " "),
    }
}

/// The reply on stdout: JSON pretty-printed, text as is, other bytes raw.
pub(super) fn print_body(body: &[u8], content_type: Option<&str>) -> Result<(), CallError> {
    let mut out = std::io::stdout().lock();
    let written = if is_json(content_type) || is_text(content_type) {
        writeln!(out, "{}", pretty(body, content_type))
    } else {
        out.write_all(body)
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| CallError::Connection(format!("cannot write the reply: {e}")))
}
