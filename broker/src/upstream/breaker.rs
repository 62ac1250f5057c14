//! A circuit breaker for the token endpoint.
//!
//! When Cognito is down, waiting out a timeout on every request burns the caller's time, the Lambda's concurrency
//! and (on recovery) a burst against the account-wide 150 requests/s quota. After `threshold` consecutive failed
//! attempts the breaker opens and requests fail at once; after `open_for` one probe is let through (half-open); its
//! success closes the breaker, its failure opens it again.
//!
//! Only the endpoint's health counts. An answer that refuses the request (`invalid_client`, `invalid_scope`,
//! `unauthorized_client`, an unusable body) is a success here: the breaker is shared by every app client, and one
//! misconfigured app client must not stop the others' grants. What such answers cost is bounded elsewhere: they keep
//! the caller's quota charge, and credentials Cognito refused are held back by the credential cache.
//!
//! State lives in a `std::sync::Mutex` held only for a few instructions, never across an await.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The `reason` of the `UpstreamError::Unavailable` an open breaker answers with: the handler counts those
/// requests as `BreakerOpen`, so an operator sees the broker failing fast, not only that grants stopped.
pub(crate) const OPEN_REASON: &str = "upstream_breaker_open";

/// The breaker's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// Consecutive-failure circuit breaker with a single half-open probe.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

/// Permission to make one attempt. Record its outcome with [`Permit::success`] or [`Permit::failure`]; a permit
/// dropped without either (the future was cancelled) counts as a failure, so a lost probe cannot wedge the breaker
/// half-open.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    recorded: bool,
}

impl CircuitBreaker {
    /// A closed breaker. A threshold of 0 is treated as 1.
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        CircuitBreaker { threshold: threshold.max(1), open_for, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    /// Asks to make an attempt. `Err(retry_after)` when the breaker is open (or a probe is already in flight).
    pub(crate) fn try_acquire(&self, now: Instant) -> Result<Permit<'_>, Duration> {
        let mut st = tb_shared::sync::lock(&self.state);
        match *st {
            State::Closed { .. } => {}
            State::Open { until } if now >= until => *st = State::HalfOpen,
            State::Open { until } => return Err(until - now),
            // One probe at a time; the others wait for its verdict.
            State::HalfOpen => return Err(Duration::from_secs(1)),
        }
        Ok(Permit { breaker: self, recorded: false })
    }

    /// Whether requests currently fail fast (for logs and tests).
    pub(crate) fn is_open(&self, now: Instant) -> bool {
        matches!(*tb_shared::sync::lock(&self.state), State::Open { until } if now < until)
    }

    fn record(&self, ok: bool, now: Instant) {
        let mut st = tb_shared::sync::lock(&self.state);
        *st = match (*st, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => {
                State::Closed { failures: failures + 1 }
            }
            (_, false) => State::Open { until: now + self.open_for },
        };
    }
}

impl Permit<'_> {
    /// The attempt reached a working token endpoint (whatever it answered, refusals included).
    pub(crate) fn success(mut self) {
        self.recorded = true;
        self.breaker.record(true, Instant::now());
    }

    /// The attempt timed out, could not connect, or got a 5xx or a throttle.
    pub(crate) fn failure(mut self) {
        self.recorded = true;
        self.breaker.record(false, Instant::now());
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(false, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_once_and_closes_on_success() {
        let b = CircuitBreaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..2 {
            b.try_acquire(t0).unwrap().failure();
        }
        b.try_acquire(t0).unwrap().success();
        for _ in 0..3 {
            b.try_acquire(t0).unwrap().failure();
        }
        assert!(b.is_open(Instant::now()));
        assert!(b.try_acquire(Instant::now()).is_err());

        let later = Instant::now() + Duration::from_secs(11);
        let probe = b.try_acquire(later).unwrap();
        assert!(b.try_acquire(later).is_err(), "only one probe while half-open");
        probe.success();
        assert!(b.try_acquire(later).is_ok());
    }

    /// The upstream client answers a request the breaker refuses with [`OPEN_REASON`] (what the handler's
    /// `BreakerOpen` metric keys on), including the retry of a request whose first attempt opened it.
    #[tokio::test]
    async fn an_open_breaker_answers_with_the_open_reason() {
        use crate::upstream::{Upstream, UpstreamError, UpstreamSettings};
        // A loopback port nothing listens on: every attempt fails to connect at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let creds = crate::credentials::ClientCredentials::token_endpoint(
            "c",
            secrecy::SecretString::from("s".to_owned()),
            format!("http://127.0.0.1:{port}/oauth2/token").parse().unwrap(),
        );
        let scopes = tb_shared::ids::ScopeSet::parse_param("api/read").unwrap();
        let settings = UpstreamSettings { breaker_failure_threshold: 1, ..UpstreamSettings::default() };
        let upstream = Upstream::new(settings).unwrap();
        let first = upstream.request_token(&creds, &scopes, &Default::default(), None).await.unwrap_err();
        assert!(
            matches!(first, UpstreamError::Unavailable { reason, retry_after: Some(_) } if reason == OPEN_REASON),
            "the retry meets the breaker the first attempt opened: {first:?}"
        );
        assert!(upstream.breaker_open());
        let second = upstream.request_token(&creds, &scopes, &Default::default(), None).await.unwrap_err();
        assert!(matches!(second, UpstreamError::Unavailable { reason, .. } if reason == OPEN_REASON), "{second:?}");
    }

    #[test]
    fn failed_or_dropped_probe_reopens() {
        let b = CircuitBreaker::new(1, Duration::from_secs(10));
        b.try_acquire(Instant::now()).unwrap().failure();
        let later = Instant::now() + Duration::from_secs(11);
        drop(b.try_acquire(later).unwrap());
        assert!(b.is_open(Instant::now()));
    }
}
