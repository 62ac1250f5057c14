//! Partner JWT identity: verifies a compact JWS from a configured issuer against that issuer's published keys.
//!
//! Order of work for one token (each step refuses with its own [`JwtError`]):
//! 1. size cap, before any decoding;
//! 2. structure: three base64url segments, header and payload JSON objects; `alg` none in any spelling and any
//!    `crit` header refused; `jku`, `x5u`, `jwk` and `x5c` are never read;
//! 3. the *unverified* `iss` picks the issuer's configuration and nothing else;
//! 4. the header's `alg` must be one of that issuer's configured asymmetric algorithms;
//! 5. a key from the issuer's JWKS whose `kid`, `kty`/curve, `alg`, `use` and `key_ops` fit (see [`jwks`]);
//!    without a `kid` the issuer must have exactly one fitting key;
//! 6. the registered JOSE header members must have their registered form (see
//!    [`token::UnverifiedToken::header_members_well_formed`]);
//! 7. the signature over the `header.payload` bytes of step 2 is checked with the key, by jsonwebtoken's crypto
//!    (aws-lc-rs), against keys built once per JWKS fetch;
//! 8. on the claims decoded in step 2 (the bytes the signature covers): the registered claims must be readable
//!    (see [`token::registered_claims_readable`]), then [`claims::check`] checks iss, the audience claim (`aud`, or
//!    another such as Cognito's `client_id`), exp, iat and (when present: it is optional, and most IdPs' access
//!    tokens carry none) nbf at the app's clock, the maximum age, the subject claim and the issuer's required
//!    claims.
//!
//! The token is split, decoded and hashed once: the signature is verified over the segments already parsed, not by
//! decoding the token again. Member names must be unique in the header and the payload (a duplicate is
//! `Malformed`), so this module and any other reader of the token see the same claims.
//!
//! A successful verification also says how long a decision resting on it may be reused ([`VerifiedJwt::valid_until`])
//! and [`JwtVerifier::generation`] tells a cache when any issuer's key set changed.
//!
//! Nothing here logs the token, the Authorization header or claim values other than the issuer; errors carry
//! fixed texts only.

mod cache;
mod claims;
mod jwks;
mod token;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sources::JwksFetcher;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tb_shared::policy::{JwtAlgorithm, Policy};

use cache::{IssuerKeys, Refetch, Snapshot};
use claims::ClaimRules;
use jwks::{jwt_alg, Selection};

/// Settings of the verifier that are not per issuer.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Tokens longer than this are refused before any decoding, so an oversized header cannot cost parsing time.
    /// Partner tokens are well under 2 KiB; 8 KiB leaves room for large claims.
    pub max_token_bytes: usize,
    /// At most one JWKS fetch per issuer in this period is caused by tokens naming an unknown `kid` (or by a
    /// failed fetch being retried), so a flood of random `kid`s cannot turn us into a load generator against the
    /// partner's endpoint. A partner's key rotation is picked up within this time.
    pub unknown_kid_cooldown: Duration,
    /// Known keys are re-fetched once they are this old, so a key the partner withdrew stops verifying without a
    /// token ever naming an unknown `kid`. A failed refresh keeps the old keys, for at most `jwks_max_stale`.
    pub jwks_max_age: Duration,
    /// How long past `jwks_max_age` keys whose refresh keeps failing still verify. Riding out a partner's JWKS
    /// outage keeps its callers working, but without a bound an endpoint that stays unreachable (or is made so)
    /// would keep a key the partner withdrew valid for ever; past `jwks_max_age + jwks_max_stale` the issuer's tokens
    /// are refused ([`JwtError::KeysUnavailable`]) until a fetch succeeds.
    pub jwks_max_stale: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            max_token_bytes: 8192,
            unknown_kid_cooldown: Duration::from_secs(60),
            jwks_max_age: Duration::from_secs(3600),
            jwks_max_stale: Duration::from_secs(3600),
        }
    }
}

