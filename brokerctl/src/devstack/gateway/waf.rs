//! The optional WAF web ACL of the partner stage: a rate-based rule that counts each client IP's requests over an
//! evaluation window and blocks an IP while its count is over the limit, before API Gateway (and so the stage
//! throttle and the authorizer) sees the request.
//!
//! WAF estimates the rate and acts on it some seconds late; this emulation counts exactly and blocks at once, which
//! is what a test wants: the request after the limit-th one in the window is refused. Every request of the IP counts,
//! blocked ones too, so a client that keeps flooding stays blocked until it slows down.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tb_shared::sync::lock;

/// The rate-based rule's settings (`Limit` and `EvaluationWindowSec` of a WAF `RateBasedStatement` aggregated on
/// the client IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRateLimit {
    /// Most requests one IP may send within `window` (WAF accepts 10 and more).
    pub limit: u32,
    /// How far back the count looks (WAF offers 60, 120, 300 and 600 s).
    pub window: Duration,
}

impl IpRateLimit {
    /// The evaluation windows WAF accepts, in seconds.
    pub const WINDOWS: [u64; 4] = [60, 120, 300, 600];
    /// The smallest limit WAF accepts.
    pub const MIN_LIMIT: u32 = 10;
    /// The deployment template's rule: `PartnerWafRateLimit`'s default over its 300 s evaluation window.
    pub const TEMPLATE: IpRateLimit = IpRateLimit { limit: 300, window: Duration::from_secs(300) };

    /// A rule as WAF would accept it, or why not: the template can only deploy such a rule, so the local stack
    /// refuses what the deployment could not reproduce.
    pub fn new(limit: u32, window: Duration) -> Result<Self, String> {
        if limit < Self::MIN_LIMIT {
            return Err(format!("the per-IP rate limit must be at least {} requests (WAF's minimum)", Self::MIN_LIMIT));
        }
        if window.subsec_nanos() != 0 || !Self::WINDOWS.contains(&window.as_secs()) {
            return Err(format!("the evaluation window must be one of {:?} seconds", Self::WINDOWS));
        }
        Ok(IpRateLimit { limit, window })
    }
}

/// Request times per client IP, newest last, for one rule.
#[derive(Debug)]
pub(super) struct IpRateRule {
    rule: IpRateLimit,
    seen: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl IpRateRule {
    pub(super) fn new(rule: IpRateLimit) -> Self {
        IpRateRule { rule, seen: Mutex::new(HashMap::new()) }
    }

    /// Counts one request of `ip` at `now`; false when that IP is over the limit within the window (block it).
    pub(super) fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        let mut seen = lock(&self.seen);
        let times = seen.entry(ip).or_default();
        while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.rule.window) {
            times.pop_front();
        }
        let admitted = times.len() < self.rule.limit as usize;
        // The count needs no more than the limit's worth of times to decide; older extra ones are dropped so a
        // flood cannot grow the queue without bound.
        if times.len() > self.rule.limit as usize {
            times.pop_front();
        }
        times.push_back(now);
        admitted
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn only_rules_waf_accepts_are_built() {
        assert!(IpRateLimit::new(10, Duration::from_secs(60)).is_ok());
        assert!(IpRateLimit::new(2000, Duration::from_secs(300)).is_ok());
        assert!(IpRateLimit::new(9, Duration::from_secs(300)).unwrap_err().contains("at least 10"));
        assert!(IpRateLimit::new(100, Duration::from_secs(30)).unwrap_err().contains("60"));
        assert!(IpRateLimit::new(100, Duration::from_millis(60_500)).is_err());
    }

    #[test]
    fn an_ip_over_the_limit_is_blocked_until_its_window_count_drops() {
        let rule = IpRateRule::new(IpRateLimit { limit: 3, window: Duration::from_secs(60) });
        let (a, b) = (IpAddr::from(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::from(Ipv4Addr::new(192, 0, 2, 2)));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(rule.admit(a, t0 + Duration::from_secs(i)), "request {i}");
        }
        assert!(!rule.admit(a, t0 + Duration::from_secs(3)), "the fourth within the window");
        assert!(rule.admit(b, t0 + Duration::from_secs(3)), "each IP is counted apart");
        // Blocked requests count too: still flooding at 59 s, the IP is still over the limit.
        assert!(!rule.admit(a, t0 + Duration::from_secs(59)));
        // Once the window holds fewer than the limit, the IP gets through again.
        assert!(rule.admit(a, t0 + Duration::from_secs(120)));
    }

    #[test]
    fn a_flood_keeps_the_record_bounded() {
        let rule = IpRateRule::new(IpRateLimit { limit: 10, window: Duration::from_secs(600) });
        let ip = IpAddr::from(Ipv4Addr::LOCALHOST);
        let t0 = Instant::now();
        for i in 0..10_000 {
            rule.admit(ip, t0 + Duration::from_millis(i));
        }
        assert!(lock(&rule.seen)[&ip].len() <= 11);
    }
}
