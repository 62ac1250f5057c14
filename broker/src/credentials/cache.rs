//! A moka cache in front of any [`CredentialSource`]: few SSM calls, none per request, and a bounded tolerance of
//! SSM outages.
//!
//! - **TTL** (default 5 min): a fresh value is served without calling the source, so a secret rotated in SSM is
//!   picked up within one TTL even if Cognito is never asked with the old one.
//! - **Single flight**: concurrent misses for one app client share one source call (moka's `try_get_with` runs one
//!   loader per key and hands its result to every waiter), so a cold start under load makes one SSM call, not one
//!   per request.
//! - **Bounded stale serving**: when the source is *unavailable* after the TTL expired, the last good value keeps
//!   being served until `ttl + max_stale` after it was fetched (`CREDENTIALS_MAX_STALE_SECONDS`, one hour by
//!   default), then requests fail
//!   (the broker answers 503). While stale, the source is retried at most every `retry_after_failure`, so an outage
//!   does not turn every request into a slow failing SSM call. `NotFound` and `Malformed` are answers, not outages:
//!   a deleted or broken parameter is never papered over with an old value. They are remembered for
//!   `retry_after_failure`, so a missing parameter costs one source call per interval, not one per request.
//! - **Refresh on rotation**: when Cognito answers `invalid_client`, [`Credentials::refresh_rejected`] drops the
//!   cached value and fetches once; concurrent refreshes share that fetch.
//! - **Refused credentials are held back**: when that fetch returns the very credentials Cognito refused (the store
//!   holds a wrong secret), they are remembered as refused for `retry_after_failure`. Meanwhile [`Credentials::get`]
//!   and [`Credentials::refresh_rejected`] answer [`CredentialError::Refused`] without a source call, so the broker
//!   sends Cognito nothing it knows will be refused: a caller retrying a failing request cannot turn each retry into
//!   an SSM read and two Cognito calls (SSM's GetParameter rate and Cognito's 150 requests/s are shared by the whole
//!   account). After the interval the cached value is tried once more, so a fix on either side (the store or the app
//!   client) is picked up within `retry_after_failure`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::future::Cache;
use moka::ops::compute::Op;
use moka::Expiry;
use secrecy::ExposeSecret;

use subtle::ConstantTimeEq as _;

use super::{ClientCredentials, CredentialError, CredentialSource, Credentials};

/// Cache tuning. The default is the Lambda's (the configuration's, when no variable overrides it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a fetched value is served without asking the source again.
    pub ttl: Duration,
    /// How long past its TTL the last good value may still be served while the source is unavailable.
    pub max_stale: Duration,
    /// How often the source is tried again after a failure: while serving stale, after it answered that the
    /// parameter is missing or malformed, and after it returned credentials Cognito had just refused.
    pub retry_after_failure: Duration,
    /// Most app clients held (there are a handful; the bound only guards against a bug).
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            max_stale: Duration::from_secs(3600),
            retry_after_failure: Duration::from_secs(10),
            max_entries: 1_000,
        }
    }
}

/// What the cache serves for a key.
struct Entry {
    creds: ClientCredentials,
    /// Served from the last good value because the source was unavailable.
    stale: bool,
    /// How long this entry is served: the TTL for a fresh value, the retry interval for a stale one.
    serve_for: Duration,
}

/// The last value the source actually returned, kept past the TTL for stale serving.
struct Good {
    creds: ClientCredentials,
    fetched_at: Instant,
}

struct PerEntryExpiry;

impl Expiry<String, Arc<Entry>> for PerEntryExpiry {
    fn expire_after_create(&self, _key: &String, value: &Arc<Entry>, _created_at: Instant) -> Option<Duration> {
        Some(value.serve_for)
    }
}

/// [`CredentialSource`] with a TTL cache, single flight, bounded stale serving, refresh on rotation and a hold on
/// what the source answered wrongly.
pub struct CachedCredentials<S> {
    source: S,
    config: CacheConfig,
    served: Cache<String, Arc<Entry>>,
    last_good: Cache<String, Arc<Good>>,
    /// Credentials Cognito refused that the source, read again, still returned; kept for `retry_after_failure`.
    refused: Cache<String, Arc<ClientCredentials>>,
    /// `NotFound` or `Malformed` answers of the source; kept for `retry_after_failure`.
    misconfigured: Cache<String, CredentialError>,
}

