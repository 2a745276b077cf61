//! The app's options as they cross from JS: typed structs read by serde-wasm-bindgen from
//! the objects the app passes, then checked once into what the machine takes. A value of the
//! wrong type is kept as [`Number::Wrong`] (not a serde error, which names no option), so
//! the check can say which option it was, with the protocol crate's message.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use ferry_protocol::validate::ValidationError;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

use crate::machine::{CONNECT_TIMEOUT_MS, Policy, millis};

/// An option the app may have given: absent (`undefined`, `null`), a value of its type, or
/// a value of another type.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Given<T> {
    /// Not given.
    #[default]
    Absent,
    /// A value of the option's type (the check decides whether it is in range).
    Value(T),
    /// Given, but of another type.
    Wrong,
}

/// A number option.
pub type Number = Given<f64>;
/// A string option (`whileReconnecting`).
pub type Choice = Given<String>;

impl Number {
    /// As the machine takes it: a wrong type becomes NaN, which the machine's range check
    /// refuses with the option's name, like any other out-of-range value.
    pub fn value(self) -> Option<f64> {
        match self {
            Self::Absent => None,
            Self::Value(v) => Some(v),
            Self::Wrong => Some(f64::NAN),
        }
    }
}

/// What a lenient option holds: the JS value's kind, and its contents where kept.
pub enum Leaf {
    /// `undefined` or `null`.
    Absent,
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Text(String),
    /// An object, read as a reconnect policy.
    Policy(ReconnectPolicy),
    /// Anything else.
    Other,
}

/// Reads any JS value without failing (an object only as a reconnect policy).
struct Lenient;

