//! The per-issuer JWKS cache.
//!
//! Three rules protect both the partner's JWKS endpoint and our latency:
//! - a token whose `kid` is unknown may trigger a refetch, but at most one fetch attempt per issuer per
//!   `unknown_kid_cooldown`, however many such tokens arrive (a flood of random `kid`s costs one fetch);
//! - concurrent misses share one fetch: the first takes the issuer's fetch lock, the others wait for it and then
//!   look again at the new key set instead of fetching themselves;
//! - a failed fetch never removes keys: known keys keep verifying while the endpoint is down, and a key set older
//!   than `jwks_max_age` is refreshed in the background of one request (others keep using the current set). How
//!   long a set that can no longer be refreshed may still be used is the verifier's rule (`jwks_max_stale`).
//!
//! A successful fetch replaces the whole set, so a key the partner withdrew stops being accepted. When the new set
//! differs from the one it replaces, the verifier-wide change counter moves, so that decisions cached under the old
//! keys are dropped instead of outliving a withdrawn key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::sources::JwksFetcher;
use tb_shared::telemetry::MetricsSink;
use tokio::sync::Mutex;

use super::jwks::{parse_jwks, KeySet};

/// One issuer's current keys.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub keys: KeySet,
    /// When these keys were fetched.
    pub fetched_at: Instant,
    /// Increases with every successful fetch; lets a waiter see that someone else refreshed.
    pub generation: u64,
}

#[derive(Debug, Default)]
struct FetchState {
    /// When the last fetch attempt (successful or not) started.
    last_attempt: Option<Instant>,
    /// Whether that attempt failed (then age-based refreshes also wait for the cooldown).
    last_failed: bool,
}

/// Keys of one issuer.
#[derive(Debug)]
pub(crate) struct IssuerKeys {
    issuer: String,
    jwks_url: String,
    current: RwLock<Option<Arc<Snapshot>>>,
    fetch: Mutex<FetchState>,
    /// Shared by every issuer of one verifier; bumped when a fetch replaces a key set with a different one.
    changes: Arc<AtomicU64>,
    /// Where failed fetches are counted, with this issuer's `Issuer` dimension value.
    failures: Option<(MetricsSink, String)>,
}

/// How a refetch attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refetch {
    /// New keys are in place (fetched by this call or by a concurrent one).
    Updated,
    /// The cooldown forbids another attempt yet; keys unchanged.
    CoolingDown,
    /// The fetch failed; the previous keys (if any) stay.
    Failed,
}

impl IssuerKeys {
    pub(crate) fn new(issuer: &str, jwks_url: &str, changes: Arc<AtomicU64>) -> Self {
        IssuerKeys {
            issuer: issuer.to_owned(),
            jwks_url: jwks_url.to_owned(),
            current: RwLock::new(None),
            fetch: Mutex::new(FetchState::default()),
            changes,
            failures: None,
        }
    }

    /// Counts this issuer's failed fetches in `sink`.
    pub(crate) fn report_failures_to(&mut self, sink: MetricsSink) {
        self.failures = Some((sink, crate::metrics::issuer_dimension(&self.issuer)));
    }

    fn fetch_failed(&self) -> Refetch {
        if let Some((sink, issuer)) = &self.failures {
            crate::metrics::jwks_fetch_failure(sink, issuer);
        }
        Refetch::Failed
    }

    /// The current key set, if one was ever fetched.
    pub(crate) fn snapshot(&self) -> Option<Arc<Snapshot>> {
        tb_shared::sync::read(&self.current).clone()
    }

    fn generation(&self) -> u64 {
        self.snapshot().map_or(0, |s| s.generation)
    }

    /// Fetches again because a token named a key we do not have (or no keys were ever fetched).
    ///
    /// `seen` is the generation the caller looked at. If another task replaced the keys meanwhile, this returns
    /// `Updated` without fetching; otherwise it fetches unless an attempt started less than `cooldown` ago.
    pub(crate) async fn refetch_on_miss(&self, fetcher: &dyn JwksFetcher, seen: u64, cooldown: Duration) -> Refetch {
        let mut st = self.fetch.lock().await;
        if self.generation() != seen {
            return Refetch::Updated;
        }
        if st.last_attempt.is_some_and(|t| t.elapsed() < cooldown) {
            return Refetch::CoolingDown;
        }
        self.fetch_locked(&mut st, fetcher).await
    }

    /// Refreshes keys older than `max_age`, unless a fetch is already running (then the current keys are used by
    /// this request) or the last attempt failed less than `cooldown` ago (the endpoint is not hammered while down).
    pub(crate) async fn refresh_if_old(
        &self,
        fetcher: &dyn JwksFetcher,
        snap: &Snapshot,
        max_age: Duration,
        cooldown: Duration,
    ) {
        if snap.fetched_at.elapsed() < max_age {
            return;
        }
        let Ok(mut st) = self.fetch.try_lock() else {
            return;
        };
        let failed_recently = st.last_failed && st.last_attempt.is_some_and(|t| t.elapsed() < cooldown);
        if self.generation() != snap.generation || failed_recently {
            return;
        }
        self.fetch_locked(&mut st, fetcher).await;
    }

    async fn fetch_locked(&self, st: &mut FetchState, fetcher: &dyn JwksFetcher) -> Refetch {
        st.last_attempt = Some(Instant::now());
        st.last_failed = true;
        let keys = match fetcher.fetch(&self.jwks_url).await {
            Ok(doc) => match parse_jwks(&doc) {
                Ok(keys) => keys,
                Err(e) => {
                    tracing::warn!(issuer = %self.issuer, reason = %e, "JWKS refused; keeping previous keys");
                    return self.fetch_failed();
                }
            },
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, reason = %e, "JWKS fetch failed; keeping previous keys");
                return self.fetch_failed();
            }
        };
        st.last_failed = false;
        tracing::info!(issuer = %self.issuer, keys = keys.entries.len(), usable = keys.usable(), "JWKS fetched");
        let mut cur = tb_shared::sync::write(&self.current);
        let generation = cur.as_ref().map_or(0, |s| s.generation) + 1;
        // The first set replaces nothing a decision could rest on; a different later set may withdraw a key.
        if cur.as_ref().is_some_and(|s| s.keys.fingerprint != keys.fingerprint) {
            self.changes.fetch_add(1, Ordering::AcqRel);
            tracing::info!(issuer = %self.issuer, "JWKS changed; decisions cached under the previous keys are dropped");
        }
        *cur = Some(Arc::new(Snapshot { keys, fetched_at: Instant::now(), generation }));
        Refetch::Updated
    }
}
