//! API Gateway's throttling: token buckets for the stage and for each usage-plan key, and the plan's daily quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tb_shared::sync::lock;

/// A token bucket: `rate` tokens/s up to `burst`.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(super) fn new(burst: u32) -> Self {
        Bucket { tokens: f64::from(burst), last: Instant::now() }
    }

    /// Refills for the time since the last call and takes one token if there is one.
    pub(super) fn take(&mut self, rate: f64, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A usage plan's limits for each of its API keys.
#[derive(Debug, Clone, Copy)]
pub(super) struct PlanLimits {
    pub rate: f64,
    pub burst: u32,
    pub daily_quota: u64,
}

/// Why the usage plan refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlanRefusal {
    /// The key's rate/burst bucket is empty (`THROTTLED`).
    Throttled,
    /// The key used up today's quota (`QUOTA_EXCEEDED`).
    QuotaExceeded,
}

/// Per-key buckets and per-key, per-UTC-day request counts of one usage plan.
#[derive(Debug, Default)]
pub(super) struct UsagePlan {
    buckets: Mutex<HashMap<String, Bucket>>,
    daily: Mutex<HashMap<(String, u64), u64>>,
}

impl UsagePlan {
    /// Admits one request of `key` (rate/burst first, then the daily quota, which only admitted requests count
    /// against), or says why not.
    pub(super) fn admit(&self, key: &str, limits: PlanLimits) -> Result<(), PlanRefusal> {
        let ok = lock(&self.buckets).entry(key.to_owned()).or_insert_with(|| Bucket::new(limits.burst)).take(
            limits.rate,
            limits.burst,
            Instant::now(),
        );
        if !ok {
            return Err(PlanRefusal::Throttled);
        }
        let day = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
        let mut daily = lock(&self.daily);
        let used = daily.entry((key.to_owned(), day)).or_insert(0);
        if *used >= limits.daily_quota {
            return Err(PlanRefusal::QuotaExceeded);
        }
        *used += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn buckets_refill_at_rate_up_to_burst() {
        let mut b = Bucket::new(2);
        let t0 = Instant::now();
        assert!(b.take(1.0, 2, t0));
        assert!(b.take(1.0, 2, t0));
        assert!(!b.take(1.0, 2, t0));
        assert!(b.take(1.0, 2, t0 + Duration::from_millis(1100)));
        assert!(!b.take(1.0, 2, t0 + Duration::from_millis(1100)));
    }

    #[test]
    fn the_plan_throttles_then_counts_the_day() {
        let plan = UsagePlan::default();
        let limits = PlanLimits { rate: 0.0, burst: 2, daily_quota: 1 };
        assert_eq!(plan.admit("k", limits), Ok(()));
        assert_eq!(plan.admit("k", limits), Err(PlanRefusal::QuotaExceeded));
        assert_eq!(plan.admit("k", limits), Err(PlanRefusal::Throttled));
        assert_eq!(plan.admit("other", limits), Ok(()), "keys are counted apart");
    }
}
