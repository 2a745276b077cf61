//! Bodies: JS value → bytes + content type for a request, bytes + content type → JS value for
//! a reply, progress message or error details. JSON goes through the host's `JSON`, not serde.

use js_sys::{ArrayBuffer, JSON, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

/// Content type of a JSON body.
pub const JSON_TYPE: &str = "application/json";
/// Content type of a text body.
pub const TEXT_TYPE: &str = "text/plain; charset=utf-8";
/// Content type of a bytes body.
pub const BYTES_TYPE: &str = "application/octet-stream";

/// How a received body is turned into a JS value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `application/json` or `*/*+json`: parsed with `JSON.parse`.
    Json,
    /// `text/*`: a string.
    Text,
    /// Anything else (or no content type): a `Uint8Array`.
    Bytes,
}

/// Classifies a content type (case-insensitive, parameters ignored).
pub fn kind_of(content_type: Option<&str>) -> Kind {
    let Some(ct) = content_type else {
        return Kind::Bytes;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().as_bytes();
    let starts =
        |p: &str| essence.len() >= p.len() && essence[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    let ends = |p: &str| {
        essence.len() >= p.len()
            && essence[essence.len() - p.len()..].eq_ignore_ascii_case(p.as_bytes())
    };
    if essence.eq_ignore_ascii_case(JSON_TYPE.as_bytes())
        || (starts("application/") && ends("+json"))
    {
        Kind::Json
    } else if starts("text/") {
        Kind::Text
    } else {
        Kind::Bytes
    }
}

/// A request body ready for the wire.
pub struct Encoded {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its content type, if any.
    pub content_type: Option<String>,
}

/// Copies the bytes of a `Uint8Array`, `ArrayBuffer` or other `ArrayBuffer` view.
fn bytes_of(value: &JsValue) -> Option<Vec<u8>> {
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        return Some(a.to_vec());
    }
    if let Some(b) = value.dyn_ref::<ArrayBuffer>() {
        return Some(Uint8Array::new(b).to_vec());
    }
    if ArrayBuffer::is_view(value) {
        let buffer = js_sys::Reflect::get(value, &"buffer".into()).ok()?;
        let offset = js_sys::Reflect::get(value, &"byteOffset".into()).ok()?;
        let len = js_sys::Reflect::get(value, &"byteLength".into()).ok()?;
        let view = Uint8Array::new_with_byte_offset_and_length(
            &buffer,
            offset.as_f64()? as u32,
            len.as_f64()? as u32,
        );
        return Some(view.to_vec());
    }
    None
}

/// Encodes a request body. `content_type` (the caller's override) makes a string or bytes
/// body go out verbatim with that type. The error is a message for a `bad_request`.
pub fn encode(value: &JsValue, content_type: Option<String>) -> Result<Encoded, String> {
    if value.is_undefined() {
        return Ok(Encoded {
            bytes: Vec::new(),
            content_type,
        });
    }
    if let Some(s) = value.as_string() {
        return Ok(Encoded {
            bytes: s.into_bytes(),
            content_type: Some(content_type.unwrap_or_else(|| TEXT_TYPE.into())),
        });
    }
    if let Some(bytes) = bytes_of(value) {
        return Ok(Encoded {
            bytes,
            content_type: Some(content_type.unwrap_or_else(|| BYTES_TYPE.into())),
        });
    }
    if content_type
        .as_deref()
        .is_some_and(|ct| kind_of(Some(ct)) != Kind::Json)
    {
        return Err("with a non-JSON contentType the body must be a string or bytes".into());
    }
    match JSON::stringify(value) {
        Ok(s) => match s.as_string() {
            Some(s) => Ok(Encoded {
                bytes: s.into_bytes(),
                content_type: Some(content_type.unwrap_or_else(|| JSON_TYPE.into())),
            }),
            None => Err("body cannot be represented as JSON".into()),
        },
        Err(e) => Err(js_message("body is not JSON-serialisable", &e)),
    }
}

/// `prefix: <the JS error's message>`.
pub fn js_message(prefix: &str, error: &JsValue) -> String {
    let detail = js_sys::Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string());
    let mut out = String::from(prefix);
    if let Some(d) = detail {
        out.push_str(": ");
        out.push_str(&d);
    }
    out
}

/// Decodes a received body. A JSON content type with a body that does not parse is an
/// error carrying the text (the caller turns it into a FerryError). Text that is not UTF-8
/// is handed over as bytes.
pub fn decode(bytes: &[u8], content_type: Option<&str>) -> Result<JsValue, JsValue> {
    let kind = kind_of(content_type);
    let text = match kind {
        Kind::Bytes => None,
        _ => std::str::from_utf8(bytes).ok(),
    };
    match (kind, text) {
        (Kind::Text, Some(t)) => Ok(JsValue::from_str(t)),
        (Kind::Json, Some(t)) => JSON::parse(t).map_err(|_| JsValue::from_str(t)),
        (Kind::Json, None) => Err(Uint8Array::from(bytes).into()),
        _ => Ok(Uint8Array::from(bytes).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_classify() {
        assert_eq!(kind_of(Some("application/json")), Kind::Json);
        assert_eq!(kind_of(Some("Application/JSON; charset=utf-8")), Kind::Json);
        assert_eq!(kind_of(Some("application/problem+json")), Kind::Json);
        assert_eq!(kind_of(Some("text/plain; charset=utf-8")), Kind::Text);
        assert_eq!(kind_of(Some("text/csv")), Kind::Text);
        assert_eq!(kind_of(Some("application/octet-stream")), Kind::Bytes);
        assert_eq!(kind_of(Some("")), Kind::Bytes);
        assert_eq!(kind_of(None), Kind::Bytes);
    }
}
