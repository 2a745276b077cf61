//! The pending map and its one timer: pure bookkeeping, no JS types (generic over the slot).
//!
//! Every request (and the handshake) is one entry: id → slot, with an absolute deadline in
//! milliseconds. The client arms ONE timer for the earliest deadline instead of one timer
//! per request; [`TimerPlan`] decides when that timer must be re-armed. The entries live in
//! a plain `Vec` scanned linearly: the bridge caps a connection at `max_inflight` (1,024 by
//! default), where a scan costs microseconds, and a `Vec` adds almost nothing to the wasm
//! (a `BTreeMap` pair cost 12 KB). Everything here runs natively in unit tests.

use alloc::string::String;
use alloc::vec::Vec;
/// One entry: its id, deadline, and what the caller stored.
struct Entry<T> {
    id: String,
    deadline: u64,
    slot: T,
}

/// Pending entries keyed by correlation id.
pub struct Pending<T> {
    entries: Vec<Entry<T>>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<T> Pending<T> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.id == id)
    }

    /// True when `id` is pending.
    pub fn contains(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    /// Adds an entry. An id already present is refused and the slot handed back.
    pub fn insert(&mut self, id: String, deadline: u64, slot: T) -> Result<(), T> {
        if self.contains(&id) {
            return Err(slot);
        }
        self.entries.push(Entry { id, deadline, slot });
        Ok(())
    }

    /// Moves an entry's deadline to `deadline` if that is later (progress on a request with
    /// an idle timeout); false when `id` is not pending.
    pub fn extend(&mut self, id: &str, deadline: u64) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        let e = &mut self.entries[i];
        e.deadline = e.deadline.max(deadline);
        true
    }

    /// A shared reference to a slot.
    pub fn get(&self, id: &str) -> Option<&T> {
        self.position(id).map(|i| &self.entries[i].slot)
    }

    /// A mutable reference to a slot.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        let i = self.position(id)?;
        Some(&mut self.entries[i].slot)
    }

    /// Every slot, mutably, with its id.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut T)> {
        self.entries
            .iter_mut()
            .map(|e| (e.id.as_str(), &mut e.slot))
    }

    /// The deadline of `id`.
    pub fn deadline(&self, id: &str) -> Option<u64> {
        self.position(id).map(|i| self.entries[i].deadline)
    }

    /// Every entry as `(id, deadline, slot)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64, &T)> {
        self.entries
            .iter()
            .map(|e| (e.id.as_str(), e.deadline, &e.slot))
    }

    /// Removes an entry (reply, error, abort, ...) and returns its slot.
    pub fn remove(&mut self, id: &str) -> Option<T> {
        let i = self.position(id)?;
        Some(self.entries.swap_remove(i).slot)
    }

    /// Removes every entry `pick` selects (in no particular order: sorting would cost the
    /// wasm a sort implementation, and nothing depends on the order).
    fn take_where(&mut self, pick: impl Fn(&Entry<T>) -> bool) -> Vec<(String, T)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if pick(&self.entries[i]) {
                let e = self.entries.swap_remove(i);
                out.push((e.id, e.slot));
            } else {
                i += 1;
            }
        }
        out
    }

    /// Removes and returns every entry whose slot `pick` selects, in no particular order.
    pub fn take_slots(&mut self, pick: impl Fn(&T) -> bool) -> Vec<(String, T)> {
        self.take_where(|e| pick(&e.slot))
    }

    /// Removes and returns every entry whose deadline is at or before `now`, in no particular order.
    pub fn take_expired(&mut self, now: u64) -> Vec<(String, T)> {
        self.take_where(|e| e.deadline <= now)
    }

    /// Removes and returns every entry (close, disconnect).
    pub fn drain(&mut self) -> Vec<(String, T)> {
        self.take_where(|_| true)
    }

    /// The earliest deadline, if anything is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        self.entries.iter().map(|e| e.deadline).min()
    }
}

/// The largest delay `setTimeout` honours (2^31 - 1 ms); longer ones fire at once.
pub const MAX_TIMER_DELAY_MS: u64 = 0x7fff_ffff;

/// What to do with the one timer after the pending map changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// The timer is already right.
    Keep,
    /// Nothing is pending: clear the armed timer.
    Clear,
    /// (Re-)arm: clear any armed timer, then set one `delay_ms` from now.
    Arm {
        /// Delay to pass to `setTimeout`.
        delay_ms: u64,
    },
}

/// Tracks which deadline the timer is armed for.
#[derive(Debug, Default)]
pub struct TimerPlan {
    armed_for: Option<u64>,
}

