//! The decision: from the credentials on a request to Allow (with the caller context), Deny or Unauthorized.
//!
//! Decisions are cached in-process (moka), keyed by what was verified: the SHA-256 of the certificate's DER and/or
//! of the JWT. An entry ends at the earliest of: the configured TTL, the token's `exp`, its `iat` + the issuer's
//! maximum age, the time the issuer's keys are due for a refresh, the certificate's `notAfter` and the earliest
//! nextUpdate of the loaded CRLs. Each of those is a moment from which a fresh verification could answer
//! differently, so a cached Allow never outlives one of them. The end is checked at the decision's own time (the
//! app's clock), not only by the cache's timer.
//!
//! The whole cache is dropped when the truststore or CRLs change, so a rotation or a revocation takes effect on the
//! next refresh; an entry is also stamped with the generations of the trust material and of the partners' key sets
//! read *before* its verification began. A decision whose material changed while it was being verified is not
//! inserted, and an entry whose generations no longer match is not served: a check-then-insert race cannot put an
//! Allow verified under old material back into a cache a revocation or a key withdrawal just cleared.
//!
//! Because the key is the credential itself, the gateway's own cache can be off for mTLS callers (see
//! docs/design.md, "Caching", and docs/runbooks/caching.md) at little cost.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use moka::future::Cache;
use moka::Expiry;
use sha2::{Digest, Sha256};
use tb_shared::context::{AuthMethod, CallerContext};
use tb_shared::ids::CallerId;
use tb_shared::policy::{Caller, IdentityKey, Policy, UsagePlanKey};

use crate::jwt::JwtVerifier;
use crate::mtls::{self, CertVerifier};

/// Settings of the in-process decision cache.
#[derive(Debug, Clone)]
pub struct DecisionCacheConfig {
    /// Longest time a decision is reused. Bounds how long a revoked certificate can still pass if its CRL update
    /// has not been fetched yet (together with the trust refresh interval).
    pub ttl: Duration,
    /// Most entries kept; a Lambda at 128 MB has room for far more, this bounds abuse by credential floods.
    pub max_entries: u64,
}

impl Default for DecisionCacheConfig {
    fn default() -> Self {
        DecisionCacheConfig { ttl: Duration::from_secs(60), max_entries: 10_000 }
    }
}

/// The credentials found on a request, before any verification.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// `requestContext.identity.clientCert.clientCertPem`, as API Gateway passed it.
    pub client_cert_pem: Option<&'a str>,
    /// The token from `Authorization: Bearer <token>`.
    pub bearer: Option<&'a str>,
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A known, enabled caller: API Gateway calls the broker with this context.
    Allow(Allow),
    /// A verified credential that is refused: 403.
    Deny(Deny),
    /// No usable credential: 401.
    Unauthorized(UnauthorizedReason),
}

/// An allowed caller and what the broker will read about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Allow {
    /// What the broker reads from `requestContext.authorizer`.
    pub context: CallerContext,
    /// The caller's usage-plan API key, returned as `usageIdentifierKey`.
    pub usage_plan_key: Option<UsagePlanKey>,
}

/// A verified credential that is refused (403).
#[derive(Debug, Clone, PartialEq)]
pub struct Deny {
    /// The caller id when known, else `unknown`; becomes `principalId`.
    pub principal: String,
    /// The caller the credential belongs to, when it maps to one.
    pub caller: Option<CallerId>,
    /// Why it was refused.
    pub reason: DenyReason,
    /// The credential's non-secret fingerprint, for correlating logs.
    pub fingerprint: String,
}

/// Why a verified credential was refused. The `code()` values appear in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No caller is registered for this credential.
    UnknownCaller,
    /// The certificate's identity rules point at more than one caller.
    AmbiguousCaller,
    /// The caller exists but is disabled.
    DisabledCaller,
    /// The certificate is on a CRL.
    RevokedCertificate,
    /// A certificate and a JWT on one request belong to different callers.
    CallerMismatch,
}

impl DenyReason {
    /// Stable code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            DenyReason::UnknownCaller => "unknown_caller",
            DenyReason::AmbiguousCaller => "ambiguous_caller",
            DenyReason::DisabledCaller => "disabled_caller",
            DenyReason::RevokedCertificate => "revoked_certificate",
            DenyReason::CallerMismatch => "caller_mismatch",
        }
    }
}

