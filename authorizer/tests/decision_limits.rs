//! How long a decision may be reused. A cached Allow must end at the earliest of: the cache TTL, the token's `exp`,
//! its `iat` + the issuer's maximum age, the time the issuer's keys are due for a refresh, the certificate's
//! `notAfter` and the earliest CRL nextUpdate; and a decision verified under trust material or keys that changed
//! meanwhile must never be served. Each test drives the handler (or the decision core) past one of those moments
//! and expects a fresh verification, not a cache hit.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest as RequestEvent;
use http::header::{HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};
use tb_authorizer::{build, handle_request, App, Config, Deps, Trust, TrustSources};
use tb_authorizer::{Authorizer, Decision, DecisionCacheConfig, DenyReason, Presented, UnauthorizedReason};
use tb_authorizer::{
    JwksFetcher, JwtConfig, JwtError, JwtVerifier, MemoryJwksFetcher, MemoryObjectSource, SourceError,
};
use tb_devkit::jwt::{jwks, PartnerKey};
use tb_devkit::pki::{IssuedCert, TestCa};
use tb_shared::clock::Clock;
use tb_shared::env::Env;
use tb_shared::policy::Policy;
use tb_shared::telemetry::{CaptureWriter, MetricsSink};

const ISS: &str = "https://idp.limits.example";
const JWKS_URL: &str = "https://idp.limits.example/.well-known/jwks.json";
const AUD: &str = "token-broker";
const ORDERS_URI: &str = "spiffe://example.internal/orders";
/// The JWT subject of the caller that also holds the `ORDERS_URI` certificate.
const ORDERS_SUB: &str = "orders-partner";
const PARTNER_SUB: &str = "partner-sync";

fn policy_yaml(max_token_age: u64) -> String {
    format!(
        r#"
version: 1
callers:
  - id: orders
    identities:
      - {{ type: san_uri, value: "{ORDERS_URI}" }}
      - {{ type: jwt, issuer: "{ISS}", subject: "{ORDERS_SUB}" }}
    cognito_client: orders
    allowed_scopes: [api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
  - id: partner
    identities: [{{ type: jwt, issuer: "{ISS}", subject: "{PARTNER_SUB}" }}]
    cognito_client: partner
    allowed_scopes: [api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
issuers:
  - issuer: "{ISS}"
    jwks_url: "{JWKS_URL}"
    audiences: ["{AUD}"]
    algorithms: [RS256, ES256]
    max_token_age_seconds: {max_token_age}
"#
    )
}

/// Whole Unix seconds, so that the times the tests reason about are exact.
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn claims(sub: &str, iat: u64, exp: u64) -> Value {
    json!({"iss": ISS, "sub": sub, "aud": AUD, "iat": iat, "exp": exp, "jti": format!("{iat}-{sub}")})
}

/// A JWKS fetcher that answers after a delay: a partner endpoint slow enough for trust material to change while a
/// decision waits for it.
struct SlowJwks {
    inner: MemoryJwksFetcher,
    delay: Duration,
}

#[async_trait]
impl JwksFetcher for SlowJwks {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, SourceError> {
        tokio::time::sleep(self.delay).await;
        self.inner.fetch(url).await
    }
}

struct Setup {
    app: App,
    ca: TestCa,
    leaf: IssuedCert,
    crls: MemoryObjectSource,
    jwks: MemoryJwksFetcher,
    partner: PartnerKey,
    _policy: tempfile::NamedTempFile,
}

struct Options {
    max_token_age: u64,
    trust_refresh_seconds: &'static str,
    crl_next_update: SystemTime,
    jwks_delay: Duration,
    refetch_cooldown_seconds: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_token_age: 300,
            trust_refresh_seconds: "0",
            crl_next_update: SystemTime::now() + hours(1),
            jwks_delay: Duration::ZERO,
            refetch_cooldown_seconds: "60",
        }
    }
}

