//! Who may see which patient: the care teams, keyed by the caller the bridge names in the
//! `x-ferry-user` header (the access token's `sub`; no client can set it).
//!
//! A request without the header comes through a bridge that does not authenticate: every
//! patient is visible, as before authentication existed. A named caller sees only the
//! patients of their care team; anyone else, none.

use lapin::types::{AMQPValue, FieldTable};

/// The header the bridge sets to the authenticated caller.
pub const HEADER_USER: &str = "x-ferry-user";

/// The demo's clinicians and the patient ids in their care.
pub const CARE_TEAMS: [(&str, std::ops::RangeInclusive<u64>); 2] =
    [("dr.okafor", 1..=6), ("dr.lindqvist", 7..=12)];

/// The caller named in the request's headers, if any.
pub fn caller(headers: Option<&FieldTable>) -> Option<String> {
    match headers?.inner().get(HEADER_USER)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// True when `caller` (or an unauthenticated request, `None`) may see patient `id`.
pub fn may_see(caller: Option<&str>, id: u64) -> bool {
    let Some(user) = caller else {
        return true;
    };
    CARE_TEAMS
        .iter()
        .any(|(clinician, ids)| *clinician == user && ids.contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_clinician_sees_their_own_patients_only() {
        assert!(may_see(Some("dr.okafor"), 3));
        assert!(!may_see(Some("dr.okafor"), 7));
        assert!(may_see(Some("dr.lindqvist"), 7));
        assert!(!may_see(Some("someone.else"), 1));
        assert!(may_see(None, 12), "no bridge auth: everything, as before");
    }
}