/// Why a request got `Unauthorized` (401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnauthorizedReason {
    /// Neither a client certificate nor a bearer token.
    NoCredential,
    /// An Authorization header that is not exactly one `Bearer <token>`.
    MalformedAuthorization,
    /// A certificate was presented but this deployment has no truststore.
    CertificatesNotAccepted,
    /// The certificate failed parsing or validation; the detail names no certificate content.
    InvalidCertificate(String),
    /// A JWT was presented but no issuer is configured.
    JwtNotAccepted,
    /// The JWT failed verification; the detail names no token content.
    InvalidJwt(String),
    /// The caller was allowed, but the context keys are unavailable (past their stale bound while reads fail), so
    /// no context the broker accepts can be made: the authorizer's own outage, never Allow without a MAC. Made by
    /// the handler, not by [`Authorizer::decide`]; the detail says why the keys could not be read, never a key.
    ContextKeysUnavailable(String),
}

impl UnauthorizedReason {
    /// Stable code for logs and metrics: the `Reason` of the `Unauthorized` breakdown (one of
    /// `metrics::unauthorized::ALL`).
    pub fn code(&self) -> &'static str {
        use crate::metrics::unauthorized;
        match self {
            UnauthorizedReason::NoCredential => unauthorized::NO_CREDENTIAL,
            UnauthorizedReason::MalformedAuthorization => unauthorized::MALFORMED_AUTHORIZATION,
            UnauthorizedReason::CertificatesNotAccepted => unauthorized::CERTIFICATES_NOT_ACCEPTED,
            UnauthorizedReason::InvalidCertificate(_) => unauthorized::INVALID_CERTIFICATE,
            UnauthorizedReason::JwtNotAccepted => unauthorized::JWT_NOT_ACCEPTED,
            UnauthorizedReason::InvalidJwt(_) => unauthorized::INVALID_JWT,
            UnauthorizedReason::ContextKeysUnavailable(_) => unauthorized::CONTEXT_KEYS_UNAVAILABLE,
        }
    }
    /// Human detail for logs (never credential content).
    pub fn detail(&self) -> &str {
        match self {
            UnauthorizedReason::InvalidCertificate(d)
            | UnauthorizedReason::InvalidJwt(d)
            | UnauthorizedReason::ContextKeysUnavailable(d) => d,
            _ => "",
        }
    }
}

/// Largest bearer token hashed for the cache key; larger ones are refused before any work.
pub(crate) const MAX_BEARER_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CacheKey {
    Cert([u8; 32]),
    Jwt([u8; 32]),
    Both([u8; 32], [u8; 32]),
}

#[derive(Debug, Clone)]
struct Cached {
    decision: Decision,
    ttl: Duration,
    /// Not served at or after this time of the app's clock (moka's timer runs on the machine's clock).
    valid_until: SystemTime,
    /// The material the decision was verified under.
    generations: Generations,
}

/// Generations of the material a decision rests on: certificate trust material and partners' key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Generations {
    certs: u64,
    jwts: u64,
}

struct PerEntryExpiry;

impl Expiry<CacheKey, Cached> for PerEntryExpiry {
    fn expire_after_create(&self, _key: &CacheKey, value: &Cached, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The authorizer's core, shared by all invocations of a warm function.
pub struct Authorizer {
    policy: Arc<Policy>,
    certs: Option<Arc<CertVerifier>>,
    jwts: Option<Arc<JwtVerifier>>,
    cache: Cache<CacheKey, Cached>,
    cache_ttl: Duration,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("policy_version", &self.policy.version)
            .field("certificates", &self.certs.is_some())
            .field("jwt", &self.jwts.is_some())
            .finish()
    }
}

/// What one decision cost, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecisionInfo {
    /// The decision came from the decision cache.
    pub cache_hit: bool,
    /// Trust material changed before this decision (and the cache was cleared).
    pub trust_refreshed: bool,
}

