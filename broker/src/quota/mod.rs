//! Per-caller grant quotas over several fixed windows at once (e.g. per minute and per day).
//!
//! A grant is charged to every window of the caller in one atomic step: either every window had room and all are
//! incremented, or none is. A failed upstream call refunds exactly what was charged.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tb_shared::ids::CallerId;
use tb_shared::policy::QuotaWindow;

/// Proof of a successful charge, needed to refund it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub caller: CallerId,
    /// One entry per window charged: the counter's window name and window start (Unix seconds).
    pub counters: Vec<ChargedCounter>,
}

/// One counter that a charge incremented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargedCounter {
    pub window: String,
    pub window_start: u64,
    pub window_length: Duration,
}

/// Result of asking for one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaOutcome {
    /// Every window had room and has been charged.
    Granted(Charge),
    /// At least one window is full; nothing was charged. `retry_after` is how long until every window that is full
    /// now has reset.
    Exhausted { retry_after: Duration, window: String },
}

/// The quota store could not answer. The broker fails closed on it (503, no token, no upstream call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

    /// Gives back a charge after the upstream call failed.
    async fn refund(&self, charge: &Charge) -> Result<(), QuotaError>;
}