impl TimerPlan {
    /// Decides what to do given the earliest pending deadline and the current time, and
    /// records the new state. The timer fires at the earliest deadline (or at the longest
    /// delay `setTimeout` honours; the caller then simply plans again).
    pub fn plan(&mut self, next: Option<u64>, now: u64) -> TimerAction {
        match (next, self.armed_for) {
            (None, None) => TimerAction::Keep,
            (None, Some(_)) => {
                self.armed_for = None;
                TimerAction::Clear
            }
            (Some(n), Some(a)) if n == a => TimerAction::Keep,
            (Some(n), _) => {
                self.armed_for = Some(n);
                TimerAction::Arm {
                    delay_ms: n.saturating_sub(now).min(MAX_TIMER_DELAY_MS),
                }
            }
        }
    }

    /// The timer fired (it is no longer armed).
    pub fn fired(&mut self) {
        self.armed_for = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_and_len() {
        let mut p = Pending::default();
        assert!(p.insert("a".into(), 100, 1).is_ok());
        assert!(p.insert("b".into(), 50, 2).is_ok());
        assert_eq!(p.insert("a".into(), 10, 3), Err(3));
        assert_eq!(p.len(), 2);
        assert_eq!(p.next_deadline(), Some(50));
        assert_eq!(p.remove("b"), Some(2));
        assert_eq!(p.remove("b"), None);
        assert_eq!(p.next_deadline(), Some(100));
        assert_eq!(p.remove("a"), Some(1));
        assert!(p.is_empty());
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn expired_entries_come_out_and_later_ones_stay() {
        let mut p = Pending::default();
        p.insert("late".into(), 300, "l").unwrap();
        p.insert("x".into(), 100, "x").unwrap();
        p.insert("y".into(), 100, "y").unwrap();
        p.insert("early".into(), 50, "e").unwrap();
        assert!(p.take_expired(49).is_empty());
        let got = p.take_expired(100);
        let mut ids: Vec<_> = got.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["early", "x", "y"]);
        assert_eq!(p.len(), 1);
        assert_eq!(p.next_deadline(), Some(300));
        assert_eq!(p.drain().len(), 1);
        assert!(p.is_empty());
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn drain_empties_both_indexes() {
        let mut p = Pending::default();
        for i in 0..1000u64 {
            p.insert(format!("id{i}"), 1000 - i, i).unwrap();
        }
        p.remove("id5");
        assert_eq!(p.next_deadline(), Some(1));
        let all = p.drain();
        assert_eq!(all.len(), 999);
        assert!(all.iter().all(|(id, v)| *id == format!("id{v}")));
        assert!(p.is_empty());
        assert!(p.take_expired(u64::MAX).is_empty());
    }

    #[test]
    fn progress_extends_a_deadline_but_never_shortens_it() {
        let mut p = Pending::default();
        p.insert("idle".into(), 100, ()).unwrap();
        p.insert("fixed".into(), 150, ()).unwrap();
        assert!(p.extend("idle", 180));
        assert!(p.extend("fixed", 120)); // earlier than its own: no change
        assert!(!p.extend("unknown", 500));
        assert_eq!(p.next_deadline(), Some(150));
        assert_eq!(p.take_expired(160).len(), 1);
        assert_eq!(p.next_deadline(), Some(180));
    }

    #[test]
    fn a_reused_id_after_removal_is_accepted() {
        let mut p = Pending::default();
        p.insert("a".into(), 10, 1).unwrap();
        p.remove("a");
        p.insert("a".into(), 20, 2).unwrap();
        assert_eq!(p.take_expired(15), vec![]);
        assert_eq!(p.take_expired(20), vec![("a".to_string(), 2)]);
    }

    #[test]
    fn timer_is_armed_once_for_the_earliest_deadline() {
        let mut t = TimerPlan::default();
        assert_eq!(t.plan(None, 0), TimerAction::Keep);
        assert_eq!(t.plan(Some(100), 10), TimerAction::Arm { delay_ms: 90 });
        assert_eq!(t.plan(Some(100), 20), TimerAction::Keep);
        assert_eq!(t.plan(Some(50), 20), TimerAction::Arm { delay_ms: 30 });
        assert_eq!(t.plan(Some(100), 30), TimerAction::Arm { delay_ms: 70 });
        assert_eq!(t.plan(None, 40), TimerAction::Clear);
        assert_eq!(t.plan(None, 40), TimerAction::Keep);
    }

    #[test]
    fn timer_rearms_after_firing_and_clamps_long_delays() {
        let mut t = TimerPlan::default();
        assert_eq!(t.plan(Some(100), 0), TimerAction::Arm { delay_ms: 100 });
        t.fired();
        assert_eq!(t.plan(Some(100), 99), TimerAction::Arm { delay_ms: 1 });
        assert_eq!(t.plan(Some(5), 10), TimerAction::Arm { delay_ms: 0 });
        assert_eq!(
            t.plan(Some(u64::MAX), 0),
            TimerAction::Arm {
                delay_ms: MAX_TIMER_DELAY_MS
            }
        );
    }
}
