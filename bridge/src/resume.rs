//! Session identity for resuming: a random session id, and a secret resume token that is
//! spent by each resume (WELCOME hands out the next). The token in force is proven by its
//! lease queue ([`crate::broker::lease`]), named `ferry.lease.<hex(sha256(len user len session
//! len token))[..32]>` (each part after its length, 8 bytes big-endian): any bridge checks a resume with one passive declare, a worker (which
//! sees the session id in `reply_to`) cannot resume a session, a token of another user names
//! no lease, and neither does a token already spent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// A fresh resume token: 128 random bits, hex.
pub fn new_token() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// A fresh session id: 128 random bits, hex.
pub fn new_session_id() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// The lease queue that exists while `token` is the current resume token of `user`'s (empty
/// without authentication) `session`.
pub fn lease_queue(user: &str, session: &str, token: &str) -> String {
    let mut h = Sha256::new();
    for part in [user, session, token] {
        // Length-prefixed, so no two (user, session, token) triples hash the same input.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!(
        "{}{}",
        crate::broker::lease::LEASE_QUEUE_PREFIX,
        hex(&h.finalize()[..16])
    )
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
    fn a_lease_names_user_session_and_token_together() {
        let (t, s) = (new_token(), new_session_id());
        assert_eq!((t.len(), s.len()), (32, 32));
        let lease = lease_queue("alice", &s, &t);
        assert!(lease.starts_with("ferry.lease."));
        assert_eq!(lease, lease_queue("alice", &s, &t));
        assert_ne!(
            lease,
            lease_queue("mallory", &s, &t),
            "another user's token"
        );
        assert_ne!(
            lease,
            lease_queue("alice", &s, &new_token()),
            "another token"
        );
        assert_ne!(
            lease,
            lease_queue("alice", &new_session_id(), &t),
            "another session"
        );
        assert_ne!(lease_queue("a", "b\0c", "d"), lease_queue("a\0b", "c", "d"));
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
