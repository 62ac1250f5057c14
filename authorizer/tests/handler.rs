//! Handler-level tests: real-shaped REQUEST events in, API Gateway's answer out, with a test PKI made at run time.
//! GIVEN a policy and trust material WHEN an event arrives THEN the answer is exactly what API Gateway expects.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest as RequestEvent;
use serde_json::Value;
use tb_authorizer::decision::{Authorizer, DecisionCacheConfig, Presented};
use tb_authorizer::handler::{handle_request, App};
use tb_authorizer::jwt::{JwtConfig, JwtVerifier};
use tb_authorizer::mtls::{CertVerifier, MtlsConfig};
use tb_authorizer::response::Unauthorized;
use tb_devkit::jwt::{standard_claims, PartnerKey};
use tb_devkit::pki::{IssuedCert, TestCa};
use tb_shared::policy::Policy;
use tb_shared::sources::{MemoryJwksFetcher, MemoryObjectSource};
use tb_shared::telemetry::{CallerIdHasher, CaptureWriter, MetricsSink};

const MTLS_EVENT: &str = include_str!("fixtures/request-mtls.json");
const JWT_EVENT: &str = include_str!("fixtures/request-jwt.json");

const JWKS_URL: &str = "https://idp.acme.example/.well-known/jwks.json";