impl<S: CredentialSource> CachedCredentials<S> {
    /// Wraps `source`.
    pub fn new(source: S, config: CacheConfig) -> Self {
        let served = Cache::builder().max_capacity(config.max_entries).expire_after(PerEntryExpiry).build();
        let last_good = Cache::builder()
            .max_capacity(config.max_entries)
            .time_to_live(config.ttl.saturating_add(config.max_stale))
            .build();
        let hold = config.retry_after_failure;
        let refused = Cache::builder().max_capacity(config.max_entries).time_to_live(hold).build();
        let misconfigured = Cache::builder().max_capacity(config.max_entries).time_to_live(hold).build();
        Self { source, config, served, last_good, refused, misconfigured }
    }

    /// The wrapped source (tests count its calls).
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The broker's refresh after Cognito answered `invalid_client` to `rejected`: refetches only if the cache
    /// still holds those very credentials. When a burst of requests all fail with the old secret, the first one
    /// refetches and the rest get the new value without another source call. When the refetch returns `rejected`
    /// again, they are held back as refused (see the module documentation) and the answer is
    /// [`CredentialError::Refused`].
    pub(crate) async fn refresh_rejected(
        &self,
        app_client: &str,
        rejected: &ClientCredentials,
    ) -> Result<ClientCredentials, CredentialError> {
        if self.is_refused(app_client, rejected).await {
            // Already read again after this very refusal, and the store still held them. Another request may have
            // loaded something newer since.
            return match self.served.get(app_client).await {
                Some(e) if !e.stale && !same(&e.creds, rejected) => Ok(e.creds.clone()),
                _ => Err(CredentialError::Refused),
            };
        }
        self.drop_if(app_client, |e| e.stale || same(&e.creds, rejected)).await;
        let fresh = self.load_fresh(app_client).await?;
        if same(&fresh, rejected) {
            tracing::warn!(
                app_client,
                hold_ms = self.config.retry_after_failure.as_millis() as u64,
                "the credential store still holds the credentials the token endpoint refused; holding them back"
            );
            self.refused.insert(app_client.to_owned(), Arc::new(fresh)).await;
            return Err(CredentialError::Refused);
        }
        Ok(fresh)
    }

    async fn is_refused(&self, app_client: &str, creds: &ClientCredentials) -> bool {
        self.refused.get(app_client).await.is_some_and(|r| same(&r, creds))
    }