/// The authorizer as the Lambda builds it (configuration reader and builder), with a 60 s decision cache and
/// in-memory adapters.
async fn setup(o: Options) -> Setup {
    let now = SystemTime::now();
    let ca = TestCa::root("Limits Test CA").unwrap();
    let leaf = ca.issue_client().cn("orders").san_uri(ORDERS_URI).validity(now - hours(1), now + hours(24)).build();
    let leaf = leaf.unwrap();
    let policy = tb_devkit::fixtures::write_policy(&policy_yaml(o.max_token_age));
    let trust = MemoryObjectSource::new(ca.cert_pem().as_bytes().to_vec());
    let crls = MemoryObjectSource::new(ca.crl(&[], now - hours(1), o.crl_next_update).unwrap().pem.into_bytes());
    let partner = PartnerKey::rsa("limits-1").unwrap();
    let jwks = MemoryJwksFetcher::default();
    jwks.set(JWKS_URL, partner.jwks().to_string());
    let cfg = Config::read(&Env::from_pairs([
        ("POLICY_FILE", policy.path().to_str().unwrap()),
        ("TRUST_REFRESH_SECONDS", o.trust_refresh_seconds),
        ("DECISION_CACHE_TTL_SECONDS", "60"),
        ("JWKS_REFETCH_COOLDOWN_SECONDS", o.refetch_cooldown_seconds),
    ]))
    .unwrap();
    let deps = Deps {
        trust: Trust::Sources(TrustSources { truststore: Arc::new(trust), crls: Some(Arc::new(crls.clone())) }),
        jwks: Arc::new(SlowJwks { inner: jwks.clone(), delay: o.jwks_delay }),
        metrics: MetricsSink::to_writer("TokenBroker", CaptureWriter::default()),
        clock: Clock::system(),
        context_keys: tb_devkit::fixtures::context_keys(),
    };
    let app = build(&cfg, deps).await.unwrap();
    Setup { app, ca, leaf, crls, jwks, partner, _policy: policy }
}

fn jwt_event(token: &str) -> RequestEvent {
    tb_devkit::events::authorizer_jwt_event(token)
}

fn mtls_event(pem: &str) -> RequestEvent {
    tb_devkit::events::authorizer_mtls_event(pem)
}

/// A request on the mTLS domain that also carries a bearer token.
fn both_event(pem: &str, token: &str) -> RequestEvent {
    let mut e = mtls_event(pem);
    e.headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    e
}

/// The IAM effect of an answer, or `Unauthorized`.
async fn effect(app: &App, e: &RequestEvent, now: SystemTime) -> String {
    match handle_request(app, e, now).await {
        Ok(r) => serde_json::to_value(r).unwrap()["policyDocument"]["Statement"][0]["Effect"].as_str().unwrap().into(),
        Err(_) => "Unauthorized".into(),
    }
}