/// Why a token was refused. Every variant means "invalid credentials" (401 `Unauthorized`); the variants exist
/// for logs and metrics. `Display` texts are fixed: they never contain the token, a part of it, or a claim value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant is documented by its #[error] text
pub enum JwtError {
    #[error("token larger than {0} bytes")]
    TooLarge(usize),
    #[error("token is not a well-formed compact JWS")]
    Malformed,
    #[error("alg none is not accepted")]
    AlgNone,
    #[error("algorithm not allowed for this issuer")]
    AlgNotAllowed,
    #[error("token header has a crit parameter")]
    CritHeader,
    #[error("issuer not configured")]
    UnknownIssuer,
    #[error("no key of the issuer has the token's kid")]
    UnknownKid,
    #[error("the key named by kid may not verify this algorithm (kty, curve, alg, use or key_ops)")]
    UnusableKey,
    #[error("token has no kid and the issuer has several fitting keys")]
    AmbiguousKey,
    #[error("no key of the issuer fits the token's algorithm")]
    NoKey,
    #[error("issuer keys unavailable")]
    KeysUnavailable,
    #[error("signature does not verify")]
    BadSignature,
    /// The claim's name (the configured subject claim is reported as `subject`, an audience claim other than `aud`
    /// as `audience`).
    #[error("required claim {0} missing")]
    MissingClaim(&'static str),
    /// One of the issuer's `required_claims` is absent (or null); carries the claim's name from the policy, never a
    /// value.
    #[error("required claim {0} missing")]
    MissingRequiredClaim(String),
    /// The claim's name (the configured subject claim is reported as `subject`, an audience claim other than `aud`
    /// as `audience`).
    #[error("claim {0} has the wrong type or form")]
    InvalidClaim(&'static str),
    #[error("iss does not match")]
    WrongIssuer,
    #[error("audience not accepted")]
    WrongAudience,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("token issued in the future (iat)")]
    IssuedInFuture,
    #[error("token older than the issuer's maximum age")]
    TooOld,
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedJwt {
    /// The configured issuer string (equal to the token's `iss`).
    pub issuer: String,
    /// The value of the issuer's subject claim; with `issuer` it forms the policy's `IdentityKey::Jwt`.
    pub subject: String,
    /// SHA-256 of the token bytes: the decision cache's key, so a cached decision is only reused for exactly
    /// this token.
    pub token_sha256: [u8; 32],
    /// The token's `exp` (Unix seconds).
    pub expires_at: u64,
    /// Until when a decision resting on this verification may be reused: the earliest of `exp`, `iat` + the issuer's
    /// maximum token age, and the time the issuer's keys are due for a refresh (so a key withdrawn at that refresh
    /// is not kept alive by a cached decision). At or after it the token must be verified again.
    pub valid_until: SystemTime,
}

/// One configured issuer, with everything prepared at construction.
struct IssuerEntry {
    rules: ClaimRules,
    algorithms: Vec<JwtAlgorithm>,
    keys: IssuerKeys,
}

/// Verifies partner JWTs. Build once per process and share it (`Send + Sync`); it holds the JWKS caches.
pub struct JwtVerifier {
    issuers: HashMap<String, IssuerEntry>,
    fetcher: Arc<dyn JwksFetcher>,
    cfg: JwtConfig,
    /// Bumped whenever a fetch replaces an issuer's key set with a different one (see [`JwtVerifier::generation`]).
    key_changes: Arc<AtomicU64>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// `now` in Unix seconds (0 for a clock before 1970, which makes every token look expired rather than valid).
fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl JwtVerifier {
    /// Prepares a verifier for every issuer of `policy`. No network call happens here: each issuer's JWKS is
    /// fetched on the first token that names it, so a partner's outage cannot fail a cold start.
    pub fn new(policy: Arc<Policy>, fetcher: Arc<dyn JwksFetcher>, cfg: JwtConfig) -> Self {
        let key_changes = Arc::new(AtomicU64::new(0));
        let mut issuers = HashMap::new();
        for iss in policy.issuers() {
            let leeway = iss.leeway.as_secs();
            let entry = IssuerEntry {
                rules: ClaimRules {
                    issuer: iss.issuer.clone(),
                    audiences: iss.audiences.clone(),
                    audience_claim: iss.audience_claim.clone(),
                    subject_claim: iss.subject_claim.clone(),
                    required_claims: iss.required_claims.clone(),
                    leeway,
                    max_age: iss.max_token_age.as_secs(),
                },
                algorithms: iss.algorithms.clone(),
                keys: IssuerKeys::new(&iss.issuer, &iss.jwks_url, key_changes.clone()),
            };
            issuers.insert(iss.issuer.clone(), entry);
        }
        JwtVerifier { issuers, fetcher, cfg, key_changes }
    }

    /// Reports every failed JWKS fetch (unreachable, error status, too large, not a JWKS) to `sink` as a
    /// `JwksFetchFailures`, with the issuer as the `Issuer` dimension (`metrics::issuer_dimension`: from the
    /// policy, never from a token).
    pub fn with_metrics(mut self, sink: tb_shared::telemetry::MetricsSink) -> Self {
        for entry in self.issuers.values_mut() {
            entry.keys.report_failures_to(sink.clone());
        }
        self
    }

    /// Moves whenever a refresh replaced an issuer's key set with a different one (the first fetch of an issuer
    /// does not count: nothing verified before it). A decision cache compares it before and after a verification,
    /// and on reuse, so a decision made under keys that were since withdrawn is never served.
    pub fn generation(&self) -> u64 {
        self.key_changes.load(Ordering::Acquire)
    }

    /// Verifies a compact JWS (the part after `Bearer `) at time `now` and returns who it identifies.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<VerifiedJwt, JwtError> {
        self.verify_hashed(token, None, now).await
    }

    /// [`JwtVerifier::verify`] for a caller that already hashed the token (a decision cache keyed by its SHA-256):
    /// `token_sha256`, when given, must be SHA-256 of `token` and becomes [`VerifiedJwt::token_sha256`], so the
    /// token is not hashed a second time.
    pub async fn verify_hashed(
        &self,
        token: &str,
        token_sha256: Option<[u8; 32]>,
        now: SystemTime,
    ) -> Result<VerifiedJwt, JwtError> {
        if token.len() > self.cfg.max_token_bytes {
            return Err(JwtError::TooLarge(self.cfg.max_token_bytes));
        }
        let parsed = token::parse(token)?;
        let iss = match parsed.claims.get("iss") {
            None => return Err(JwtError::MissingClaim("iss")),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(JwtError::InvalidClaim("iss")),
        };
        let issuer = self.issuers.get(iss).ok_or(JwtError::UnknownIssuer)?;
        let alg = JwtAlgorithm::from_name(&parsed.alg)
            .filter(|a| issuer.algorithms.contains(a))
            .ok_or(JwtError::AlgNotAllowed)?;

        let snap = self.keys_for(issuer, alg, parsed.kid.as_deref()).await?;
        let Selection::Keys(keys) = snap.keys.select(alg, parsed.kid.as_deref()) else {
            // `keys_for` only returns a snapshot whose selection found keys.
            return Err(JwtError::NoKey);
        };

        if !parsed.header_members_well_formed() {
            return Err(JwtError::Malformed);
        }
        let mut verified = false;
        for key in keys {
            let message = parsed.signing_input.as_bytes();
            match jsonwebtoken::crypto::verify(parsed.signature, message, &key.decoding, jwt_alg(alg)) {
                Ok(true) => {
                    verified = true;
                    break;
                }
                Ok(false) => continue,
                // Key or base64 trouble (neither can happen for a fitting key and a checked segment): nothing
                // about the token is known to be verified.
                Err(_) => return Err(JwtError::Malformed),
            }
        }
        if !verified {
            return Err(JwtError::BadSignature);
        }
        // From here on the claims are the ones the signature covers: `parsed.claims` was decoded from exactly the
        // payload segment of `signing_input`.
        if !token::registered_claims_readable(&parsed.claims) {
            return Err(JwtError::Malformed);
        }
        let checked = claims::check(&parsed.claims, &issuer.rules, unix_secs(now))?;
        // `claims` bounds every time it accepts, so this cannot overflow; if it could, the token is refused rather
        // than the process panicking.
        let usable_until =
            UNIX_EPOCH.checked_add(Duration::from_secs(checked.usable_until)).ok_or(JwtError::InvalidClaim("exp"))?;
        let keys_due = (snap.fetched_at + self.cfg.jwks_max_age).saturating_duration_since(Instant::now());
        let valid_until = now.checked_add(keys_due).map_or(usable_until, |due| usable_until.min(due));
        Ok(VerifiedJwt {
            issuer: issuer.rules.issuer.clone(),
            subject: checked.subject,
            token_sha256: token_sha256.unwrap_or_else(|| Sha256::digest(token.as_bytes()).into()),
            expires_at: checked.expires_at,
            valid_until,
        })
    }

    /// A key snapshot in which `select(alg, kid)` finds keys, refetching the JWKS where the rules allow it.
    ///
    /// Keys older than `jwks_max_age + jwks_max_stale` (every refresh since has failed) are not used at all: the
    /// issuer's tokens get [`JwtError::KeysUnavailable`] until a fetch succeeds.
    async fn keys_for(
        &self,
        issuer: &IssuerEntry,
        alg: JwtAlgorithm,
        kid: Option<&str>,
    ) -> Result<Arc<Snapshot>, JwtError> {
        let cooldown = self.cfg.unknown_kid_cooldown;
        let fetcher = self.fetcher.as_ref();
        if let Some(s) = issuer.keys.snapshot() {
            issuer.keys.refresh_if_old(fetcher, &s, self.cfg.jwks_max_age, cooldown).await;
        }
        let usable_for = self.cfg.jwks_max_age.saturating_add(self.cfg.jwks_max_stale);
        let mut refetched = false;
        loop {
            let current = issuer.keys.snapshot();
            let Some(snap) = current.clone().filter(|s| s.fetched_at.elapsed() <= usable_for) else {
                if refetched {
                    return Err(JwtError::KeysUnavailable);
                }
                refetched = true;
                let seen = current.map_or(0, |s| s.generation);
                match issuer.keys.refetch_on_miss(fetcher, seen, cooldown).await {
                    Refetch::Updated => continue,
                    Refetch::CoolingDown | Refetch::Failed => return Err(JwtError::KeysUnavailable),
                }
            };
            let miss = match snap.keys.select(alg, kid) {
                Selection::Keys(_) => return Ok(snap),
                Selection::Unusable => return Err(JwtError::UnusableKey),
                Selection::Ambiguous => return Err(JwtError::AmbiguousKey),
                Selection::UnknownKid => JwtError::UnknownKid,
                Selection::NoKey => JwtError::NoKey,
            };
            if refetched {
                return Err(miss);
            }
            refetched = true;
            match issuer.keys.refetch_on_miss(fetcher, snap.generation, cooldown).await {
                Refetch::Updated => continue,
                Refetch::CoolingDown | Refetch::Failed => return Err(miss),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::MemoryJwksFetcher;
    use serde_json::{json, Map};
    use tb_devkit::jwt::{standard_claims, PartnerKey};

    const ISS: &str = "https://idp.example";
    const JWKS: &str = "https://idp.example/jwks.json";

    fn verifier(key: &PartnerKey, subject_claim: &str) -> JwtVerifier {
        let yaml = format!(
            r#"
version: 1
callers:
  - id: partner
    identities: [{{ type: jwt, issuer: "{ISS}", subject: s }}]
    cognito_client: partner
    allowed_scopes: [api/read]
    max_token_lifetime_seconds: 900
    quotas: unlimited
issuers:
  - issuer: "{ISS}"
    jwks_url: "{JWKS}"
    audiences: [api]
    algorithms: [RS256]
    max_token_age_seconds: 300
    subject_claim: {subject_claim}
"#
        );
        let policy = Arc::new(Policy::from_bytes("test.yaml", yaml.as_bytes()).unwrap());
        let fetcher = MemoryJwksFetcher::default();
        fetcher.set(JWKS, key.jwks().to_string());
        JwtVerifier::new(policy, Arc::new(fetcher), JwtConfig::default())
    }

    fn claims(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut c = standard_claims(ISS, "s", "api");
        let Value::Object(m) = &mut c else { unreachable!() };
        m.insert("client_id".into(), json!("s"));
        edit(m);
        c
    }

    /// The unreadable forms keep their place in the order of checks: a header member after key selection and
    /// before the signature, a registered claim after the signature and before the claim checks.
    #[tokio::test]
    async fn unreadable_forms_are_refused_where_a_jws_reader_refuses_them() {
        let key = PartnerKey::rsa("k1").unwrap();
        let other = PartnerKey::rsa("k1").unwrap();
        let v = verifier(&key, "sub");
        let now = SystemTime::now();
        let junk_jwk = |h: &mut Map<String, Value>| drop(h.insert("jwk".into(), json!("not a JWK")));
        let good = key.token(&claims(|_| {})).unwrap();
        assert_eq!(v.verify(&good, now).await.unwrap().subject, "s");

        assert_eq!(v.verify(&key.sign(&claims(|_| {}), junk_jwk).unwrap(), now).await, Err(JwtError::Malformed));
        // Checked before the signature, after the key is chosen.
        assert_eq!(v.verify(&other.sign(&claims(|_| {}), junk_jwk).unwrap(), now).await, Err(JwtError::Malformed));
        let unknown_kid = key.sign(&claims(|_| {}), |h| {
            junk_jwk(h);
            h.insert("kid".into(), json!("k9"));
        });
        assert_eq!(v.verify(&unknown_kid.unwrap(), now).await, Err(JwtError::UnknownKid));
        // A well-formed JWK header member is read by nobody.
        let jwk = key.jwk();
        let with_jwk = key.sign(&claims(|_| {}), |h| drop(h.insert("jwk".into(), jwk)));
        assert!(v.verify(&with_jwk.unwrap(), now).await.is_ok());

        // Registered claims: after the signature, before the claim checks.
        let nested_exp = |m: &mut Map<String, Value>| drop(m.insert("exp".into(), json!([1])));
        assert_eq!(v.verify(&key.token(&claims(nested_exp)).unwrap(), now).await, Err(JwtError::Malformed));
        assert_eq!(v.verify(&other.token(&claims(nested_exp)).unwrap(), now).await, Err(JwtError::BadSignature));
        let empty_exp = |m: &mut Map<String, Value>| drop(m.insert("exp".into(), json!([])));
        assert_eq!(v.verify(&key.token(&claims(empty_exp)).unwrap(), now).await, Err(JwtError::InvalidClaim("exp")));
        // `sub` must be readable even where another claim names the subject.
        let by_client_id = verifier(&key, "client_id");
        let object_sub = key.token(&claims(|m| drop(m.insert("sub".into(), json!({}))))).unwrap();
        assert_eq!(by_client_id.verify(&object_sub, now).await, Err(JwtError::Malformed));
        assert!(by_client_id.verify(&good, now).await.is_ok());
    }

    #[tokio::test]
    async fn a_given_hash_is_the_one_reported() {
        let key = PartnerKey::rsa("k1").unwrap();
        let v = verifier(&key, "sub");
        let t = key.token(&claims(|_| {})).unwrap();
        let sha: [u8; 32] = Sha256::digest(t.as_bytes()).into();
        let now = SystemTime::now();
        assert_eq!(v.verify(&t, now).await.unwrap().token_sha256, sha);
        assert_eq!(v.verify_hashed(&t, Some(sha), now).await.unwrap().token_sha256, sha);
    }
}
