//! Injectable faults for token requests. NOT FOR PRODUCTION.
//!
//! Why: the broker must behave when Cognito is slow (timeouts), down (retry, circuit breaker) or throttling (the
//! account-wide M2M request quota, which both entry points count against), and a test has to produce each of those
//! on demand and switch it off again. Faults apply to every token request, whichever entry point it uses:
//! `POST /oauth2/token` and the `GetClientToken` API operation take uses from the same switches, in arrival order,
//! each answering in its own protocol (an OAuth error JSON there, an `InternalErrorException` or
//! `TooManyRequestsException` here). The JWKS and the secret-rotation operations keep answering, so verification
//! and rotation still work.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use super::lock;

/// How a throttled request is answered. Cognito's OAuth endpoints do not document their throttling answer; its JSON
/// API answers HTTP 400 with a `TooManyRequestsException`. Both shapes exist so a caller can be tested against each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleStyle {
    /// HTTP 400, `{"__type":"TooManyRequestsException","message":"Rate exceeded"}` (Cognito's API shape).
    CognitoBadRequest,
    /// HTTP 429 with the same body and `Retry-After: 1`.
    TooManyRequests,
}

/// How many of the coming requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remaining {
    Next(u64),
    All,
}

impl Remaining {
    /// Consumes one use; returns whether the fault fires and whether it is still armed afterwards.
    fn take(self) -> (bool, Option<Remaining>) {
        match self {
            Remaining::All => (true, Some(Remaining::All)),
            Remaining::Next(0) => (false, None),
            Remaining::Next(1) => (true, None),
            Remaining::Next(n) => (true, Some(Remaining::Next(n - 1))),
        }
    }
}

#[derive(Debug, Default)]
struct FaultState {
    delay: Duration,
    fail: Option<(Remaining, u16)>,
    throttle: Option<(Remaining, ThrottleStyle)>,
}

/// What the next request gets: a delay, then maybe an injected answer instead of the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Injected {
    ServerError(u16),
    Throttled(ThrottleStyle),
}

/// The fault switches of one stand-in. Changes apply to the next request that arrives.
///
/// When both a 5xx fault and a throttling fault are armed, the 5xx fires first; each fault counts down only when it
/// fires.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

impl Faults {
    /// Every token request waits `delay` before it is answered (zero turns it off).
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    /// The next `n` token requests get HTTP `status` (500–599): `{"error":"server_error"}` at the token endpoint,
    /// `InternalErrorException` from `GetClientToken`.
    ///
    /// # Panics
    /// If `status` is not a 5xx: a test bug, not a request.
    pub fn fail_next(&self, n: u64, status: u16) {
        assert!((500..=599).contains(&status), "fail_next takes a 5xx status, got {status}");
        lock(&self.state).fail = (n > 0).then_some((Remaining::Next(n), status));
    }

    /// Every token request gets HTTP `status` (500–599) until [`Faults::clear`].
    ///
    /// # Panics
    /// If `status` is not a 5xx.
    pub fn fail_all(&self, status: u16) {
        assert!((500..=599).contains(&status), "fail_all takes a 5xx status, got {status}");
        lock(&self.state).fail = Some((Remaining::All, status));
    }

    /// The next `n` token requests are throttled: in `style` at the token endpoint, always as Cognito's API
    /// throttles (HTTP 400 `TooManyRequestsException`) from `GetClientToken`.
    pub fn throttle_next(&self, n: u64, style: ThrottleStyle) {
        lock(&self.state).throttle = (n > 0).then_some((Remaining::Next(n), style));
    }

    /// Every token request is throttled in `style` until [`Faults::clear`].
    pub fn throttle_all(&self, style: ThrottleStyle) {
        lock(&self.state).throttle = Some((Remaining::All, style));
    }

    /// Turns every fault off, delay included.
    pub fn clear(&self) {
        *lock(&self.state) = FaultState::default();
    }

    /// The current delay.
    pub fn delay(&self) -> Duration {
        lock(&self.state).delay
    }

    /// Decides what the request arriving now gets, consuming one use of the fault that fires.
    pub(super) fn take(&self) -> (Duration, Option<Injected>) {
        let mut st = lock(&self.state);
        let delay = st.delay;
        if let Some((remaining, status)) = st.fail {
            let (fires, next) = remaining.take();
            st.fail = next.map(|r| (r, status));
            if fires {
                return (delay, Some(Injected::ServerError(status)));
            }
        }
        if let Some((remaining, style)) = st.throttle {
            let (fires, next) = remaining.take();
            st.throttle = next.map(|r| (r, style));
            if fires {
                return (delay, Some(Injected::Throttled(style)));
            }
        }
        (delay, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_n_counts_down_and_all_persists() {
        let f = Faults::default();
        f.fail_next(2, 503);
        assert_eq!(f.take().1, Some(Injected::ServerError(503)));
        assert_eq!(f.take().1, Some(Injected::ServerError(503)));
        assert_eq!(f.take().1, None);

        f.throttle_all(ThrottleStyle::TooManyRequests);
        for _ in 0..5 {
            assert_eq!(f.take().1, Some(Injected::Throttled(ThrottleStyle::TooManyRequests)));
        }
        f.clear();
        assert_eq!(f.take(), (Duration::ZERO, None));
    }

    #[test]
    fn server_error_fires_before_throttle() {
        let f = Faults::default();
        f.throttle_next(1, ThrottleStyle::CognitoBadRequest);
        f.fail_next(1, 500);
        assert_eq!(f.take().1, Some(Injected::ServerError(500)));
        assert_eq!(f.take().1, Some(Injected::Throttled(ThrottleStyle::CognitoBadRequest)));
        assert_eq!(f.take().1, None);
    }
}
