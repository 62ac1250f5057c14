//! The world the handler tests share: a policy, a test PKI and a partner key made at run time, and the events
//! API Gateway would send. Each test binary uses part of it.
#![allow(dead_code, unused_imports)]

pub use std::sync::Arc;
pub use std::time::{Duration, SystemTime};

pub use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest as RequestEvent;
pub use serde_json::Value;
pub use tb_authorizer::{build, handle_request, App, Config, Deps, Trust, TrustSources, Unauthorized};
pub use tb_authorizer::{Authorizer, DecisionCacheConfig, Presented};
pub use tb_authorizer::{CertVerifier, JwtConfig, JwtVerifier, MtlsConfig};
pub use tb_authorizer::{MemoryJwksFetcher, MemoryObjectSource};
pub use tb_devkit::jwt::{standard_claims, PartnerKey};
pub use tb_devkit::pki::{IssuedCert, TestCa};
pub use tb_shared::clock::Clock;
pub use tb_shared::env::Env;
pub use tb_shared::policy::Policy;
pub use tb_shared::telemetry::{CaptureWriter, MetricsSink};

pub use tb_devkit::events::AUTHORIZER_JWT_FIXTURE as JWT_EVENT;

pub const JWKS_URL: &str = "https://idp.acme.example/.well-known/jwks.json";

pub struct World {
    pub ca: TestCa,
    pub partner: PartnerKey,
    pub certs: Vec<(&'static str, IssuedCert)>,
    pub trust: MemoryObjectSource,
    pub crls: MemoryObjectSource,
    /// The partner's JWKS endpoint (with its outage switch).
    pub jwks: MemoryJwksFetcher,
    pub app: App,
    pub metrics: CaptureWriter,
    /// How long `build` took.
    pub built_in: Duration,
}

/// The world's in-memory trust sources, for a test that builds the authorizer with other ones.
pub struct Sources {
    pub trust: MemoryObjectSource,
    pub crls: MemoryObjectSource,
}

pub fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// The world the Lambda would see: in-memory trust material re-read on every decision so a test's CRL change bites
/// at once.
pub fn world() -> World {
    world_with(&[("TRUST_REFRESH_SECONDS", "0")], |_, _, deps| deps)
}

/// The world built from `env` (added to `POLICY_FILE`), with the adapters `adapt` makes of the default in-memory
/// ones (it sees the configuration read from `env` and the in-memory trust sources).
pub fn world_with(env: &[(&str, &str)], adapt: impl FnOnce(&Config, &Sources, Deps) -> Deps) -> World {
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
    quotas: unlimited
  - id: reporting
    identities: [{{ type: san_dns, value: reporting.svc.example.internal }}]
    cognito_client: reporting
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
    usage_plan_key: reporting-usage-plan-key-0001
  - id: legacy-batch
    identities: [{{ type: subject_cn, cn: legacy-batch, issuer_cn: Dev Root CA }}]
    cognito_client: legacy
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
  - id: pinned
    identities: [{{ type: cert_sha256, value: "{pin}" }}]
    cognito_client: pinned
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
  - id: spki-pinned
    identities: [{{ type: spki_sha256, value: "{spki}" }}]
    cognito_client: spki
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
  - id: retired
    enabled: false
    identities: [{{ type: san_uri, value: "spiffe://example.internal/retired" }}]
    cognito_client: retired
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
  - id: partner-acme
    identities: [{{ type: jwt, issuer: "https://idp.acme.example", subject: acme-billing-sync }}]
    cognito_client: partner-acme
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 900
    quotas: unlimited
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
    let policy_file = tb_devkit::fixtures::write_policy(&policy);
    let trust = MemoryObjectSource::new(ca.cert_pem().as_bytes().to_vec());
    let crls = MemoryObjectSource::new(ca.crl(&[], now - hours(1), now + hours(1)).unwrap().pem.into_bytes());
    let partner = PartnerKey::ec_p256("acme-1").unwrap();
    let jwks = MemoryJwksFetcher::default();
    jwks.set(JWKS_URL, partner.jwks().to_string().into_bytes());
    let metrics = CaptureWriter::default();
    // Built the way the Lambda builds it: the same configuration reader and builder, in-memory adapters.
    let mut pairs = vec![("POLICY_FILE", policy_file.path().to_str().unwrap())];
    pairs.extend_from_slice(env);
    let cfg = Config::read(&Env::from_pairs(pairs)).unwrap();
    let deps = Deps {
        trust: Trust::Sources(TrustSources { truststore: Arc::new(trust.clone()), crls: Some(Arc::new(crls.clone())) }),
        jwks: Arc::new(jwks.clone()),
        metrics: MetricsSink::to_writer("TokenBroker", metrics.clone()),
        clock: Clock::system(),
        context_keys: tb_devkit::fixtures::context_keys(),
    };
    let deps = adapt(&cfg, &Sources { trust: trust.clone(), crls: crls.clone() }, deps);
    let started = std::time::Instant::now();
    let app = block_on(build(&cfg, deps)).unwrap();
    let built_in = started.elapsed();
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
        jwks,
        app,
        metrics,
        built_in,
    }
}