struct World {
    ca: TestCa,
    partner: PartnerKey,
    certs: Vec<(&'static str, IssuedCert)>,
    trust: MemoryObjectSource,
    crls: MemoryObjectSource,
    app: App,
    metrics: CaptureWriter,
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn world() -> World {
    let ca = TestCa::root("Dev Root CA").unwrap();
    let now = SystemTime::now();
    let valid = |b: tb_devkit::pki::ClientCertBuilder<'_>| b.validity(now - hours(1), now + hours(24)).build().unwrap();
    let by_uri = valid(ca.issue_client().cn("order-processing").san_uri("spiffe://example.internal/order-processing"));
    let by_dns = valid(ca.issue_client().cn("reporting").san_dns("reporting.svc.example.internal"));
    let by_cn = valid(ca.issue_client().cn("legacy-batch"));
    let by_pin = valid(ca.issue_client().cn("pinned"));
    let by_spki = valid(ca.issue_client().cn("spki-pinned"));
    let stranger = valid(ca.issue_client().cn("nobody").san_uri("spiffe://example.internal/nobody"));
    let disabled = valid(ca.issue_client().cn("old").san_uri("spiffe://example.internal/retired"));
    let policy = format!(
        r#"
version: 1
callers:
  - id: order-processing
    identities: [{{ type: san_uri, value: "spiffe://example.internal/order-processing" }}]
    cognito_client: order-processing
    allowed_scopes: [customer-api/read, customer-api/write, customer-api/admin]
    max_token_lifetime_seconds: 3600
  - id: reporting
    identities: [{{ type: san_dns, value: reporting.svc.example.internal }}]
    cognito_client: reporting
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    usage_plan_key: reporting-usage-plan-key-0001
  - id: legacy-batch
    identities: [{{ type: subject_cn, cn: legacy-batch, issuer_cn: Dev Root CA }}]
    cognito_client: legacy
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
  - id: pinned
    identities: [{{ type: cert_sha256, value: "{pin}" }}]
    cognito_client: pinned
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
  - id: spki-pinned
    identities: [{{ type: spki_sha256, value: "{spki}" }}]
    cognito_client: spki
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
  - id: retired
    enabled: false
    identities: [{{ type: san_uri, value: "spiffe://example.internal/retired" }}]
    cognito_client: retired
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
  - id: partner-acme
    identities: [{{ type: jwt, issuer: "https://idp.acme.example", subject: acme-billing-sync }}]
    cognito_client: partner-acme
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 900
issuers:
  - issuer: https://idp.acme.example
    jwks_url: {JWKS_URL}
    audiences: [token-broker]
    algorithms: [RS256, ES256]
    max_token_age_seconds: 300
"#,
        pin = by_pin.cert_sha256_hex(),
        spki = by_spki.spki_sha256_hex()
    );
    let policy = Arc::new(Policy::from_bytes("test.yaml", policy.as_bytes()).unwrap());
    let trust = MemoryObjectSource::new(ca.cert_pem().as_bytes().to_vec());
    let crls = MemoryObjectSource::new(ca.crl(&[], now - hours(1), now + hours(1)).unwrap().pem.into_bytes());
    let verifier = CertVerifier::new(
        Arc::new(trust.clone()),
        Some(Arc::new(crls.clone())),
        MtlsConfig { refresh_interval: Duration::ZERO, require_crl: true },
    );
    futures_block_on(verifier.refresh()).unwrap();
    let partner = PartnerKey::ec_p256("acme-1").unwrap();
    let jwks = MemoryJwksFetcher::default();
    jwks.set(JWKS_URL, partner.jwks().to_string().into_bytes());
    let jwts = JwtVerifier::new(policy.clone(), Arc::new(jwks), JwtConfig::default());
    let authorizer =
        Authorizer::new(policy, Some(Arc::new(verifier)), Some(Arc::new(jwts)), DecisionCacheConfig::default());
    let metrics = CaptureWriter::default();
    let app = App {
        authorizer,
        metrics: MetricsSink::to_writer("TokenBroker", metrics.clone()),
        hasher: CallerIdHasher::plain(),
    };
    World {
        ca,
        partner,
        certs: vec![
            ("order-processing", by_uri),
            ("reporting", by_dns),
            ("legacy-batch", by_cn),
            ("pinned", by_pin),
            ("spki-pinned", by_spki),
            ("stranger", stranger),
            ("retired", disabled),
        ],
        trust,
        crls,
        app,
        metrics,
    }
}

fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

impl World {
    fn cert(&self, name: &str) -> &IssuedCert {
        &self.certs.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

fn mtls_event(pem: &str) -> RequestEvent {
    let json = MTLS_EVENT.replace("__PEM__", &pem.replace('\n', "\\n"));
    serde_json::from_str(&json).unwrap()
}

fn event_with_arn(pem: &str, arn: &str) -> RequestEvent {
    let mut e = mtls_event(pem);
    e.method_arn = Some(arn.into());
    e
}

async fn answer(w: &World, e: &RequestEvent) -> Result<Value, Unauthorized> {
    handle_request(&w.app, e, SystemTime::now()).await.map(|r| serde_json::to_value(r).unwrap())
}

/// Evaluates a policy resource (with `*` wildcards) against a method ARN the way IAM does for execute-api.
fn arn_matches(pattern: &str, arn: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), arn.as_bytes())
}

#[test]
fn fixtures_parse_with_and_without_client_cert() {
    let e = mtls_event("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    let cert = e.request_context.identity.as_ref().unwrap().client_cert.as_ref().unwrap();
    assert!(cert.client_cert_pem.as_deref().unwrap().starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(cert.serial_number.as_deref(), Some("4e:1a:00:9c"));
    let j: RequestEvent = serde_json::from_str(JWT_EVENT).unwrap();
    assert!(j.request_context.identity.as_ref().unwrap().client_cert.is_none());
    assert_eq!(j.headers.get("authorization").unwrap(), "Bearer __TOKEN__");
    assert_eq!(
        j.method_arn.as_deref(),
        Some("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/POST/oauth2/token")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_match_rule_yields_its_caller_and_context() {
    let w = world();
    for name in ["order-processing", "reporting", "legacy-batch", "pinned", "spki-pinned"] {
        let v = answer(&w, &mtls_event(&w.cert(name).pem)).await.unwrap_or_else(|_| panic!("{name} refused"));
        assert_eq!(v["principalId"], name);
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(v["context"]["callerId"], name);
        assert_eq!(v["context"]["authMethod"], "mtls");
        assert_eq!(v["context"]["policyVersion"], w.app.authorizer.policy().version.as_str());
        let fp = v["context"]["credentialFingerprint"].as_str().unwrap();
        assert_eq!(fp, &w.cert(name).cert_sha256_hex()[..16]);
        for (_, val) in v["context"].as_object().unwrap() {
            assert!(val.is_string(), "context values must be flat strings");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_identifier_key_only_when_the_caller_has_one() {
    let w = world();
    let v = answer(&w, &mtls_event(&w.cert("reporting").pem)).await.unwrap();
    assert_eq!(v["usageIdentifierKey"], "reporting-usage-plan-key-0001");
    let v = answer(&w, &mtls_event(&w.cert("order-processing").pem)).await.unwrap();
    assert!(v.get("usageIdentifierKey").is_none(), "absent, not null: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_reused_for_another_stage_still_allows_only_the_token_method() {
    let w = world();
    let v = answer(&w, &mtls_event(&w.cert("order-processing").pem)).await.unwrap();
    let resource = v["policyDocument"]["Statement"][0]["Resource"][0].as_str().unwrap();
    let api = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5";
    assert!(arn_matches(resource, &format!("{api}/prod/POST/oauth2/token")));
    assert!(arn_matches(resource, &format!("{api}/staging/POST/oauth2/token")));
    assert!(!arn_matches(resource, &format!("{api}/prod/GET/oauth2/token")));
    assert!(!arn_matches(resource, &format!("{api}/prod/POST/admin")));
    assert!(!arn_matches(resource, "arn:aws:execute-api:eu-west-1:123456789012:otherapi/prod/POST/oauth2/token"));
    // The same credential arriving through another stage gets the same (cached) answer.
    let again =
        answer(&w, &event_with_arn(&w.cert("order-processing").pem, &format!("{api}/staging/POST/oauth2/token")))
            .await
            .unwrap();
    assert_eq!(again["policyDocument"], v["policyDocument"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn handler_json_is_what_api_gateway_expects() {
    let w = world();
    let allow = answer(&w, &mtls_event(&w.cert("reporting").pem)).await.unwrap();
    insta::assert_json_snapshot!("allow_mtls", allow, {
        ".context.credentialFingerprint" => "[fingerprint]",
        ".context.policyVersion" => "[policy-version]",
    });
    let deny = answer(&w, &mtls_event(&w.cert("stranger").pem)).await.unwrap();
    insta::assert_json_snapshot!("deny_unknown_caller", deny);
}

#[tokio::test(flavor = "multi_thread")]
async fn known_credential_of_unknown_or_disabled_caller_is_denied() {
    let w = world();
    for name in ["stranger", "retired"] {
        let v = answer(&w, &mtls_event(&w.cert(name).pem)).await.unwrap();
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny", "{name}");
        assert!(v.get("context").is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_invalid_credentials_are_unauthorized() {
    let w = world();
    let mut e = mtls_event("x");
    e.request_context.identity.as_mut().unwrap().client_cert = None;
    assert_eq!(answer(&w, &e).await, Err(Unauthorized));
    assert_eq!(answer(&w, &mtls_event("not a pem")).await, Err(Unauthorized));
    let other_ca = TestCa::root("Dev Root CA").unwrap();
    let now = SystemTime::now();
    let foreign = other_ca
        .issue_client()
        .san_uri("spiffe://example.internal/order-processing")
        .validity(now - hours(1), now + hours(1))
        .build()
        .unwrap();
    assert_eq!(answer(&w, &mtls_event(&foreign.pem)).await, Err(Unauthorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_authorization_headers_are_unauthorized() {
    let w = world();
    for header in ["Basic Zm9vOmJhcg==", "Bearer", "Bearer ", "Bearer a b", "bearer"] {
        let json = JWT_EVENT.replace("Bearer __TOKEN__", header);
        let e: RequestEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(answer(&w, &e).await, Err(Unauthorized), "{header}");
    }
    // Two Authorization headers: refuse rather than pick one.
    let mut e: RequestEvent = serde_json::from_str(JWT_EVENT).unwrap();
    e.headers.append("authorization", "Bearer other".parse().unwrap());
    assert_eq!(answer(&w, &e).await, Err(Unauthorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_method_arn_is_refused() {
    let w = world();
    let e = event_with_arn(&w.cert("order-processing").pem, "arn:aws:lambda:eu-west-1:123456789012:function:x");
    assert_eq!(answer(&w, &e).await, Err(Unauthorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn second_decision_comes_from_the_cache_and_a_crl_update_clears_it() {
    let w = world();
    let pem = w.cert("order-processing").pem.clone();
    let now = SystemTime::now();
    let (first, info) = w.app.authorizer.decide(Presented { client_cert_pem: Some(&pem), bearer: None }, now).await;
    assert!(!info.cache_hit);
    let (second, info) = w.app.authorizer.decide(Presented { client_cert_pem: Some(&pem), bearer: None }, now).await;
    assert!(info.cache_hit);
    assert_eq!(first, second);

    // The operator revokes the certificate: after the refresh the cached Allow is gone and the answer is Deny.
    let crl = w.ca.crl(&[&w.cert("order-processing").serial], now - hours(1), now + hours(1)).unwrap();
    w.crls.set(crl.pem.into_bytes());
    let v = answer(&w, &mtls_event(&pem)).await.unwrap();
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny");
    assert!(w.trust.fetches() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_logs_never_carry_the_certificate() {
    let w = world();
    let logs = CaptureWriter::default();
    let _guard = tb_shared::telemetry::capture_default(logs.clone());
    for name in ["order-processing", "stranger"] {
        let _ = answer(&w, &mtls_event(&w.cert(name).pem)).await;
    }
    let _ = answer(&w, &mtls_event("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")).await;
    let all = format!("{}{}", logs.contents(), w.metrics.contents());
    assert!(all.contains("\"decision\":\"allow\"") && all.contains("\"decision\":\"deny\""), "{all}");
    assert!(all.contains("Allows") && all.contains("Denials"));
    for (_, c) in &w.certs {
        let body_line = c.pem.lines().nth(1).unwrap();
        assert!(!all.contains(body_line), "a PEM line leaked into logs");
    }
    assert!(!all.contains("BEGIN CERTIFICATE"));
}

fn jwt_event(token: &str) -> RequestEvent {
    serde_json::from_str(&JWT_EVENT.replace("__TOKEN__", token)).unwrap()
}

impl World {
    fn partner_token(&self, sub: &str) -> String {
        self.partner.token(&standard_claims("https://idp.acme.example", sub, "token-broker")).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn partner_jwt_yields_its_caller() {
    let w = world();
    let v = answer(&w, &jwt_event(&w.partner_token("acme-billing-sync"))).await.unwrap();
    assert_eq!(v["principalId"], "partner-acme");
    assert_eq!(v["context"]["authMethod"], "jwt");
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
    insta::assert_json_snapshot!("allow_jwt", v, {
        ".context.credentialFingerprint" => "[fingerprint]",
        ".context.policyVersion" => "[policy-version]",
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_jwt_of_an_unregistered_subject_is_denied_and_a_forged_one_unauthorized() {
    let w = world();
    let v = answer(&w, &jwt_event(&w.partner_token("someone-else"))).await.unwrap();
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny");
    let stranger = PartnerKey::ec_p256("acme-1").unwrap();
    let forged =
        stranger.token(&standard_claims("https://idp.acme.example", "acme-billing-sync", "token-broker")).unwrap();
    assert_eq!(answer(&w, &jwt_event(&forged)).await, Err(Unauthorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_and_jwt_of_different_callers_are_denied() {
    let w = world();
    let token = w.partner_token("acme-billing-sync");
    let mut e = jwt_event(&token);
    let mtls = mtls_event(&w.cert("order-processing").pem);
    e.request_context.identity = mtls.request_context.identity.clone();
    let v = answer(&w, &e).await.unwrap();
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny");
    // An invalid JWT next to a valid certificate is still Unauthorized: every credential presented must verify.
    let mut e = jwt_event("eyJhbGciOiJub25lIn0.e30.");
    e.request_context.identity = mtls.request_context.identity;
    assert_eq!(answer(&w, &e).await, Err(Unauthorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_never_carry_the_token_or_authorization_header() {
    let w = world();
    let logs = CaptureWriter::default();
    let _guard = tb_shared::telemetry::capture_default(logs.clone());
    let good = w.partner_token("acme-billing-sync");
    let unknown = w.partner_token("someone-else");
    let _ = answer(&w, &jwt_event(&good)).await.unwrap();
    let _ = answer(&w, &jwt_event(&unknown)).await.unwrap();
    let _ = answer(&w, &jwt_event(&format!("{good}x"))).await;
    let all = format!("{}{}", logs.contents(), w.metrics.contents());
    assert!(all.contains("\"decision\":\"allow\""), "{all}");
    for t in [&good, &unknown] {
        for part in t.split('.') {
            assert!(!all.contains(part), "a token segment leaked into logs");
        }
    }
    assert!(!all.to_ascii_lowercase().contains("bearer "));
}
