//! In-memory quota counters with the same semantics as the DynamoDB store: epoch-aligned fixed windows, all windows
//! charged or none, refunds that never go below zero.
//!
//! One process only, so it is for unit tests, benchmarks and the local stack, never for a fleet of Lambdas (each
//! instance would count on its own and a caller would get the limit once per instance).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use tb_shared::ids::CallerId;
use tb_shared::policy::QuotaWindow;

use super::{epoch, exhausted, span, Charge, ChargedCounter, QuotaError, QuotaOutcome, QuotaStore};

/// Counter key: caller, window length in seconds, window start. The length, not the name, identifies a window so
/// that renaming `day` to `86400s` in the policy keeps counting the same grants (the DynamoDB key does the same).
type Key = (CallerId, u64, u64);

#[derive(Default)]
struct State {
    counters: HashMap<Key, u64>,
    /// Map size at which ended windows are swept out; doubles with the live size so sweeping stays amortised O(1).
    sweep_at: usize,
}

/// Quota counters in a mutex-guarded map.
#[derive(Default)]
pub struct MemoryQuotaStore {
    state: Mutex<State>,
    unavailable: AtomicBool,
}

const MIN_SWEEP_AT: usize = 1024;

impl MemoryQuotaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates an outage: while set, every call answers [`QuotaError::Unavailable`] (fault tests, local stack).
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }

    /// The current count of `caller` in the `window` that contains `now` (tests and the local stack's explain).
    pub fn count(&self, caller: &CallerId, window: &QuotaWindow, now: SystemTime) -> u64 {
        let Ok(now) = epoch(now) else { return 0 };
        let s = span(now, window.length);
        let state = self.lock();
        state.counters.get(&(caller.clone(), window.length.as_secs().max(1), s.start)).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a counter half-updated (each update is one integer store), so
        // a poisoned lock is still consistent.
        tb_shared::sync::lock(&self.state)
    }

    fn check_up(&self) -> Result<(), QuotaError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(QuotaError::Unavailable("in-memory quota store switched off".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl QuotaStore for MemoryQuotaStore {
    async fn try_charge(
        &self,
        caller: &CallerId,
        windows: &[QuotaWindow],
        now: SystemTime,
    ) -> Result<QuotaOutcome, QuotaError> {
        self.check_up()?;
        let now = epoch(now)?;
        let spans: Vec<_> = windows.iter().map(|w| (w, span(now, w.length))).collect();
        let mut state = self.lock();

        if state.counters.len() >= state.sweep_at.max(MIN_SWEEP_AT) {
            let secs = now.as_secs();
            state.counters.retain(|(_, len, start), _| start.saturating_add(*len) > secs);
            state.sweep_at = (state.counters.len() * 2).max(MIN_SWEEP_AT);
        }

        let key = |w: &QuotaWindow, start: u64| (caller.clone(), w.length.as_secs().max(1), start);
        let full: Vec<_> = spans
            .iter()
            .filter(|(w, s)| state.counters.get(&key(w, s.start)).copied().unwrap_or(0) >= w.limit)
            .copied()
            .collect();
        if !full.is_empty() {
            return Ok(exhausted(now, full));
        }
        let mut counters = Vec::with_capacity(spans.len());
        for (w, s) in &spans {
            *state.counters.entry(key(w, s.start)).or_insert(0) += 1;
            counters.push(ChargedCounter { window: w.name.clone(), window_start: s.start, window_length: w.length });
        }
        Ok(QuotaOutcome::Granted(Charge { caller: caller.clone(), counters }))
    }

    async fn refund(&self, charge: &Charge) -> Result<(), QuotaError> {
        self.check_up()?;
        let mut state = self.lock();
        for c in &charge.counters {
            let k = (charge.caller.clone(), c.window_length.as_secs().max(1), c.window_start);
            if let Some(n) = state.counters.get_mut(&k) {
                *n = n.saturating_sub(1);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    fn caller(s: &str) -> CallerId {
        CallerId::try_from(s).unwrap()
    }
    fn w(name: &str, secs: u64, limit: u64) -> QuotaWindow {
        QuotaWindow { name: name.into(), length: Duration::from_secs(secs), limit }
    }
    /// A fixed moment (2026-11-22 10:00:30 UTC), so no window rolls over during a test.
    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_341_630)
    }

    fn granted(o: QuotaOutcome) -> Charge {
        match o {
            QuotaOutcome::Granted(c) => c,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_never_exceed_three_a_day() {
        let store = Arc::new(MemoryQuotaStore::new());
        let day = [w("day", 86_400, 3)];
        let who = caller("svc-a");
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (store, day, who) = (store.clone(), day.clone(), who.clone());
                tokio::spawn(async move { store.try_charge(&who, &day, t0()).await.unwrap() })
            })
            .collect();
        let (mut grants, mut refusals) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                QuotaOutcome::Granted(_) => grants += 1,
                QuotaOutcome::Exhausted { retry_after, window } => {
                    assert!(retry_after >= Duration::from_secs(1));
                    assert_eq!(window, "day");
                    refusals += 1;
                }
            }
        }
        assert_eq!((grants, refusals), (3, 47));
        assert_eq!(store.count(&who, &day[0], t0()), 3);
    }

    #[tokio::test]
    async fn a_full_window_charges_no_other_window() {
        let store = MemoryQuotaStore::new();
        let windows = [w("minute", 60, 2), w("day", 86_400, 3)];
        let who = caller("svc-b");
        granted(store.try_charge(&who, &windows, t0()).await.unwrap());
        granted(store.try_charge(&who, &windows, t0()).await.unwrap());
        let out = store.try_charge(&who, &windows, t0()).await.unwrap();
        // 10:00:30 → the minute resets in 30 s.
        assert_eq!(out, QuotaOutcome::Exhausted { retry_after: Duration::from_secs(30), window: "minute".into() });
        assert_eq!(store.count(&who, &windows[0], t0()), 2);
        assert_eq!(store.count(&who, &windows[1], t0()), 2, "the refused request must not touch the day counter");

        // Next minute: room again in the minute, the day takes its third and last.
        let later = t0() + Duration::from_secs(60);
        granted(store.try_charge(&who, &windows, later).await.unwrap());
        let out = store.try_charge(&who, &windows, later).await.unwrap();
        let QuotaOutcome::Exhausted { retry_after, window } = out else { panic!("expected exhausted") };
        assert_eq!(window, "day");
        // Only the day is full (the minute holds 1 of 2): wait until midnight UTC from 10:01:30.
        assert_eq!(retry_after, Duration::from_secs(86_400 - (10 * 3_600 + 90)));
        assert_eq!(store.count(&who, &windows[0], later), 1);
    }

    #[tokio::test]
    async fn retry_after_is_the_latest_reset_of_the_full_windows() {
        let store = MemoryQuotaStore::new();
        let windows = [w("minute", 60, 1), w("hour", 3_600, 1)];
        let who = caller("svc-c");
        granted(store.try_charge(&who, &windows, t0()).await.unwrap());
        let out = store.try_charge(&who, &windows, t0()).await.unwrap();
        // Both full: retrying when the minute resets would still hit the hour.
        assert_eq!(
            out,
            QuotaOutcome::Exhausted { retry_after: Duration::from_secs(3_600 - 30), window: "hour".into() }
        );
    }

    #[tokio::test]
    async fn refund_gives_the_count_back_and_never_goes_negative() {
        let store = MemoryQuotaStore::new();
        let windows = [w("minute", 60, 1), w("day", 86_400, 5)];
        let who = caller("svc-d");
        let charge = granted(store.try_charge(&who, &windows, t0()).await.unwrap());
        assert_eq!(charge.counters.len(), 2);
        assert!(matches!(store.try_charge(&who, &windows, t0()).await.unwrap(), QuotaOutcome::Exhausted { .. }));
        store.refund(&charge).await.unwrap();
        assert_eq!(store.count(&who, &windows[0], t0()), 0);
        assert_eq!(store.count(&who, &windows[1], t0()), 0);
        store.refund(&charge).await.unwrap();
        assert_eq!(store.count(&who, &windows[1], t0()), 0);
        granted(store.try_charge(&who, &windows, t0()).await.unwrap());
    }

    #[tokio::test]
    async fn callers_are_counted_separately_and_windows_roll_over() {
        let store = MemoryQuotaStore::new();
        let day = [w("day", 86_400, 1)];
        granted(store.try_charge(&caller("a"), &day, t0()).await.unwrap());
        granted(store.try_charge(&caller("b"), &day, t0()).await.unwrap());
        assert!(matches!(store.try_charge(&caller("a"), &day, t0()).await.unwrap(), QuotaOutcome::Exhausted { .. }));
        granted(store.try_charge(&caller("a"), &day, t0() + Duration::from_secs(86_400)).await.unwrap());
    }

    #[tokio::test]
    async fn no_windows_means_no_limit() {
        let store = MemoryQuotaStore::new();
        let charge = granted(store.try_charge(&caller("a"), &[], t0()).await.unwrap());
        assert!(charge.counters.is_empty());
    }

    #[tokio::test]
    async fn outage_switch_fails_closed() {
        let store = MemoryQuotaStore::new();
        store.set_unavailable(true);
        let err = store.try_charge(&caller("a"), &[w("day", 86_400, 3)], t0()).await.unwrap_err();
        assert!(matches!(err, QuotaError::Unavailable(_)));
        store.set_unavailable(false);
        granted(store.try_charge(&caller("a"), &[w("day", 86_400, 3)], t0()).await.unwrap());
    }

    #[tokio::test]
    async fn ended_windows_are_swept() {
        let store = MemoryQuotaStore::new();
        let minute = [w("minute", 60, 1)];
        for i in 0..(MIN_SWEEP_AT as u64) {
            granted(store.try_charge(&caller(&format!("c{i}")), &minute, t0()).await.unwrap());
        }
        assert_eq!(store.lock().counters.len(), MIN_SWEEP_AT);
        granted(store.try_charge(&caller("late"), &minute, t0() + Duration::from_secs(120)).await.unwrap());
        assert_eq!(store.lock().counters.len(), 1, "counters of ended windows must be dropped");
    }
}