/// Runs `f` to completion from synchronous test code inside a multi-threaded tokio test.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

impl World {
    pub fn cert(&self, name: &str) -> &IssuedCert {
        &self.certs.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

pub fn mtls_event(pem: &str) -> RequestEvent {
    tb_devkit::events::authorizer_mtls_event(pem)
}

pub fn event_with_arn(pem: &str, arn: &str) -> RequestEvent {
    let mut e = mtls_event(pem);
    e.method_arn = Some(arn.into());
    e
}

pub async fn answer(w: &World, e: &RequestEvent) -> Result<Value, Unauthorized> {
    handle_request(&w.app, e, SystemTime::now()).await.map(|r| serde_json::to_value(r).unwrap())
}

/// Evaluates a policy resource (with `*` wildcards) against a method ARN the way IAM does for execute-api.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
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

pub fn jwt_event(token: &str) -> RequestEvent {
    tb_devkit::events::authorizer_jwt_event(token)
}

impl World {
    pub fn partner_token(&self, sub: &str) -> String {
        self.partner.token(&standard_claims("https://idp.acme.example", sub, "token-broker")).unwrap()
    }
}

/// The `AuthorizerErrors` the world's metrics hold: for each occurrence, the reason of its `Reason`-dimensioned
/// line. Panics unless every occurrence also has its line with the `Service` dimension alone (the alarm's series).
pub fn authorizer_errors(metrics: &CaptureWriter) -> Vec<String> {
    authorizer_errors_in(&metrics.contents())
}

/// [`authorizer_errors`] of any text holding EMF lines among others (a function process's output).
pub fn authorizer_errors_in(output: &str) -> Vec<String> {
    let name = tb_authorizer::metric_names::AUTHORIZER_ERRORS;
    let (mut total, mut reasons) = (0.0, Vec::new());
    for line in output.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else { continue };
        let Some(n) = v.get(name).and_then(Value::as_f64) else { continue };
        // The Lambda's sink adds `Stack` to every line; in-process tests may build a sink without it.
        let dims: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .filter(|d| *d != tb_shared::telemetry::STACK_DIMENSION)
            .collect();
        assert_eq!(v["Service"], "authorizer", "{v}");
        match v.get(tb_authorizer::REASON_DIMENSION).and_then(Value::as_str) {
            Some(reason) => {
                assert_eq!(dims, ["Reason", "Service"], "{v}");
                reasons.push(reason.to_owned());
            }
            None => {
                assert_eq!(dims, ["Service"], "{v}");
                total += n;
            }
        }
    }
    assert_eq!(total as usize, reasons.len(), "every AuthorizerErrors counts once for the alarm and once by reason");
    reasons
}

/// The region `tb_devkit::runtime_api::lambda_env` gives a function binary; its key parameter is made there in moto.
pub const LAMBDA_REGION: &str = "eu-west-1";

/// Stores `document` as a new SecureString in moto and returns what the function needs to read it: the parameter's
/// name in `CONTEXT_KEY_PARAMETER`, moto's endpoint and fake credentials (what Lambda's execution role gives it).
pub async fn key_parameter_env(document: Option<&str>) -> Vec<(String, String)> {
    let endpoint = tb_devkit::moto::endpoint();
    let name = format!("/token-broker-rt/context-keys/{}", tb_devkit::moto::unique("run"));
    let sdk = tb_devkit::moto::sdk_config_at(&endpoint, LAMBDA_REGION).await;
    match document {
        Some(document) => tb_devkit::moto::put_secure_string(&sdk, &name, document).await,
        // Asked here first: moto loads its SSM backend on the first call, which takes longer than the function's
        // one-second budget; the function must then find the parameter missing, not time out.
        None => {
            let read = aws_sdk_ssm::Client::new(&sdk).get_parameter().name(&name).send().await;
            assert!(read.is_err(), "{name} exists in moto");
        }
    }
    [
        ("CONTEXT_KEY_PARAMETER", name),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_SESSION_TOKEN", "testing".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec()
}

/// [`key_parameter_env`] holding the devkit's test key set.
pub async fn test_keys_env() -> Vec<(String, String)> {
    use secrecy::ExposeSecret;
    key_parameter_env(Some(tb_devkit::fixtures::context_key_set().to_document().expose_secret())).await
}
