//! The two functions as the template deploys them, for the alarm scenarios: each built by its own public builder
//! from the environment the template gives it (parameters at their defaults, this test's stack name), with metrics
//! written by a sink made exactly as the Lambda's `main` makes it (namespace from `METRICS_NAMESPACE`, the `Stack`
//! dimension from `STACK_NAME`), into a capture. Trust material and partner keys are in memory, Cognito is the
//! stand-in over real HTTP on loopback, quotas and credentials are the embedded stores.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest as RequestEvent, ApiGatewayProxyRequest, ApiGatewayProxyResponse,
};
use aws_lambda_events::encodings::Body;
use secrecy::SecretString;
use serde_json::Value;
use tb_authorizer::{MemoryJwksFetcher, MemoryObjectSource, Trust, TrustSources};
use tb_broker::{ClientCredentials, MemoryCredentialSource, MemoryQuotaStore};
use tb_devkit::cognito::{CognitoStandin, StandinClient, StandinConfig};
use tb_devkit::fixtures::REPORTING_DNS;
use tb_devkit::jwt::{standard_claims, PartnerKey};
use tb_devkit::pki::{IssuedCert, TestCa};
use tb_shared::clock::Clock;
use tb_shared::env::Env;
use tb_shared::telemetry::{CaptureWriter, MetricsSink, STACK_DIMENSION};

use crate::alarm_sim::Template;

/// The stack name the simulated deployment has: the `Stack` dimension of every line and of every alarm.
pub const STACK: &str = "tb-alarm-sim";
pub const ISSUER: &str = "https://idp.acme.example";
pub const JWKS_URL: &str = "https://idp.acme.example/.well-known/jwks.json";
pub const PARTNER_SUBJECT: &str = "acme-billing-sync";
/// The scope every caller of the policy may have, and gets by default.
pub const SCOPE: &str = "customer-api/read";

/// One policy for both functions: a certificate caller with a generous quota, one with a small quota, a partner.
const POLICY: &str = r#"version: 1
callers:
  - id: reporting
    identities: [{ type: san_dns, value: reporting.svc.example.internal }]
    cognito_client: reporting
    allowed_scopes: [customer-api/read]
    default_scopes: [customer-api/read]
    quotas: [{ per: day, limit: 100000 }]
    max_token_lifetime_seconds: 3600
  - id: batch
    identities: [{ type: san_uri, value: "spiffe://example.internal/batch" }]
    cognito_client: batch
    allowed_scopes: [customer-api/read]
    default_scopes: [customer-api/read]
    quotas: [{ per: day, limit: 3 }]
    max_token_lifetime_seconds: 3600
  - id: fleet
    identities: [{ type: san_uri, value: "spiffe://example.internal/fleet" }]
    cognito_client: reporting
    allowed_scopes: [customer-api/read]
    default_scopes: [customer-api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
    token_reuse: true
    fleet_token_reuse: true
  - id: partner-acme
    identities: [{ type: jwt, issuer: "https://idp.acme.example", subject: acme-billing-sync }]
    cognito_client: partner-acme
    allowed_scopes: [customer-api/read]
    default_scopes: [customer-api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 900
issuers:
  - issuer: https://idp.acme.example
    jwks_url: https://idp.acme.example/.well-known/jwks.json
    audiences: [token-broker]
    algorithms: [ES256]
    max_token_age_seconds: 300
"#;

/// App client name in the policy → Cognito client id at the stand-in.
const APP_CLIENTS: [(&str, &str); 3] =
    [("reporting", "reporting-client"), ("batch", "batch-client"), ("partner-acme", "partner-client")];

/// The deployment template, as deployed under `stack`.
pub fn template_as(stack: &str) -> Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    Template::load(&path, stack).unwrap_or_else(|e| panic!("{e}"))
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// A CA like `TestCa::root` whose certificate expires `lifetime` from now, to see the truststore gauge near a CA's
/// end (the test PKI's CAs last ten years).
pub fn ca_expiring_in(cn: &str, lifetime: Duration) -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "token-broker test PKI (NOT FOR PRODUCTION)");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(365);
    params.not_after = time::OffsetDateTime::from(SystemTime::now() + lifetime);
    let key = KeyPair::generate().expect("a key");
    let cert = params.self_signed(&key).expect("a self-signed CA");
    TestCa::from_pem(&cert.pem(), &key.serialize_pem()).expect("the CA reloads")
}