impl Authorizer {
    /// Builds the authorizer once at cold start.
    pub fn new(
        policy: Arc<Policy>,
        certs: Option<Arc<CertVerifier>>,
        jwts: Option<Arc<JwtVerifier>>,
        cache: DecisionCacheConfig,
    ) -> Self {
        let c = Cache::builder()
            .max_capacity(cache.max_entries)
            .time_to_live(cache.ttl.max(Duration::from_millis(1)))
            .expire_after(PerEntryExpiry)
            .build();
        Authorizer { policy, certs, jwts, cache: c, cache_ttl: cache.ttl }
    }

    /// The policy this authorizer decides with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn generations(&self) -> Generations {
        Generations {
            certs: self.certs.as_ref().map_or(0, |c| c.generation()),
            jwts: self.jwts.as_ref().map_or(0, |j| j.generation()),
        }
    }

    /// Refreshes trust material when due and drops every cached decision if it changed.
    async fn refresh_trust(&self, now: SystemTime) -> bool {
        let Some(certs) = &self.certs else { return false };
        match certs.refresh_if_due(now).await {
            Ok(true) => {
                self.cache.invalidate_all();
                tracing::info!(
                    event = "trust_refreshed",
                    generation = certs.generation(),
                    "trust material changed; decision cache cleared"
                );
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(event = "trust_refresh_failed", error = %e, "keeping last good trust material");
                false
            }
        }
    }

    /// Decides on the presented credentials.
    pub async fn decide(&self, presented: Presented<'_>, now: SystemTime) -> (Decision, DecisionInfo) {
        let trust_refreshed = self.refresh_trust(now).await;
        let info = |cache_hit| DecisionInfo { cache_hit, trust_refreshed };

        let cert_fp = match presented.client_cert_pem {
            Some(pem) => match mtls::pem_fingerprint(pem) {
                Some(fp) => Some(fp),
                None => {
                    let r = UnauthorizedReason::InvalidCertificate("not a single well-formed PEM certificate".into());
                    return (Decision::Unauthorized(r), info(false));
                }
            },
            None => None,
        };
        let jwt_hash = match presented.bearer {
            Some(t) if t.len() > MAX_BEARER_BYTES => {
                return (Decision::Unauthorized(UnauthorizedReason::InvalidJwt("token too large".into())), info(false))
            }
            Some(t) => Some(<[u8; 32]>::from(Sha256::digest(t.as_bytes()))),
            None => None,
        };
        let key = match (cert_fp, jwt_hash) {
            (Some(c), Some(j)) => CacheKey::Both(c, j),
            (Some(c), None) => CacheKey::Cert(c),
            (None, Some(j)) => CacheKey::Jwt(j),
            (None, None) => return (Decision::Unauthorized(UnauthorizedReason::NoCredential), info(false)),
        };
        // Read before the lookup and before verifying: whatever changes from here on makes this decision one
        // made under older material.
        let generations = self.generations();
        if let Some(hit) = self.cache.get(&key).await {
            if hit.generations == generations && now < hit.valid_until {
                return (hit.decision, info(true));
            }
            self.cache.invalidate(&key).await;
        }

        let (decision, valid_until) = self.verify(presented, cert_fp, jwt_hash, now).await;
        // Unauthorized answers are not cached: they may come from a transient JWKS or truststore outage.
        if !matches!(decision, Decision::Unauthorized(_)) && self.generations() == generations {
            let left = valid_until.and_then(|t| t.duration_since(now).ok()).unwrap_or(Duration::ZERO);
            let ttl = left.min(self.cache_ttl);
            if let Some(valid_until) = now.checked_add(ttl).filter(|_| !ttl.is_zero()) {
                let cached = Cached { decision: decision.clone(), ttl, valid_until, generations };
                self.cache.insert(key, cached).await;
            }
        }
        (decision, info(false))
    }

    async fn verify(
        &self,
        presented: Presented<'_>,
        cert_fp: Option<[u8; 32]>,
        jwt_hash: Option<[u8; 32]>,
        now: SystemTime,
    ) -> (Decision, Option<SystemTime>) {
        let mut valid_until: Option<SystemTime> = None;
        let mut cert_caller: Option<&Caller> = None;
        let mut fingerprint = String::new();

        if let (Some(pem), Some(fp)) = (presented.client_cert_pem, cert_fp) {
            // The certificate's RFC 8705 `x5t#S256` thumbprint: the same value a certificate-bound token carries in
            // `cnf`, so the broker can bind a token to it and a log line names the certificate exactly.
            fingerprint = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fp);
            let Some(certs) = &self.certs else {
                return (Decision::Unauthorized(UnauthorizedReason::CertificatesNotAccepted), None);
            };
            let cert = match certs.verify_pem(pem, now) {
                Ok(c) => c,
                Err(e) if e.is_revoked() => {
                    // Issued by our CA but revoked: an explicit Deny. The owner is not looked up: identity rules only ever run
                    // on a certificate that passed every check.
                    return (
                        self.deny(None, DenyReason::RevokedCertificate, &fingerprint),
                        now.checked_add(self.cache_ttl),
                    );
                }
                Err(e) => return (Decision::Unauthorized(UnauthorizedReason::InvalidCertificate(e.to_string())), None),
            };
            // From the earliest CRL nextUpdate on, the verifier refuses the chain until fresh CRLs arrive (and with a
            // long refresh interval none may be fetched before then): a cached Allow must end there too.
            let crl_fresh_until = certs.crls_fresh_until();
            valid_until = Some(crl_fresh_until.map_or(cert.not_after, |t| t.min(cert.not_after)));
            match mtls::identify(&cert, &self.policy) {
                Ok(c) => cert_caller = Some(c),
                Err(e) => {
                    let reason = if matches!(e, mtls::IdentifyError::Ambiguous) {
                        DenyReason::AmbiguousCaller
                    } else {
                        DenyReason::UnknownCaller
                    };
                    return (self.deny(None, reason, &fingerprint), valid_until);
                }
            }
        }

        let mut jwt_caller: Option<&Caller> = None;
        if let Some(token) = presented.bearer {
            let Some(jwts) = &self.jwts else {
                return (Decision::Unauthorized(UnauthorizedReason::JwtNotAccepted), None);
            };
            // The cache key already hashed the token: hand the hash over rather than hash it again.
            let jwt = match jwts.verify_hashed(token, jwt_hash, now).await {
                Ok(j) => j,
                Err(e) => return (Decision::Unauthorized(UnauthorizedReason::InvalidJwt(e.to_string())), None),
            };
            // Not only `exp`: the age limit and the issuer's key refresh end a reuse too (see `VerifiedJwt`).
            let jwt_until = jwt.valid_until;
            valid_until = Some(valid_until.map_or(jwt_until, |v| v.min(jwt_until)));
            if fingerprint.is_empty() {
                fingerprint = hex::encode(&jwt.token_sha256[..8]);
            }
            let key = IdentityKey::Jwt { issuer: jwt.issuer.clone(), subject: jwt.subject.clone() };
            match self.policy.caller_for(&key) {
                Some(c) => jwt_caller = Some(c),
                None => return (self.deny(None, DenyReason::UnknownCaller, &fingerprint), valid_until),
            }
        }

        let (caller, method) = match (cert_caller, jwt_caller) {
            (Some(a), Some(b)) if a.id != b.id => {
                return (self.deny(None, DenyReason::CallerMismatch, &fingerprint), valid_until);
            }
            (Some(a), _) => (a, AuthMethod::Mtls),
            (None, Some(b)) => (b, AuthMethod::Jwt),
            (None, None) => return (Decision::Unauthorized(UnauthorizedReason::NoCredential), None),
        };
        if !caller.enabled {
            return (self.deny(Some(&caller.id), DenyReason::DisabledCaller, &fingerprint), valid_until);
        }
        let context = CallerContext {
            caller_id: caller.id.clone(),
            auth_method: method,
            credential_fingerprint: fingerprint,
            policy_version: self.policy.version.clone(),
        };
        (Decision::Allow(Allow { context, usage_plan_key: caller.usage_plan_key.clone() }), valid_until)
    }

    fn deny(&self, caller: Option<&CallerId>, reason: DenyReason, fingerprint: &str) -> Decision {
        Decision::Deny(Deny {
            principal: caller.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
            caller: caller.cloned(),
            reason,
            fingerprint: fingerprint.to_owned(),
        })
    }
}