impl<'de> Visitor<'de> for Lenient {
    type Value = Leaf;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Absent)
    }
    fn visit_none<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Absent)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Leaf, E> {
        Ok(Leaf::Bool(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Leaf, E> {
        Ok(Leaf::Number(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Leaf, E> {
        Ok(Leaf::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Leaf, E> {
        Ok(Leaf::Number(v as f64))
    }
    fn visit_str<E>(self, v: &str) -> Result<Leaf, E> {
        Ok(Leaf::Text(v.into()))
    }
    fn visit_string<E>(self, v: String) -> Result<Leaf, E> {
        Ok(Leaf::Text(v))
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Leaf, E> {
        Ok(Leaf::Other)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Leaf, A::Error> {
        Ok(Leaf::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Leaf, A::Error> {
        let policy = ReconnectPolicy::deserialize(de::value::MapAccessDeserializer::new(map));
        Ok(policy.map_or(Leaf::Other, Leaf::Policy))
    }
}

fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Leaf, D::Error> {
    d.deserialize_any(Lenient)
}

/// The types a [`Given`] option can hold: what of a JS value is one.
pub trait FromLeaf: Sized {
    /// The value, if the JS value is of this type.
    fn from_leaf(leaf: Leaf) -> Option<Self>;
}

impl FromLeaf for f64 {
    fn from_leaf(leaf: Leaf) -> Option<Self> {
        match leaf {
            Leaf::Number(v) => Some(v),
            _ => None,
        }
    }
}

impl FromLeaf for String {
    fn from_leaf(leaf: Leaf) -> Option<Self> {
        match leaf {
            Leaf::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de, T: FromLeaf> Deserialize<'de> for Given<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match read(d)? {
            Leaf::Absent => Self::Absent,
            leaf => T::from_leaf(leaf).map_or(Self::Wrong, Self::Value),
        })
    }
}

/// `reconnect`: `true` (the default policy), `false` (none), or an object of delays.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Reconnect {
    /// Not given: reconnect with the defaults.
    #[default]
    Absent,
    /// `true` or `false`.
    Flag(bool),
    /// An object.
    Policy(ReconnectPolicy),
    /// Something else.
    Wrong,
}

impl<'de> Deserialize<'de> for Reconnect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match read(d)? {
            Leaf::Absent => Self::Absent,
            Leaf::Bool(b) => Self::Flag(b),
            Leaf::Policy(p) => Self::Policy(p),
            _ => Self::Wrong,
        })
    }
}

/// `reconnect: { initialDelayMs, maxDelayMs, maxAttempts }`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReconnectPolicy {
    /// First backoff ceiling (default 250 ms).
    pub initial_delay_ms: Number,
    /// Largest backoff ceiling (default 10 s).
    pub max_delay_ms: Number,
    /// Attempts before giving up (default 0: no limit).
    pub max_attempts: Number,
}

/// `connect(url, options)`'s options that the client itself uses (the JS layer keeps the
/// rest: `WebSocket`, `token`, `signal`, `persist`'s storage, `onStateChange`, ...).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConnectOptions {
    /// Time for a socket to open and the bridge to answer HELLO.
    pub connect_timeout_ms: Number,
    /// The default `timeoutMs` of a request.
    pub timeout_ms: Number,
    /// The reconnect policy.
    pub reconnect: Reconnect,
    /// `"queue"` (default) or `"reject"`.
    pub while_reconnecting: Choice,
    /// Requests that may wait while reconnecting (default 1000).
    pub max_queued: Number,
}

/// The connect options, checked.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The reconnect policy and connect timeout for the machine.
    pub policy: Policy,
    /// The default `timeoutMs`, if given.
    pub default_timeout_ms: Option<u32>,
}

/// What `connect()` in JS needs for retrying the first connection (`WasmClient.backoff`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// First backoff ceiling.
    pub initial_ms: u32,
    /// Largest backoff ceiling.
    pub max_ms: u32,
    /// Attempts before giving up (0: no limit).
    pub attempts: u32,
}

/// A count or delay that must be >= 0 (absent: `dflt`), saturating at `u32::MAX`.
fn at_least_zero(n: Number, dflt: u32, name: &'static str) -> Result<u32, ValidationError> {
    match n {
        Number::Absent => Ok(dflt),
        Number::Value(v) if v >= 0.0 => Ok(if v >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            v as u32
        }),
        _ => Err(ValidationError::NotNegative(name)),
    }
}

impl ConnectOptions {
    /// The one check of the connect options; the error names the option.
    pub fn check(&self, persist: bool) -> Result<Config, ValidationError> {
        let default_timeout_ms =
            millis(self.timeout_ms.value()).map_err(|()| ValidationError::Positive("timeoutMs"))?;
        let connect_timeout_ms = millis(self.connect_timeout_ms.value())
            .map_err(|()| ValidationError::Positive("connectTimeoutMs"))?
            .unwrap_or(CONNECT_TIMEOUT_MS as u32);
        let reject = match &self.while_reconnecting {
            Choice::Absent => false,
            Choice::Value(s) if s == "queue" => false,
            Choice::Value(s) if s == "reject" => true,
            _ => return Err(ValidationError::WhileReconnecting),
        };
        let max_queued = if reject {
            0
        } else {
            at_least_zero(self.max_queued, 1000, "maxQueued")?
        };
        let mut policy = Policy {
            connect_timeout_ms,
            persist,
            ..Policy::default()
        };
        let delays = match &self.reconnect {
            Reconnect::Absent | Reconnect::Flag(true) => Some(ReconnectPolicy::default()),
            Reconnect::Flag(false) => None,
            Reconnect::Policy(p) => Some(p.clone()),
            Reconnect::Wrong => return Err(ValidationError::Reconnect),
        };
        if let Some(p) = delays {
            let initial = at_least_zero(p.initial_delay_ms, 250, "reconnect.initialDelayMs")?;
            let max = at_least_zero(p.max_delay_ms, 10_000, "reconnect.maxDelayMs")?;
            policy.initial_ms = initial.max(1);
            policy.max_ms = max.max(1);
            policy.attempts = at_least_zero(p.max_attempts, 0, "reconnect.maxAttempts")?;
            policy.max_queued = max_queued;
        }
        Ok(Config {
            policy,
            default_timeout_ms,
        })
    }
}

impl Config {
    /// The first connection's retry policy, or `None` without reconnecting.
    pub fn backoff(&self) -> Option<Backoff> {
        (self.policy.initial_ms > 0).then_some(Backoff {
            initial_ms: self.policy.initial_ms,
            max_ms: self.policy.max_ms,
            attempts: self.policy.attempts,
        })
    }
}

/// A request's or a gather's options, as `js/core.js` passes them (headers already as
/// `[name, value]` pairs of strings, the content type decided with the body's encoding).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallOptions {
    /// `timeoutMs` (a gather's `windowMs`).
    pub timeout_ms: Number,
    /// `idleTimeoutMs`.
    pub idle_timeout_ms: Number,
    /// The body's content type.
    pub content_type: Option<String>,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// A gather's routing key.
    pub routing_key: Option<String>,
    /// A gather's `maxReplies`.
    pub max_replies: Number,
    /// What the app attached to a request (kept in the snapshot, handed back by `resumed()`).
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub meta: JsValue,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error, MapDeserializer};

    fn options(pairs: &[(&'static str, f64)]) -> ConnectOptions {
        let map = MapDeserializer::<_, Error>::new(pairs.iter().copied());
        ConnectOptions::deserialize(map).unwrap()
    }

    #[test]
    fn defaults_reconnect_and_queue() {
        let c = ConnectOptions::default().check(false).unwrap();
        assert_eq!(c.default_timeout_ms, None);
        assert_eq!(c.policy.connect_timeout_ms, CONNECT_TIMEOUT_MS as u32);
        assert_eq!((c.policy.initial_ms, c.policy.max_ms), (250, 10_000));
        assert_eq!((c.policy.attempts, c.policy.max_queued), (0, 1000));
        assert_eq!(
            c.backoff(),
            Some(Backoff {
                initial_ms: 250,
                max_ms: 10_000,
                attempts: 0
            })
        );
    }

    #[test]
    fn numbers_are_read_by_name() {
        let o = options(&[("timeoutMs", 5000.0), ("maxQueued", 3.0)]);
        let c = o.check(true).unwrap();
        assert_eq!(c.default_timeout_ms, Some(5000));
        assert_eq!(c.policy.max_queued, 3);
        assert!(c.policy.persist);
    }

    #[test]
    fn each_bad_option_is_named() {
        let cases = [
            (
                options(&[("timeoutMs", 0.0)]),
                "timeoutMs must be a positive number",
            ),
            (
                options(&[("connectTimeoutMs", -5.0)]),
                "connectTimeoutMs must be a positive number",
            ),
            (
                options(&[("maxQueued", -1.0)]),
                "maxQueued must be a number >= 0",
            ),
        ];
        for (o, msg) in cases {
            assert_eq!(o.check(false).unwrap_err().to_string(), msg);
        }
        let wrong = ConnectOptions {
            timeout_ms: Number::Wrong,
            ..ConnectOptions::default()
        };
        let e = wrong.check(false).unwrap_err();
        assert_eq!(e.to_string(), "timeoutMs must be a positive number");
        let wrong = ConnectOptions {
            reconnect: Reconnect::Policy(ReconnectPolicy {
                initial_delay_ms: Number::Wrong,
                ..ReconnectPolicy::default()
            }),
            ..ConnectOptions::default()
        };
        let e = wrong.check(false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "reconnect.initialDelayMs must be a number >= 0"
        );
        for (choice, ok) in [("queue", true), ("reject", true), ("maybe", false)] {
            let o = ConnectOptions {
                while_reconnecting: Choice::Value(choice.into()),
                ..ConnectOptions::default()
            };
            assert_eq!(o.check(false).is_ok(), ok, "{choice}");
        }
        let o = ConnectOptions {
            reconnect: Reconnect::Wrong,
            ..ConnectOptions::default()
        };
        assert_eq!(o.check(false).unwrap_err(), ValidationError::Reconnect);
    }

    #[test]
    fn no_reconnect_means_no_backoff_and_no_queue() {
        let o = ConnectOptions {
            reconnect: Reconnect::Flag(false),
            ..ConnectOptions::default()
        };
        let c = o.check(false).unwrap();
        assert_eq!(c.backoff(), None);
        assert_eq!(c.policy.max_queued, 0);
        let o = ConnectOptions {
            while_reconnecting: Choice::Value("reject".into()),
            ..ConnectOptions::default()
        };
        assert_eq!(o.check(false).unwrap().policy.max_queued, 0);
    }
}
