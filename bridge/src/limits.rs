//! Admission limits: the global connection cap, sockets and the session-open rate per client
//! address (taken from `X-Forwarded-For` only when the peer is a `--trusted-proxy`), and the
//! token bucket that rate-limits one socket's requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::HeaderMap;
use ipnet::IpNet;

/// Addresses remembered before idle ones are swept.
const SWEEP_AT: usize = 4096;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            last: Instant::now(),
            rate: f64::from(rate),
            burst: f64::from(burst),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when the bucket has refilled completely (nothing to remember).
    fn full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

/// Why a socket is refused at the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address has `--max-connections-per-ip` sockets open.
    TooManySockets,
    /// The address opens sockets faster than `--session-rate`.
    TooFast,
}

impl Refusal {
    /// The HTTP body.
    pub fn message(self) -> &'static str {
        match self {
            Self::TooManySockets => "too many connections from this address\n",
            Self::TooFast => "opening connections too fast; slow down\n",
        }
    }
}

struct PerIp {
    sockets: u32,
    opens: Bucket,
}

/// Per-address socket counts and open rates.
pub struct Admission {
    map: Mutex<HashMap<IpAddr, PerIp>>,
    max_sockets: u32,
    rate: u32,
    trusted: Vec<IpNet>,
}

/// One admitted socket's place in its address's count; given back on drop.
pub struct Permit {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut map) = self.admission.map.lock()
            && let Some(e) = map.get_mut(&self.ip)
        {
            e.sockets = e.sockets.saturating_sub(1);
        }
    }
}

impl Admission {
    /// Limits of `max_sockets` per address and `rate` opens a second (bursts of twice that).
    pub fn new(max_sockets: u32, rate: u32, trusted: Vec<IpNet>) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max_sockets,
            rate,
            trusted,
        }
    }

    /// True when `ip` is a `--trusted-proxy`.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The client address of a request from `peer`: the peer itself, unless it is a trusted
    /// proxy, in which case the nearest untrusted address of `X-Forwarded-For`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted.iter().any(|n| n.contains(&peer)) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        hops.into_iter()
            .rev()
            .find(|ip| !self.trusted.iter().any(|n| n.contains(ip)))
            .unwrap_or(peer)
    }

    /// Admits one more socket from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut map = self.map.lock().map_err(|_| Refusal::TooFast)?;
        if map.len() >= SWEEP_AT {
            let now = Instant::now();
            map.retain(|_, e| e.sockets > 0 || !e.opens.full_at(now));
        }
        let entry = map.entry(ip).or_insert_with(|| PerIp {
            sockets: 0,
            opens: Bucket::new(self.rate, self.rate.saturating_mul(2)),
        });
        if entry.sockets >= self.max_sockets {
            return Err(Refusal::TooManySockets);
        }
        if !entry.opens.take() {
            return Err(Refusal::TooFast);
        }
        entry.sockets += 1;
        Ok(Permit {
            admission: self.clone(),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let mut b = Bucket::new(10, 3);
        let t0 = Instant::now();
        assert!(b.take_at(t0) && b.take_at(t0) && b.take_at(t0));
        assert!(!b.take_at(t0), "the burst is spent");
        assert!(
            b.take_at(t0 + Duration::from_millis(100)),
            "one token in 100 ms"
        );
        assert!(!b.take_at(t0 + Duration::from_millis(100)));
        let later = t0 + Duration::from_secs(60);
        assert!(b.full_at(later));
        let n = (0..10).filter(|_| b.take_at(later)).count();
        assert_eq!(n, 3, "never more than the burst");
    }

    #[test]
    fn sockets_per_address_are_counted_and_given_back() {
        let a = Arc::new(Admission::new(2, 1000, vec![]));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let p1 = a.admit(ip).unwrap();
        let _p2 = a.admit(ip).unwrap();
        assert_eq!(a.admit(ip).err(), Some(Refusal::TooManySockets));
        assert!(a.admit([10, 0, 0, 2].into()).is_ok(), "another address");
        drop(p1);
        assert!(a.admit(ip).is_ok());
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let a = Admission::new(1, 1, vec!["10.0.0.0/8".parse().unwrap()]);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.1.1.1".parse().unwrap());
        let proxy: IpAddr = [10, 0, 0, 5].into();
        assert_eq!(a.client_ip(proxy, &h), IpAddr::from([203, 0, 113, 9]));
        let direct: IpAddr = [198, 51, 100, 7].into();
        assert_eq!(
            a.client_ip(direct, &h),
            direct,
            "a client cannot claim another address"
        );
        assert_eq!(a.client_ip(proxy, &HeaderMap::new()), proxy);
    }
}
