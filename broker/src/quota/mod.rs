//! Per-caller grant quotas over several fixed windows at once (e.g. per minute and per day).
//!
//! A grant is charged to every window of the caller in one atomic step: either every window had room and all are
//! incremented, or none is. A request that then fails for a passing reason (an outage of the credential store or of
//! Cognito) refunds exactly what was charged; one that would fail the same way again keeps it (see
//! `BrokerError::refunds_charge`).
//!
//! Windows are fixed and aligned to the Unix epoch (a `day` window runs 00:00–24:00 UTC), so every broker instance
//! computes the same counter key for the same moment without coordination, and a counter can be deleted by a TTL
//! once its window has ended. Two implementations: [`DynamoQuotaStore`] (production; table design in
//! `docs/quota-table.md`) and [`MemoryQuotaStore`] (unit tests, benchmarks, the local stack).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tb_shared::ids::CallerId;
use tb_shared::policy::QuotaWindow;

pub(crate) mod dynamo;
mod memory;

pub use dynamo::{DynamoQuotaConfig, DynamoQuotaStore};
pub use memory::MemoryQuotaStore;

/// Proof of a successful charge, needed to refund it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Who was charged.
    pub caller: CallerId,
    /// One entry per window charged: the counter's window name and window start (Unix seconds).
    pub counters: Vec<ChargedCounter>,
}

/// One counter that a charge incremented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargedCounter {
    /// The window's name in the policy (`minute`, `day`, `90s`).
    pub window: String,
    /// Start of the window, Unix seconds.
    pub window_start: u64,
    /// Length of the window.
    pub window_length: Duration,
}

/// Result of asking for one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaOutcome {
    /// Every window had room and has been charged.
    Granted(Charge),
    /// At least one window is full; nothing was charged. `retry_after` is how long until every window that is full
    /// now has reset.
    Exhausted {
        /// Until every window that is full now has reset.
        retry_after: Duration,
        /// The name of a full window.
        window: String,
    },
}

/// The quota store could not answer. The broker fails closed on it (503, no token, no upstream call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant is documented by its #[error] text
pub enum QuotaError {
    #[error("quota store unavailable: {0}")]
    Unavailable(String),
}

/// Atomic multi-window counters.
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// Charges one grant to every window, or to none.
    async fn try_charge(
        &self,
        caller: &CallerId,
        windows: &[QuotaWindow],
        now: SystemTime,
    ) -> Result<QuotaOutcome, QuotaError>;

    /// Gives back a charge after the request failed for a passing reason. The handler bounds the call by the
    /// Lambda's deadline and drops it when time runs out, so an implementation must leave the counters sound if it
    /// is cancelled at an await (a lost decrement only over-counts).
    async fn refund(&self, charge: &Charge) -> Result<(), QuotaError>;
}

/// The fixed window that contains a moment: `[start, end)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowSpan {
    pub start: u64,
    pub end: u64,
}

/// Seconds since the epoch, with the sub-second part, of `now`. A clock before 1970 is a broken host: the stores
/// refuse to guess and fail closed.
pub(crate) fn epoch(now: SystemTime) -> Result<Duration, QuotaError> {
    now.duration_since(UNIX_EPOCH).map_err(|_| QuotaError::Unavailable("system clock is before the Unix epoch".into()))
}

/// The window of `length` containing `now` (epoch-aligned). A zero length cannot come out of a validated policy;
/// it is treated as one second rather than dividing by zero.
pub(crate) fn span(now: Duration, length: Duration) -> WindowSpan {
    let len = length.as_secs().max(1);
    let secs = now.as_secs();
    let start = secs - secs % len;
    WindowSpan { start, end: start.saturating_add(len) }
}

/// Time from `now` until `end`, rounded up to whole seconds and at least one second, so that a client honouring
/// `Retry-After` never comes back before the window has actually reset.
pub(crate) fn until(now: Duration, end: u64) -> Duration {
    let end = Duration::from_secs(end);
    let left = end.saturating_sub(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

/// Builds the `Exhausted` answer from the windows that are full now: the client must wait for the latest of their
/// resets, since retrying after an earlier one would be refused by the window still full.
pub(crate) fn exhausted<'a>(
    now: Duration,
    full: impl IntoIterator<Item = (&'a QuotaWindow, WindowSpan)>,
) -> QuotaOutcome {
    let mut best: Option<(&QuotaWindow, WindowSpan)> = None;
    for (w, s) in full {
        if best.is_none_or(|(_, b)| s.end > b.end) {
            best = Some((w, s));
        }
    }
    match best {
        Some((w, s)) => QuotaOutcome::Exhausted { retry_after: until(now, s.end), window: w.name.clone() },
        // Callers only pass a non-empty set; if not, one second is the smallest honest answer.
        None => QuotaOutcome::Exhausted { retry_after: Duration::from_secs(1), window: String::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch() {
        let now = Duration::from_secs(86_400 * 3 + 3_725); // day 3, 01:02:05
        assert_eq!(
            span(now, Duration::from_secs(60)),
            WindowSpan { start: 86_400 * 3 + 3_720, end: 86_400 * 3 + 3_780 }
        );
        assert_eq!(
            span(now, Duration::from_secs(3_600)),
            WindowSpan { start: 86_400 * 3 + 3_600, end: 86_400 * 3 + 7_200 }
        );
        assert_eq!(span(now, Duration::from_secs(86_400)), WindowSpan { start: 86_400 * 3, end: 86_400 * 4 });
        assert_eq!(span(now, Duration::ZERO), WindowSpan { start: now.as_secs(), end: now.as_secs() + 1 });
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one_second() {
        assert_eq!(until(Duration::from_millis(59_001), 60), Duration::from_secs(1));
        assert_eq!(until(Duration::from_millis(58_999), 60), Duration::from_secs(2));
        assert_eq!(until(Duration::from_secs(60), 60), Duration::from_secs(1));
        assert_eq!(until(Duration::from_secs(10), 60), Duration::from_secs(50));
    }

    #[test]
    fn exhausted_waits_for_the_latest_full_window() {
        let minute = QuotaWindow { name: "minute".into(), length: Duration::from_secs(60), limit: 1 };
        let day = QuotaWindow { name: "day".into(), length: Duration::from_secs(86_400), limit: 1 };
        let now = Duration::from_secs(86_400 + 30);
        let out = exhausted(now, [(&minute, span(now, minute.length)), (&day, span(now, day.length))]);
        assert_eq!(
            out,
            QuotaOutcome::Exhausted { retry_after: Duration::from_secs(86_400 - 30), window: "day".into() }
        );
        let out = exhausted(now, [(&minute, span(now, minute.length))]);
        assert_eq!(out, QuotaOutcome::Exhausted { retry_after: Duration::from_secs(30), window: "minute".into() });
    }
}
