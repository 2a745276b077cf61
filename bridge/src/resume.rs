//! Session identity for resuming: a secret resume token per session, and the session id
//! derived from it and the session's user (`hex(sha256(user 0x00 token))[..32]`), so any
//! bridge can check a resume without shared state, a worker (which sees the id in
//! `reply_to`) cannot resume a session, and a token of another user cannot either.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// A fresh resume token: 128 random bits, hex.
pub fn new_token() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// The session id a resume token of `user` (empty without authentication) belongs to.
pub fn session_of(token: &str, user: &str) -> String {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(token.as_bytes());
    hex(&h.finalize()[..16])
}

/// True when `token` is `user`'s resume token of `session`.
pub fn verify(session: &str, token: &str, user: &str) -> bool {
    !token.is_empty() && session_of(token, user) == session
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The sessions this bridge holds (attached to a socket, or detached in their grace
/// period): a resume of one of them on this bridge takes it over at once, instead of
/// waiting for the old socket's ping timeout.
#[derive(Default)]
pub struct Holders {
    map: Mutex<HashMap<String, (u64, CancellationToken)>>,
    next: AtomicU64,
}

/// One holder's claim on a session; [`Holders::release`] gives it up.
pub struct Claim {
    /// Cancelled when a newer holder took the session over.
    pub superseded: CancellationToken,
    generation: u64,
}

impl Holders {
    /// Makes the caller the session's holder; the previous holder (if any) is superseded.
    pub fn claim(&self, session: &str) -> Claim {
        let generation = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let token = CancellationToken::new();
        if let Ok(mut map) = self.map.lock()
            && let Some((_, old)) = map.insert(session.to_owned(), (generation, token.clone()))
        {
            old.cancel();
        }
        Claim {
            superseded: token,
            generation,
        }
    }

    /// Gives up a claim (a no-op when a newer holder has the session).
    pub fn release(&self, session: &str, claim: &Claim) {
        if let Ok(mut map) = self.map.lock()
            && map
                .get(session)
                .is_some_and(|(g, _)| *g == claim.generation)
        {
            map.remove(session);
        }
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_proves_its_session_only() {
        let t = new_token();
        assert_eq!(t.len(), 32);
        let s = session_of(&t, "alice");
        assert_eq!(s.len(), 32);
        assert!(verify(&s, &t, "alice"));
        assert!(
            !verify(&s, &t, "mallory"),
            "another user's token cannot resume it"
        );
        assert!(!verify(&s, &new_token(), "alice"));
        assert!(!verify(&s, "", "alice"));
        assert!(!verify(&t, &s, "alice"), "the id does not prove itself");
    }

    #[test]
    fn a_newer_claim_supersedes_and_survives_the_old_release() {
        let h = Holders::default();
        let a = h.claim("s");
        let b = h.claim("s");
        assert!(a.superseded.is_cancelled());
        assert!(!b.superseded.is_cancelled());
        h.release("s", &a);
        assert_eq!(h.len(), 1, "the old holder's release leaves the new claim");
        h.release("s", &b);
        assert!(h.is_empty());
    }
}