    /// Atomically (per key) removes the served entry when `pred` holds for it.
    async fn drop_if(&self, app_client: &str, pred: impl FnOnce(&Entry) -> bool) {
        self.served
            .entry(app_client.to_owned())
            .and_compute_with(|current| {
                let op = match current {
                    Some(e) if pred(e.value()) => Op::Remove,
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
    }

    async fn load_fresh(&self, app_client: &str) -> Result<ClientCredentials, CredentialError> {
        let entry = self.cached(app_client).await?;
        if entry.stale {
            return Err(CredentialError::Unavailable("credential store unavailable; refresh not possible".into()));
        }
        Ok(entry.creds.clone())
    }

    async fn cached(&self, app_client: &str) -> Result<Arc<Entry>, CredentialError> {
        if let Some(e) = self.misconfigured.get(app_client).await {
            return Err(e);
        }
        self.served.try_get_with(app_client.to_owned(), self.load(app_client)).await.map_err(|e| (*e).clone())
    }

    /// The single-flight loader: one source call, then either a fresh entry, a stale one, or the error.
    async fn load(&self, app_client: &str) -> Result<Arc<Entry>, CredentialError> {
        match self.source.get(app_client).await {
            Ok(creds) => {
                let now = Instant::now();
                self.last_good
                    .insert(app_client.to_owned(), Arc::new(Good { creds: creds.clone(), fetched_at: now }))
                    .await;
                Ok(Arc::new(Entry { creds, stale: false, serve_for: self.config.ttl }))
            }
            Err(CredentialError::Unavailable(reason)) => {
                let now = Instant::now();
                if let Some(good) = self.last_good.get(app_client).await {
                    let deadline = good.fetched_at + self.config.ttl.saturating_add(self.config.max_stale);
                    if now < deadline {
                        tracing::warn!(
                            app_client,
                            stale_for_ms = now.duration_since(good.fetched_at).as_millis() as u64,
                            reason = %reason,
                            "credential source unavailable; serving the last good credentials"
                        );
                        let serve_for = self.config.retry_after_failure.min(deadline - now);
                        return Ok(Arc::new(Entry { creds: good.creds.clone(), stale: true, serve_for }));
                    }
                }
                Err(CredentialError::Unavailable(reason))
            }
            Err(e) => {
                self.misconfigured.insert(app_client.to_owned(), e.clone()).await;
                Err(e)
            }
        }
    }
}

/// Whether two credential sets are the same (the secret compared too, in constant time: a rotation changes only
/// the secret).
fn same(a: &ClientCredentials, b: &ClientCredentials) -> bool {
    a.client_id == b.client_id
        && a.upstream == b.upstream
        && bool::from(a.client_secret.expose_secret().as_bytes().ct_eq(b.client_secret.expose_secret().as_bytes()))
}

#[async_trait]
impl<S: CredentialSource> Credentials for CachedCredentials<S> {
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError> {
        let creds = self.cached(app_client).await?.creds.clone();
        if self.is_refused(app_client, &creds).await {
            return Err(CredentialError::Refused);
        }
        Ok(creds)
    }
    async fn refresh_rejected(
        &self,
        app_client: &str,
        rejected: &ClientCredentials,
    ) -> Result<ClientCredentials, CredentialError> {
        CachedCredentials::refresh_rejected(self, app_client, rejected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::MemoryCredentialSource;
    use secrecy::SecretString;

    fn creds(secret: &str) -> ClientCredentials {
        ClientCredentials::token_endpoint(
            "app",
            SecretString::from(secret.to_owned()),
            url::Url::parse("https://auth.example.com/oauth2/token").unwrap(),
        )
    }

    /// Short enough for a test, long enough that a loaded 2-core CI machine stalling between two statements does not
    /// step past a limit the test means to stay inside (each sleep below only needs to be a lower bound).
    fn short() -> CacheConfig {
        CacheConfig {
            ttl: Duration::from_millis(500),
            max_stale: Duration::from_millis(1500),
            retry_after_failure: Duration::from_millis(1000),
            max_entries: 100,
        }
    }

    fn cache(config: CacheConfig) -> Arc<CachedCredentials<MemoryCredentialSource>> {
        let src = MemoryCredentialSource::new();
        src.insert("orders", creds("first-secret"));
        Arc::new(CachedCredentials::new(src, config))
    }

    fn secret(c: &ClientCredentials) -> String {
        c.client_secret.expose_secret().to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_cold_misses_make_one_source_call() {
        let c = cache(CacheConfig::default());
        c.source().set_delay(Duration::from_millis(100));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.get("orders").await })
            })
            .collect();
        for t in tasks {
            assert_eq!(secret(&t.await.unwrap().unwrap()), "first-secret");
        }
        assert_eq!(c.source().calls(), 1);
        c.get("orders").await.unwrap();
        assert_eq!(c.source().calls(), 1, "a warm hit must not call the source");
    }

    #[tokio::test]
    async fn ttl_expiry_fetches_again_and_picks_up_rotation() {
        let c = cache(short());
        assert_eq!(secret(&c.get("orders").await.unwrap()), "first-secret");
        c.source().insert("orders", creds("second-secret"));
        assert_eq!(secret(&c.get("orders").await.unwrap()), "first-secret", "still within the TTL");
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(secret(&c.get("orders").await.unwrap()), "second-secret");
        assert_eq!(c.source().calls(), 2);
    }

    #[tokio::test]
    async fn outage_serves_stale_within_max_stale_then_fails() {
        let c = cache(short());
        c.get("orders").await.unwrap();
        c.source().set_unavailable(true);
        tokio::time::sleep(Duration::from_millis(700)).await; // TTL (500 ms) expired
        assert_eq!(secret(&c.get("orders").await.unwrap()), "first-secret");
        let calls = c.source().calls();
        assert_eq!(calls, 2, "the expired value must have been tried against the source");
        // Within retry_after_failure the stale value is served without hammering the source.
        c.get("orders").await.unwrap();
        assert_eq!(c.source().calls(), calls);
        // Past ttl + max_stale (2,000 ms after the fetch): fail closed.
        tokio::time::sleep(Duration::from_millis(1400)).await;
        assert!(matches!(c.get("orders").await, Err(CredentialError::Unavailable(_))));
        // Recovery.
        c.source().set_unavailable(false);
        assert_eq!(secret(&c.get("orders").await.unwrap()), "first-secret");
    }

    #[tokio::test]
    async fn cold_outage_is_unavailable() {
        let c = cache(short());
        c.source().set_unavailable(true);
        assert!(matches!(c.get("orders").await, Err(CredentialError::Unavailable(_))));
    }

    #[tokio::test]
    async fn not_found_and_malformed_are_not_served_stale() {
        let c = cache(short());
        c.get("orders").await.unwrap();
        c.source().remove("orders");
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(c.get("orders").await.unwrap_err(), CredentialError::NotFound);
        c.source().insert_raw("orders", SecretString::from("{not json".to_owned()));
        tokio::time::sleep(Duration::from_millis(1100)).await; // past retry_after_failure
        assert!(matches!(c.get("orders").await, Err(CredentialError::Malformed(_))));
    }

    #[tokio::test]
    async fn a_missing_parameter_is_asked_again_only_after_retry_after_failure() {
        let c = cache(short());
        c.source().remove("orders");
        for _ in 0..10 {
            assert_eq!(c.get("orders").await.unwrap_err(), CredentialError::NotFound);
        }
        assert_eq!(c.source().calls(), 1);
        c.source().insert("orders", creds("fixed-secret"));
        assert_eq!(c.get("orders").await.unwrap_err(), CredentialError::NotFound, "still within the interval");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(secret(&c.get("orders").await.unwrap()), "fixed-secret");
        assert_eq!(c.source().calls(), 2);
    }

    /// A long TTL and a short hold, so the hold is what expires.
    fn hold(ttl: Duration, retry_after_failure: Duration) -> CacheConfig {
        CacheConfig { ttl, retry_after_failure, ..CacheConfig::default() }
    }

    #[tokio::test]
    async fn refetch_returning_the_refused_credentials_holds_them_back() {
        let c = cache(hold(Duration::from_secs(60), Duration::from_millis(800)));
        let first = c.get("orders").await.unwrap();
        assert_eq!(c.refresh_rejected("orders", &first).await.unwrap_err(), CredentialError::Refused);
        assert_eq!(c.source().calls(), 2, "the first read and one refetch");
        for _ in 0..10 {
            assert_eq!(c.get("orders").await.unwrap_err(), CredentialError::Refused);
            assert_eq!(c.refresh_rejected("orders", &first).await.unwrap_err(), CredentialError::Refused);
        }
        assert_eq!(c.source().calls(), 2, "held back: no source call");

        // The operator fixes the store; after the hold the cached value is tried once more and, refused again,
        // replaced by one refetch.
        c.source().insert("orders", creds("fixed-secret"));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let retried = c.get("orders").await.unwrap();
        assert_eq!(secret(&retried), "first-secret");
        assert_eq!(secret(&c.refresh_rejected("orders", &retried).await.unwrap()), "fixed-secret");
        assert_eq!(c.source().calls(), 3);
        assert_eq!(secret(&c.get("orders").await.unwrap()), "fixed-secret");
    }

    #[tokio::test]
    async fn a_late_refusal_of_held_credentials_gets_what_the_store_holds_now() {
        let c = cache(hold(Duration::from_millis(200), Duration::from_secs(60)));
        let first = c.get("orders").await.unwrap();
        assert_eq!(c.refresh_rejected("orders", &first).await.unwrap_err(), CredentialError::Refused);
        c.source().insert("orders", creds("fixed-secret"));
        tokio::time::sleep(Duration::from_millis(400)).await; // past the TTL: the next get reads the store
        assert_eq!(secret(&c.get("orders").await.unwrap()), "fixed-secret", "new credentials are not held back");
        assert_eq!(secret(&c.refresh_rejected("orders", &first).await.unwrap()), "fixed-secret");
        assert_eq!(c.source().calls(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn refresh_after_rotation_fetches_once_for_concurrent_callers() {
        let c = cache(CacheConfig::default());
        let old = c.get("orders").await.unwrap();
        c.source().insert("orders", creds("rotated-secret"));
        c.source().set_delay(Duration::from_millis(100));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (c, old) = (c.clone(), old.clone());
                tokio::spawn(async move { c.refresh_rejected("orders", &old).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(secret(&t.await.unwrap().unwrap()), "rotated-secret");
        }
        assert_eq!(c.source().calls(), 2, "one cold fetch and exactly one refresh");
        // A late refresh with the old credentials does not refetch either: the cache already moved on.
        assert_eq!(secret(&c.refresh_rejected("orders", &old).await.unwrap()), "rotated-secret");
        assert_eq!(c.source().calls(), 2);
        assert_eq!(secret(&c.get("orders").await.unwrap()), "rotated-secret");
    }

    #[tokio::test]
    async fn refresh_during_outage_fails_rather_than_returning_the_rejected_value() {
        let c = cache(CacheConfig::default());
        let old = c.get("orders").await.unwrap();
        c.source().set_unavailable(true);
        assert!(matches!(c.refresh_rejected("orders", &old).await, Err(CredentialError::Unavailable(_))));
        // Plain gets still get the old value for the stale period: better than certain failure.
        assert_eq!(secret(&c.get("orders").await.unwrap()), "first-secret");
    }
}