/// The certificates the scenarios present.
pub struct Certs {
    /// The `reporting` caller's, valid.
    pub good: IssuedCert,
    /// Valid, from the trusted CA, but no caller of the policy: 403.
    pub stranger: IssuedCert,
    /// The `reporting` caller's name, expired yesterday.
    pub expired: IssuedCert,
    /// The `reporting` caller's name, from a CA nobody trusts.
    pub untrusted: IssuedCert,
}

impl Certs {
    fn issue(ca: &TestCa) -> Certs {
        let now = SystemTime::now();
        let rogue = TestCa::root("Rogue CA").expect("a CA");
        let issue = |ca: &TestCa, dns: &str, from: SystemTime, to: SystemTime| {
            ca.issue_client().cn(dns).san_dns(dns).validity(from, to).build().expect("a certificate")
        };
        Certs {
            good: issue(ca, REPORTING_DNS, now - hours(1), now + hours(24)),
            stranger: issue(ca, "nobody.svc.example.internal", now - hours(1), now + hours(24)),
            expired: issue(ca, REPORTING_DNS, now - hours(48), now - hours(24)),
            untrusted: issue(&rogue, REPORTING_DNS, now - hours(1), now + hours(24)),
        }
    }
}

/// How the authorizer's world looks at its cold start.
pub struct AuthzSetup {
    pub ca: TestCa,
    /// Seconds from now to the CRL's nextUpdate (negative: it has passed).
    pub crl_next_update: i64,
    /// The truststore object cannot be read.
    pub truststore_down: bool,
    /// The partner's JWKS endpoint fails.
    pub jwks_down: bool,
    /// Whether the sink carries the `Stack` dimension, as the Lambda's does (false: a sink made without it).
    pub stack_dimension: bool,
}

impl AuthzSetup {
    /// Healthy trust material: the test PKI's ten-year CA and a CRL whose nextUpdate is a week away.
    pub fn healthy() -> AuthzSetup {
        AuthzSetup {
            ca: TestCa::root("Alarm Sim Root CA").expect("a CA"),
            crl_next_update: 7 * 86_400,
            truststore_down: false,
            jwks_down: false,
            stack_dimension: true,
        }
    }
}

/// A cold-started authorizer and what it wrote.
pub struct Authz {
    pub app: tb_authorizer::App,
    pub emf: CaptureWriter,
    pub certs: Certs,
    pub jwks: MemoryJwksFetcher,
    pub partner: PartnerKey,
    _policy: tempfile::NamedTempFile,
}

/// How the authorizer answered: API Gateway's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allow,
    Deny,
    Unauthorized,
}

impl Authz {
    pub async fn start(setup: AuthzSetup) -> Authz {
        let now = SystemTime::now();
        let policy = tb_devkit::fixtures::write_policy(POLICY);
        let path = policy.path().to_str().expect("a UTF-8 temporary path");
        let env = template_as(STACK).function_env("AuthorizerFunction", &[("POLICY_FILE", path)]).unwrap();
        let cfg = tb_authorizer::Config::read(&Env::from_pairs(env)).expect("the template's authorizer settings");
        let trust = MemoryObjectSource::new(setup.ca.cert_pem().as_bytes().to_vec());
        trust.set_unavailable(setup.truststore_down);
        let next_update = if setup.crl_next_update >= 0 {
            now + Duration::from_secs(setup.crl_next_update.unsigned_abs())
        } else {
            now - Duration::from_secs(setup.crl_next_update.unsigned_abs())
        };
        let crl = setup.ca.crl(&[], next_update.min(now) - hours(1), next_update).expect("a CRL");
        let crls = MemoryObjectSource::new(crl.pem.into_bytes());
        let partner = PartnerKey::ec_p256("acme-1").expect("a partner key");
        let jwks = MemoryJwksFetcher::default();
        jwks.set(JWKS_URL, partner.jwks().to_string().into_bytes());
        jwks.set_down(setup.jwks_down);
        let emf = CaptureWriter::default();
        // As `Deps::from_config` makes the Lambda's sink, into the capture instead of stdout.
        let mut metrics = MetricsSink::to_writer(&cfg.metrics_namespace, emf.clone());
        if setup.stack_dimension {
            metrics = metrics.with_dimension(STACK_DIMENSION, &cfg.stack_name);
        }
        let deps = tb_authorizer::Deps {
            trust: Trust::Sources(TrustSources { truststore: Arc::new(trust), crls: Some(Arc::new(crls)) }),
            jwks: Arc::new(jwks.clone()),
            metrics,
            clock: Clock::system(),
            context_keys: tb_devkit::fixtures::context_keys(),
        };
        let app = tb_authorizer::build(&cfg, deps).await.expect("the authorizer starts");
        Authz { app, emf, certs: Certs::issue(&setup.ca), jwks, partner, _policy: policy }
    }