fn invalid_jwt(e: JwtError) -> Decision {
    Decision::Unauthorized(UnauthorizedReason::InvalidJwt(e.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_jwt_allow_ends_at_the_tokens_age_limit_not_at_its_exp() {
    let s = setup(Options { max_token_age: 2, ..Options::default() }).await;
    let n = unix_now();
    let token = s.partner.token(&claims(PARTNER_SUB, n - 1, n + 3600)).unwrap();
    assert_eq!(effect(&s.app, &jwt_event(&token), at(n)).await, "Allow");

    // Three seconds on the token is four seconds old: past its issuer's two, though an hour from exp and well
    // inside the 60 s cache TTL.
    let presented = Presented { client_cert_pem: None, bearer: Some(&token) };
    let (decision, info) = s.app.authorizer.decide(presented, at(n + 3)).await;
    assert_eq!(decision, invalid_jwt(JwtError::TooOld));
    assert!(!info.cache_hit, "verified again, not served from the cache");
    assert_eq!(effect(&s.app, &jwt_event(&token), at(n + 3)).await, "Unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_mtls_allow_ends_at_the_crls_next_update_not_at_the_certificates_not_after() {
    let n = unix_now();
    // The CRL is fresh for two more seconds, and no refresh comes within the hour that could bring a new one.
    let s = setup(Options { crl_next_update: at(n + 2), trust_refresh_seconds: "3600", ..Options::default() }).await;
    let event = mtls_event(&s.leaf.pem);
    assert_eq!(effect(&s.app, &event, at(n)).await, "Allow");

    let presented = Presented { client_cert_pem: Some(&s.leaf.pem), bearer: None };
    let (decision, info) = s.app.authorizer.decide(presented, at(n + 3)).await;
    assert!(
        matches!(&decision, Decision::Unauthorized(UnauthorizedReason::InvalidCertificate(d)) if d.contains("stale")),
        "{decision:?}"
    );
    assert!(!info.cache_hit, "verified again, not served from the cache");
    assert_eq!(effect(&s.app, &event, at(n + 3)).await, "Unauthorized");
}

/// The check-then-insert race: a decision whose verification started before a revoking CRL was loaded (here held up
/// by a slow JWKS endpoint) finishes after the refresh cleared the cache. It must not be inserted then, or the
/// revoked certificate would ride on it for a whole TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_verified_under_replaced_trust_material_is_not_cached() {
    let s = setup(Options { jwks_delay: Duration::from_millis(500), ..Options::default() }).await;
    let n = unix_now();
    let token = s.partner.token(&claims(ORDERS_SUB, n, n + 300)).unwrap();
    let both = both_event(&s.leaf.pem, &token);

    let slow = effect(&s.app, &both, at(n));
    let revoke = async {
        // Let the first decision verify the certificate and start waiting for the partner's keys.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = SystemTime::now();
        s.crls.set(s.ca.crl(&[&s.leaf.serial], now - hours(1), now + hours(1)).unwrap().pem);
        // The next request finds the refresh due, loads the revoking CRL and clears the cache.
        effect(&s.app, &mtls_event(&s.leaf.pem), at(n)).await
    };
    let (first, revoked) = tokio::join!(slow, revoke);
    assert_eq!(first, "Allow", "verified before the CRL changed");
    assert_eq!(revoked, "Deny");

    assert_eq!(effect(&s.app, &both, at(n)).await, "Deny", "the Allow made under the old CRL was not kept");
    let presented = Presented { client_cert_pem: Some(&s.leaf.pem), bearer: Some(&token) };
    let (decision, _) = s.app.authorizer.decide(presented, at(n)).await;
    assert!(matches!(&decision, Decision::Deny(d) if d.reason == DenyReason::RevokedCertificate), "{decision:?}");
}

/// A partner withdraws a key and publishes a new one. Once a refresh has fetched the new set, a token signed with the
/// withdrawn key is refused at once, not one cache TTL later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_jwt_decisions_are_dropped_when_a_refresh_changes_the_issuers_keys() {
    let s = setup(Options { refetch_cooldown_seconds: "0", ..Options::default() }).await;
    let n = unix_now();
    let old_token = s.partner.token(&claims(PARTNER_SUB, n, n + 300)).unwrap();
    assert_eq!(effect(&s.app, &jwt_event(&old_token), at(n)).await, "Allow");

    let next = PartnerKey::rsa("limits-2").unwrap();
    s.jwks.set(JWKS_URL, next.jwks().to_string());
    // A token under the new kid makes the verifier fetch the new set.
    let new_token = next.token(&claims(PARTNER_SUB, n, n + 300)).unwrap();
    assert_eq!(effect(&s.app, &jwt_event(&new_token), at(n)).await, "Allow");

    let presented = Presented { client_cert_pem: None, bearer: Some(&old_token) };
    let (decision, info) = s.app.authorizer.decide(presented, at(n)).await;
    assert_eq!(decision, invalid_jwt(JwtError::UnknownKid));
    assert!(!info.cache_hit);
    assert_eq!(effect(&s.app, &jwt_event(&old_token), at(n)).await, "Unauthorized");
    // Decisions under the new keys are cached and served again. (The one whose verification fetched them was not
    // kept: the key sets changed while it ran.)
    let presented = Presented { client_cert_pem: None, bearer: Some(&new_token) };
    assert!(matches!(s.app.authorizer.decide(presented, at(n)).await.0, Decision::Allow(_)));
    let (decision, info) = s.app.authorizer.decide(presented, at(n)).await;
    assert!(matches!(decision, Decision::Allow(_)) && info.cache_hit, "{decision:?} {info:?}");
}

/// Without any unknown `kid`, keys are re-fetched when they reach their maximum age; a decision cached before must
/// end then, so a key withdrawn at that refresh stops verifying at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_jwt_allow_ends_when_the_issuers_keys_are_due_for_refresh() {
    let policy = Arc::new(Policy::from_bytes("limits.yaml", policy_yaml(300).as_bytes()).unwrap());
    let partner = PartnerKey::rsa("limits-1").unwrap();
    let fetcher = MemoryJwksFetcher::default();
    fetcher.set(JWKS_URL, partner.jwks().to_string());
    let cfg = JwtConfig { jwks_max_age: Duration::from_millis(1000), ..JwtConfig::default() };
    let jwts = Arc::new(JwtVerifier::new(policy.clone(), Arc::new(fetcher.clone()), cfg));
    let cache = DecisionCacheConfig { ttl: Duration::from_secs(60), ..DecisionCacheConfig::default() };
    let authorizer = Authorizer::new(policy, None, Some(jwts), cache);

    let n = unix_now();
    let token = partner.token(&claims(PARTNER_SUB, n, n + 300)).unwrap();
    let presented = Presented { client_cert_pem: None, bearer: Some(&token) };
    assert!(matches!(authorizer.decide(presented, SystemTime::now()).await.0, Decision::Allow(_)));
    assert!(authorizer.decide(presented, SystemTime::now()).await.1.cache_hit, "cached while the keys are fresh");

    fetcher.set(JWKS_URL, jwks([]).to_string());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (decision, info) = authorizer.decide(presented, SystemTime::now()).await;
    assert_eq!(decision, invalid_jwt(JwtError::UnknownKid));
    assert!(!info.cache_hit);
    assert_eq!(fetcher.fetches(), 2, "the refresh happened on schedule");
}

/// A chain is only as valid as its shortest-lived certificate: a cached Allow ends when the intermediate CA that
/// issued the client certificate expires, even though the client certificate itself runs longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_mtls_allow_ends_when_an_intermediate_of_the_chain_expires() {
    let root = TestCa::root("Limits Root CA").unwrap();
    let ca = root.intermediate("Limits Issuing CA").unwrap();
    let ca_der = ca.cert_der().to_vec();
    let (_, parsed) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let ca_end = parsed.validity().not_after.timestamp() as u64;
    let long = at(ca_end + 86_400);
    let leaf = ca.issue_client().cn("orders").san_uri(ORDERS_URI).validity(at(ca_end - 3600), long).build().unwrap();
    let policy = tb_devkit::fixtures::write_policy(&policy_yaml(300));
    let mut crls = root.crl(&[], at(ca_end - 3600), long).unwrap().pem;
    crls.push_str(&ca.crl(&[], at(ca_end - 3600), long).unwrap().pem);
    let cfg = Config::read(&Env::from_pairs([
        ("POLICY_FILE", policy.path().to_str().unwrap()),
        ("TRUST_REFRESH_SECONDS", "3600"),
        ("DECISION_CACHE_TTL_SECONDS", "60"),
    ]))
    .unwrap();
    let truststore = format!("{}{}", root.cert_pem(), ca.cert_pem());
    let deps = Deps {
        trust: Trust::Sources(TrustSources {
            truststore: Arc::new(MemoryObjectSource::new(truststore.into_bytes())),
            crls: Some(Arc::new(MemoryObjectSource::new(crls.into_bytes()))),
        }),
        jwks: Arc::new(MemoryJwksFetcher::default()),
        metrics: MetricsSink::to_writer("TokenBroker", CaptureWriter::default()),
        clock: Clock::system(),
        context_keys: tb_devkit::fixtures::context_keys(),
    };
    let app = build(&cfg, deps).await.unwrap();
    let event = mtls_event(&leaf.pem);
    assert_eq!(effect(&app, &event, at(ca_end - 2)).await, "Allow");
    let presented = Presented { client_cert_pem: Some(&leaf.pem), bearer: None };
    let (decision, info) = app.authorizer.decide(presented, at(ca_end + 2)).await;
    assert!(matches!(decision, Decision::Unauthorized(_)), "{decision:?}");
    assert!(!info.cache_hit, "verified again once the CA expired, not served from the cache");
}
