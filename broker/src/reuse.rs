//! Token reuse: serve a still-fresh token instead of asking Cognito again.
//!
//! Every Cognito grant is billed and counts against the account-wide 150 requests/s quota for client_credentials.
//! A caller that asks for a token per request (a common client bug) would burn both; with `token_reuse` on, the
//! broker hands back the token it already has for the same app client and the exact same scope set, until about 75%
//! of its life has passed, with `expires_in` reduced to what is left. The last quarter is never served, so a
//! caller always gets a token with a useful remaining life.
//!
//! The cache is in this process's memory only (moka, bounded, per-entry expiry) and is never written anywhere else.
//! Tokens are held as [`SecretString`], so a `Debug` of the cache cannot print them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use secrecy::SecretString;
use tb_shared::context::AuthMethod;
use tb_shared::ids::{CallerId, ScopeSet};

/// Share of a token's life during which it is served again.
const REUSE_NUMERATOR: u32 = 3;
const REUSE_DENOMINATOR: u32 = 4;
/// Entry bound: one entry per (app client, scope set) actually used, so a few hundred at most in practice.
const MAX_ENTRIES: u64 = 1024;

/// Cache key: everything a token says. Its rights are the app client and the exact scope set; the caller claims
/// name the caller and how it authenticated, so a token is never handed to another caller of the same app client,
/// nor to the same caller coming in another way (a caller with a certificate and a partner JWT gets a token saying
/// `jwt` for its JWT requests); a certificate-bound token is usable only with its certificate, so it is served again
/// only to a request made with that certificate.
///
/// A reused token keeps the `credentialFingerprint` claim of the request that obtained it: for a partner that
/// presents a new JWT per request, the claim names the JWT that asked Cognito, not the latest one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReuseKey {
    pub app_client: String,
    pub scopes: ScopeSet,
    pub caller: CallerId,
    pub auth_method: AuthMethod,
    pub cert_thumbprint: Option<String>,
}

struct Entry {
    access_token: SecretString,
    /// The end of its reuse window.
    serve_until: Instant,
    /// The end of its life, for `expires_in`.
    expires_at: Instant,
    scope: ScopeSet,
}

impl Entry {
    fn serve_for(&self, now: Instant) -> Duration {
        self.serve_until.saturating_duration_since(now)
    }
}

/// How long a token of `lifetime_s` seconds is served again: three quarters of its life. Shared with the fleet
/// cache, whose items expire at the same deadline.
/// Saturating: the lifetime of a fleet-cache item is read from the table before its seal is checked, and any number
/// may be there.
pub(crate) fn serve_window(lifetime_s: u64) -> Duration {
    Duration::from_secs(lifetime_s.saturating_mul(u64::from(REUSE_NUMERATOR)) / u64::from(REUSE_DENOMINATOR))
}

/// A token served from the cache.
pub struct ReusedToken {
    pub access_token: SecretString,
    /// Remaining life in whole seconds, rounded down and then one less, so it is always below what the previous
    /// answer said and never claims more life than the token has.
    pub expires_in: u64,
    pub scope: ScopeSet,
}

struct ServeWindow;

impl moka::Expiry<ReuseKey, Arc<Entry>> for ServeWindow {
    fn expire_after_create(&self, _: &ReuseKey, v: &Arc<Entry>, now: Instant) -> Option<Duration> {
        Some(v.serve_for(now))
    }
    fn expire_after_update(&self, _: &ReuseKey, v: &Arc<Entry>, now: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(v.serve_for(now))
    }
}

/// The in-memory reuse cache, shared by all invocations of a warm Lambda.
#[derive(Clone)]
pub struct TokenReuse {
    cache: Cache<ReuseKey, Arc<Entry>>,
}

impl std::fmt::Debug for TokenReuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenReuse({} entries)", self.cache.entry_count())
    }
}

impl Default for TokenReuse {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenReuse {
    /// An empty cache.
    pub fn new() -> Self {
        TokenReuse { cache: Cache::builder().max_capacity(MAX_ENTRIES).expire_after(ServeWindow).build() }
    }

    /// A still-fresh token for `key`, if one is cached.
    pub fn get(&self, key: &ReuseKey) -> Option<ReusedToken> {
        let e = self.cache.get(key)?;
        let now = Instant::now();
        if now >= e.serve_until {
            return None;
        }
        let expires_in = e.expires_at.saturating_duration_since(now).as_secs().saturating_sub(1);
        (expires_in > 0).then(|| ReusedToken {
            access_token: e.access_token.clone(),
            expires_in,
            scope: e.scope.clone(),
        })
    }

    /// Remembers a token just obtained, `lifetime` being its `expires_in`.
    pub fn put(&self, key: ReuseKey, access_token: SecretString, lifetime: Duration, scope: ScopeSet) {
        self.put_obtained_at(key, access_token, lifetime, scope, Instant::now());
    }

    /// Remembers a token obtained at `at` (earlier than now when it came from the fleet cache).
    pub(crate) fn put_obtained_at(
        &self,
        key: ReuseKey,
        token: SecretString,
        lifetime: Duration,
        scope: ScopeSet,
        at: Instant,
    ) {
        let window = lifetime.saturating_mul(REUSE_NUMERATOR) / REUSE_DENOMINATOR;
        let later = |d: Duration| at.checked_add(d).unwrap_or(at);
        self.put_until(key, token, later(window), later(lifetime), scope);
    }

    /// Remembers a token with its reuse window and life already worked out (a token read from the fleet cache: its
    /// window ends where the table's does).
    pub(crate) fn put_until(
        &self,
        key: ReuseKey,
        access_token: SecretString,
        serve_until: Instant,
        expires_at: Instant,
        scope: ScopeSet,
    ) {
        self.cache.insert(key, Arc::new(Entry { access_token, serve_until, expires_at, scope }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn key(scopes: &str) -> ReuseKey {
        ReuseKey {
            app_client: "c".into(),
            scopes: ScopeSet::parse_param(scopes).unwrap(),
            caller: CallerId::try_from("a").unwrap(),
            auth_method: AuthMethod::Mtls,
            cert_thumbprint: None,
        }
    }

    #[test]
    fn serves_with_a_smaller_expires_in_only_for_the_exact_scope_set() {
        let r = TokenReuse::new();
        r.put(key("a b"), SecretString::from("tok"), Duration::from_secs(3600), key("a b").scopes);
        let hit = r.get(&key("b a")).unwrap();
        assert_eq!(hit.access_token.expose_secret(), "tok");
        assert!(hit.expires_in < 3600 && hit.expires_in > 3500);
        assert!(r.get(&key("a")).is_none());
        assert!(!format!("{r:?}").contains("tok"));
    }

    #[test]
    fn served_until_three_quarters_of_life_and_not_after() {
        let r = TokenReuse::new();
        let life = Duration::from_secs(40);
        // 25 s into a 40 s life: served (a stall of seconds before the get would still leave it under 30 s).
        let young = Instant::now() - Duration::from_secs(25);
        r.put_obtained_at(key("a"), SecretString::from("tok"), life, key("a").scopes, young);
        let left = r.get(&key("a")).expect("served before three quarters of its life").expires_in;
        assert!((13..=15).contains(&left), "remaining life {left}");
        let old = Instant::now() - Duration::from_secs(31);
        r.put_obtained_at(key("a"), SecretString::from("tok"), life, key("a").scopes, old);
        assert!(r.get(&key("a")).is_none());
    }
}