    pub async fn send(&self, e: &RequestEvent) -> Answer {
        match tb_authorizer::handle_request(&self.app, e, SystemTime::now()).await {
            Err(_) => Answer::Unauthorized,
            Ok(r) => {
                let v = serde_json::to_value(r).expect("an answer serialises");
                match v["policyDocument"]["Statement"][0]["Effect"].as_str() {
                    Some("Allow") => Answer::Allow,
                    _ => Answer::Deny,
                }
            }
        }
    }

    /// Sends `event` `n` times and checks every answer is `expected`.
    pub async fn send_n(&self, n: usize, event: &RequestEvent, expected: Answer) {
        for i in 0..n {
            assert_eq!(self.send(event).await, expected, "request {i} of {n}");
        }
    }

    /// A token the partner signs now.
    pub fn partner_token(&self) -> String {
        self.partner.token(&standard_claims(ISSUER, PARTNER_SUBJECT, "token-broker")).expect("a token")
    }

    /// The partner's token, expired ten minutes ago.
    pub fn expired_token(&self) -> String {
        let mut claims = standard_claims(ISSUER, PARTNER_SUBJECT, "token-broker");
        let now = tb_devkit::jwt::now();
        claims["iat"] = (now - 900).into();
        claims["nbf"] = (now - 900).into();
        claims["exp"] = (now - 600).into();
        self.partner.token(&claims).expect("a token")
    }
}

/// A certificate caller's event.
pub fn mtls(cert: &IssuedCert) -> RequestEvent {
    tb_devkit::events::authorizer_mtls_event(&cert.pem)
}

/// A partner's event with `token` as its bearer token.
pub fn bearer(token: &str) -> RequestEvent {
    tb_devkit::events::authorizer_jwt_event(token)
}

/// An event with neither certificate nor token.
pub fn anonymous() -> RequestEvent {
    serde_json::from_value(tb_devkit::events::authorizer_no_credentials()).expect("an authorizer event")
}

/// An event whose Authorization header is `value` (not a single `Bearer <token>`).
pub fn authorization(value: &str) -> RequestEvent {
    let mut e = tb_devkit::events::authorizer_jwt("placeholder");
    e["headers"]["Authorization"] = Value::from(value);
    e["multiValueHeaders"]["Authorization"] = Value::from(vec![value]);
    serde_json::from_value(e).expect("an authorizer event")
}

/// How the broker's world looks.
pub struct BrokerSetup {
    /// Access-token lifetime of every app client at the stand-in.
    pub token_validity: Duration,
    /// Settings that differ from the template's (e.g. a shorter upstream timeout).
    pub overrides: Vec<(&'static str, &'static str)>,
}

impl Default for BrokerSetup {
    fn default() -> Self {
        BrokerSetup { token_validity: Duration::from_secs(900), overrides: Vec::new() }
    }
}

/// A broker in front of the Cognito stand-in, and what it wrote.
pub struct Broker {
    pub app: tb_broker::App,
    pub emf: CaptureWriter,
    pub standin: CognitoStandin,
    /// The template's fleet-cache settings (timeouts, lease, wait), for [`Broker::with_fleet_cache`].
    fleet_settings: Option<tb_broker::FleetSettings>,
    _policy: tempfile::NamedTempFile,
}

impl Broker {
    pub async fn start(setup: BrokerSetup) -> Broker {
        let clients: Vec<StandinClient> = APP_CLIENTS
            .iter()
            .map(|(_, id)| StandinClient::with_random_secret(*id, &[SCOPE]).token_validity(setup.token_validity))
            .collect();
        let standin = CognitoStandin::start(StandinConfig::new(clients.clone())).await.expect("the stand-in starts");
        let store = MemoryCredentialSource::new();
        for ((app, _), c) in APP_CLIENTS.iter().zip(&clients) {
            let creds = ClientCredentials::token_endpoint(
                c.client_id.clone(),
                SecretString::from(c.client_secret.clone()),
                standin.token_url().parse().expect("a URL"),
            );
            store.insert(app, creds);
        }
        let policy = tb_devkit::fixtures::write_policy(POLICY);
        let path = policy.path().to_str().expect("a UTF-8 temporary path");
        // The fleet token cache's table and key exist only once deployed: a scenario attaches its own cache.
        let mut overrides = vec![
            ("POLICY_FILE", path),
            ("QUOTA_TABLE", "in-memory"),
            ("TOKEN_CACHE_TABLE", "attached-by-the-scenario"),
            ("TOKEN_CACHE_KMS_KEY", "attached-by-the-scenario"),
        ];
        overrides.extend(setup.overrides.iter().copied());
        let env = template_as(STACK).function_env("BrokerFunction", &overrides).unwrap();
        let cfg = tb_broker::Config::read(&Env::from_pairs(env)).expect("the template's broker settings");
        let emf = CaptureWriter::default();
        let deps = tb_broker::Deps {
            quotas: Arc::new(MemoryQuotaStore::new()),
            credentials: Arc::new(store),
            // As `Deps::from_aws` makes the Lambda's sink, into the capture instead of stdout.
            metrics: MetricsSink::to_writer(&cfg.metrics_namespace, emf.clone())
                .with_dimension(STACK_DIMENSION, &cfg.stack_name),
            clock: Clock::system(),
            context_keys: tb_devkit::fixtures::context_keys(),
        };
        let app = tb_broker::build(&cfg, deps).await.expect("the broker starts");
        Broker { app, emf, standin, fleet_settings: cfg.token_cache.clone(), _policy: policy }
    }

    /// The broker with a fleet token cache on `sdk` (the table and key the template would create), with the
    /// template's cache settings.
    pub fn with_fleet_cache(mut self, sdk: &aws_config::SdkConfig, table: &str, key: &str) -> Broker {
        let mut settings = tb_broker::FleetSettings::new(table, key);
        if let Some(template) = &self.fleet_settings {
            settings = tb_broker::FleetSettings { table: table.into(), kms_key: key.into(), ..template.clone() };
        }
        self.app.fleet = Some(tb_broker::FleetCache::from_sdk_config(sdk, settings, Clock::system()));
        self
    }

    /// Handles `req` with the Lambda deadline the template gives the function (10 s).
    pub async fn send(&self, req: ApiGatewayProxyRequest) -> (i64, String) {
        let event = tb_devkit::events::lambda_event(req, SystemTime::now() + Duration::from_secs(10));
        let r: ApiGatewayProxyResponse = tb_broker::handle(&self.app, event).await.expect("the broker answers");
        let body = match r.body {
            Some(Body::Text(t)) => t,
            other => panic!("unexpected body {other:?}"),
        };
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        (r.status_code, json["error"].as_str().unwrap_or("-").to_owned())
    }

    /// `caller` (allowed by the authorizer) posts `body`.
    pub async fn post(&self, caller: &str, body: &str) -> (i64, String) {
        self.send(tb_devkit::events::proxy_request(caller, body)).await
    }

    /// `caller` posts `body` `n` times, each answered `expected` (status, error code or `-`).
    pub async fn post_n(&self, n: usize, caller: &str, body: &str, expected: (i64, &str)) {
        for i in 0..n {
            let (status, error) = self.post(caller, body).await;
            assert_eq!((status, error.as_str()), expected, "{caller} {body}: request {i} of {n}");
        }
    }

    /// Gives `client_id` a new secret at the stand-in only: the broker's stored one is refused from now on.
    pub fn rotate_secret_behind_the_brokers_back(&self, client_id: &str) {
        assert!(self.standin.rotate_secret(client_id).is_some(), "{client_id} is registered");
    }
}
