//! Property tests of the authorizer's handler, built by `tb_authorizer::build` with in-memory adapters as the
//! handler tests build it: no REQUEST event that can reach the function makes it panic, and every answer is one
//! API Gateway expects (docs/design.md, "What each input gets"):
//!
//! - Allow, only for the registered, enabled caller that every presented credential proves, with the caller
//!   context and its MAC for the API and stage the `methodArn` names (an Allow whose `methodArn` names no stage is
//!   refused: it could not be signed), the caller's usage-plan key and a policy for the token method of the
//!   request's API;
//! - an explicit Deny (a verified credential that no enabled caller owns, a revoked certificate, two callers);
//! - `Unauthorized` (no credential, a malformed `Authorization`, a credential that fails verification, or a
//!   `methodArn` that is not an execute-api ARN).
//!
//! Each target compares the handler with a model of those rules written from the documents, not from the code.
//! Where the documents leave the class of a refusal open (a certificate and a token of which only one verifies),
//! the model accepts Deny or Unauthorized but never Allow.
//!
//! Cases per target: `TB_PROPTEST_CASES` (default [`DEFAULT_CASES`]); see TESTING.md, "Property tests".

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest as RequestEvent;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tb_authorizer::{
    build, handle_request, pem_fingerprint, App, AuthorizerResponse, Config, Deps, MemoryJwksFetcher,
    MemoryObjectSource, Trust, TrustSources, Unauthorized,
};
use tb_devkit::pki::{to_pem, TestCa};
use tb_shared::clock::Clock;
use tb_shared::env::Env;
use tb_shared::telemetry::MetricsSink;

/// Cases per target when `TB_PROPTEST_CASES` is not set: well under a minute for the whole binary on two cores
/// (TESTING.md, "Property tests", has the measured figures).
const DEFAULT_CASES: u32 = 3000;

const ISSUER: &str = "https://idp.acme.example";
const AUDIENCE: &str = "token-broker";
const KID: &str = "acme-1";
const JWKS_URL: &str = "https://idp.acme.example/.well-known/jwks.json";
/// The issuer's `max_token_age_seconds` and default leeway.
const MAX_AGE: u64 = 300;
const LEEWAY: u64 = 30;
/// Largest bearer token and client certificate PEM the authorizer looks at (docs: size caps).
const MAX_TOKEN_BYTES: usize = 8 * 1024;
const MAX_PEM_BYTES: usize = 16 * 1024;
const ROOT_CN: &str = "Property Root CA";
/// Callers the policy registers but disables.
const DISABLED: [&str; 2] = ["retired", "partner-retired"];

fn cases() -> u32 {
    std::env::var("TB_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_CASES)
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: cases(), max_shrink_iters: 2048, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------------------------
// The world: a policy, a test PKI, a partner key, the app, all made once per test binary.

/// What a credential is, whatever text carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cred {
    /// Verifies and belongs to this caller (which may be disabled).
    Owner(&'static str),
    /// Verifies and belongs to no caller.
    Unowned,
    /// Issued by the trusted CA and listed on its CRL.
    Revoked,
    /// Fails verification.
    Invalid,
}

struct PoolCert {
    name: &'static str,
    pem: String,
    der: Vec<u8>,
    cred: Cred,
}

struct PoolToken {
    name: &'static str,
    token: String,
    cred: Cred,
}

/// The partner's signing key, signing raw header and payload bytes (so duplicate members survive).
struct Signer {
    key: EncodingKey,
}

impl Signer {
    fn new() -> (Signer, Value) {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
        let mut jwk =
            serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap()).unwrap();
        jwk["kid"] = json!(KID);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("ES256");
        (Signer { key }, jwk)
    }

    fn sign(&self, header: &str, payload: &str) -> String {
        self.sign_bytes(header.as_bytes(), payload.as_bytes())
    }

    fn sign_bytes(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, Algorithm::ES256).unwrap();
        format!("{input}.{sig}")
    }
}

struct World {
    rt: tokio::runtime::Runtime,
    app: App,
    /// The time every decision is made at (whole seconds).
    now: SystemTime,
    now_secs: u64,
    signer: Signer,
    certs: Vec<PoolCert>,
    tokens: Vec<PoolToken>,
    usage_keys: HashMap<&'static str, &'static str>,
    _policy_file: tempfile::NamedTempFile,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(World::new)
}

fn good_header() -> String {
    render(&[("alg".into(), json!("ES256")), ("typ".into(), json!("JWT")), ("kid".into(), json!(KID))])
}

fn good_claims(sub: &str, now: u64) -> Vec<(String, Value)> {
    vec![
        ("iss".into(), json!(ISSUER)),
        ("sub".into(), json!(sub)),
        ("aud".into(), json!(AUDIENCE)),
        ("iat".into(), json!(now - 10)),
        ("exp".into(), json!(now + 600)),
        ("jti".into(), json!("0123456789abcdef")),
    ]
}

/// Members of a JSON object in writing order; a name may repeat.
type Members = Vec<(String, Value)>;

/// A JSON object written member by member, in order, duplicates kept.
fn render(members: &[(String, Value)]) -> String {
    let body: Vec<String> = members.iter().map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v)).collect();
    format!("{{{}}}", body.join(","))
}

impl World {
    fn new() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        let hour = Duration::from_secs(3600);

        let ca = TestCa::root(ROOT_CN).unwrap();
        let other_ca = TestCa::root(ROOT_CN).unwrap();
        let valid = |b: tb_devkit::pki::ClientCertBuilder<'_>| b.validity(now - hour, now + 24 * hour).build().unwrap();
        let by_uri =
            valid(ca.issue_client().cn("order-processing").san_uri("spiffe://example.internal/order-processing"));
        let by_dns = valid(ca.issue_client().cn("reporting").san_dns("reporting.svc.example.internal"));
        let by_cn = valid(ca.issue_client().cn("legacy-batch"));
        let by_pin = valid(ca.issue_client().cn("pinned"));
        let hybrid = valid(ca.issue_client().cn("hybrid").san_uri("spiffe://example.internal/hybrid"));
        let retired = valid(ca.issue_client().cn("old").san_uri("spiffe://example.internal/retired"));
        let stranger = valid(ca.issue_client().cn("nobody").san_uri("spiffe://example.internal/nobody"));
        let revoked = valid(ca.issue_client().cn("revoked").san_uri("spiffe://example.internal/order-processing"));
        let expired = ca
            .issue_client()
            .san_uri("spiffe://example.internal/order-processing")
            .validity(now - 48 * hour, now - 24 * hour)
            .build()
            .unwrap();
        let foreign =
            valid(other_ca.issue_client().cn("legacy-batch").san_uri("spiffe://example.internal/order-processing"));
        let no_eku = valid(ca.issue_client().san_uri("spiffe://example.internal/order-processing").client_auth(false));

        let policy = format!(
            r#"
version: 1
callers:
  - id: order-processing
    identities: [{{ type: san_uri, value: "spiffe://example.internal/order-processing" }}]
    cognito_client: order-processing
    allowed_scopes: [customer-api/read]
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
    identities: [{{ type: subject_cn, cn: legacy-batch, issuer_cn: "{ROOT_CN}" }}]
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
  - id: hybrid
    identities:
      - {{ type: san_uri, value: "spiffe://example.internal/hybrid" }}
      - {{ type: jwt, issuer: "{ISSUER}", subject: hybrid-svc }}
    cognito_client: hybrid
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
    identities: [{{ type: jwt, issuer: "{ISSUER}", subject: acme-billing-sync }}]
    cognito_client: partner-acme
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 900
    quotas: unlimited
    usage_plan_key: partner-acme-usage-plan-key-01
  - id: partner-retired
    enabled: false
    identities: [{{ type: jwt, issuer: "{ISSUER}", subject: acme-retired }}]
    cognito_client: partner-retired
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 900
    quotas: unlimited
issuers:
  - issuer: {ISSUER}
    jwks_url: {JWKS_URL}
    audiences: [{AUDIENCE}]
    algorithms: [RS256, ES256]
    max_token_age_seconds: {MAX_AGE}
"#,
            pin = by_pin.cert_sha256_hex(),
        );
        let policy_file = tb_devkit::fixtures::write_policy(&policy);
        let crl = ca.crl(&[&revoked.serial], now - hour, now + 2 * hour).unwrap();
        let (signer, jwk) = Signer::new();
        let jwks = MemoryJwksFetcher::default();
        jwks.set(JWKS_URL, json!({ "keys": [jwk] }).to_string().into_bytes());
        let cfg = Config::read(&Env::from_pairs([("POLICY_FILE", policy_file.path().to_str().unwrap())])).unwrap();
        let deps = Deps {
            trust: Trust::Sources(TrustSources {
                truststore: Arc::new(MemoryObjectSource::new(ca.cert_pem().as_bytes().to_vec())),
                crls: Some(Arc::new(MemoryObjectSource::new(crl.pem.into_bytes()))),
            }),
            jwks: Arc::new(jwks),
            metrics: MetricsSink::to_writer("TokenBroker", std::io::sink()),
            clock: Clock::fixed(now),
            context_keys: tb_devkit::fixtures::context_keys(),
        };
        let app = rt.block_on(build(&cfg, deps)).unwrap();

        let cert = |name, c: &tb_devkit::pki::IssuedCert, cred| PoolCert {
            name,
            pem: c.pem.clone(),
            der: c.der.clone(),
            cred,
        };
        let ca_der = ca.cert_der().to_vec();
        let certs = vec![
            cert("order-processing", &by_uri, Cred::Owner("order-processing")),
            cert("reporting", &by_dns, Cred::Owner("reporting")),
            cert("legacy-batch", &by_cn, Cred::Owner("legacy-batch")),
            cert("pinned", &by_pin, Cred::Owner("pinned")),
            cert("hybrid", &hybrid, Cred::Owner("hybrid")),
            cert("retired", &retired, Cred::Owner("retired")),
            cert("stranger", &stranger, Cred::Unowned),
            cert("revoked", &revoked, Cred::Revoked),
            cert("expired", &expired, Cred::Invalid),
            cert("foreign-ca", &foreign, Cred::Invalid),
            cert("no-client-auth", &no_eku, Cred::Invalid),
            PoolCert { name: "the-ca-itself", pem: to_pem("CERTIFICATE", &ca_der), der: ca_der, cred: Cred::Invalid },
        ];

        let (stranger_key, _) = Signer::new();
        let claims = |sub: &str| render(&good_claims(sub, now_secs));
        let edited = |f: &dyn Fn(&mut Members)| {
            let mut c = good_claims("acme-billing-sync", now_secs);
            f(&mut c);
            render(&c)
        };
        let set = |c: &mut Vec<(String, Value)>, k: &str, v: Value| {
            c.iter_mut().filter(|(n, _)| n == k).for_each(|(_, x)| *x = v.clone());
        };
        let h = good_header();
        let token = |name, t, cred| PoolToken { name, token: t, cred };
        let tokens = vec![
            token("partner-acme", signer.sign(&h, &claims("acme-billing-sync")), Cred::Owner("partner-acme")),
            token("partner-acme-2", signer.sign(&h, &claims("acme-billing-sync")), Cred::Owner("partner-acme")),
            token("hybrid", signer.sign(&h, &claims("hybrid-svc")), Cred::Owner("hybrid")),
            token("partner-retired", signer.sign(&h, &claims("acme-retired")), Cred::Owner("partner-retired")),
            token("unknown-subject", signer.sign(&h, &claims("someone-else")), Cred::Unowned),
            token("expired", signer.sign(&h, &edited(&|c| set(c, "exp", json!(now_secs - 1000)))), Cred::Invalid),
            token("wrong-audience", signer.sign(&h, &edited(&|c| set(c, "aud", json!("elsewhere")))), Cred::Invalid),
            token("stranger-key", stranger_key.sign(&h, &claims("acme-billing-sync")), Cred::Invalid),
            token(
                "alg-none",
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                    URL_SAFE_NO_PAD.encode(claims("acme-billing-sync"))
                ),
                Cred::Invalid,
            ),
        ];
        let usage_keys = HashMap::from([
            ("reporting", "reporting-usage-plan-key-0001"),
            ("partner-acme", "partner-acme-usage-plan-key-01"),
        ]);
        World { rt, app, now, now_secs, signer, certs, tokens, usage_keys, _policy_file: policy_file }
    }

    fn run(&self, e: &RequestEvent) -> Result<AuthorizerResponse, Unauthorized> {
        self.rt.block_on(handle_request(&self.app, e, self.now))
    }

    fn cred_of_token(&self, t: &str) -> Cred {
        self.tokens.iter().find(|p| p.token == t).map_or(Cred::Invalid, |p| p.cred.clone())
    }

    fn cert_by_name(&self, name: &str) -> &PoolCert {
        self.certs.iter().find(|c| c.name == name).unwrap()
    }
}

/// A JWT's fingerprint: the first 16 hex digits of its SHA-256.
fn sha16(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// A certificate's fingerprint: its RFC 8705 `x5t#S256` thumbprint (base64url of the SHA-256 of the DER).
fn x5t(der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

// ---------------------------------------------------------------------------------------------------------------
// The model: what the documents say each request gets.

/// A credential as the model sees it: what it is, and the fingerprint an Allow carries for it.
#[derive(Debug, Clone)]
struct Presented {
    cred: Cred,
    fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Allow { caller: String, method: &'static str, fingerprint: String },
    Deny,
    Unauthorized,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Exactly(Outcome),
    /// Deny or Unauthorized: a refusal whose class the documents leave open.
    Refusal,
}

/// The documented rules for the credentials on one request. `bearer` is `Err` for an `Authorization` that is not
/// exactly one `Bearer <token>`.
fn model(cert: Option<Presented>, bearer: Result<Option<Presented>, ()>, resource: Option<&str>) -> Expect {
    let Ok(bearer) = bearer else { return Expect::Exactly(Outcome::Unauthorized) };
    if resource.is_none() {
        return Expect::Exactly(Outcome::Unauthorized);
    }
    let single = |p: &Presented, method| match &p.cred {
        Cred::Invalid => Outcome::Unauthorized,
        Cred::Unowned | Cred::Revoked => Outcome::Deny,
        Cred::Owner(c) if DISABLED.contains(c) => Outcome::Deny,
        Cred::Owner(c) => Outcome::Allow { caller: (*c).into(), method, fingerprint: p.fingerprint.clone() },
    };
    match (cert, bearer) {
        (None, None) => Expect::Exactly(Outcome::Unauthorized),
        (Some(c), None) => Expect::Exactly(single(&c, "mtls")),
        (None, Some(t)) => Expect::Exactly(single(&t, "jwt")),
        (Some(c), Some(t)) => match (&c.cred, &t.cred) {
            (Cred::Invalid, Cred::Invalid) => Expect::Exactly(Outcome::Unauthorized),
            (Cred::Owner(a), Cred::Owner(b)) if a == b => Expect::Exactly(single(&c, "mtls")),
            (Cred::Owner(_), Cred::Owner(_)) => Expect::Exactly(Outcome::Deny),
            // One verifies and the other does not, or one names nobody: never an Allow.
            _ => Expect::Refusal,
        },
    }
}

/// The token method's resource for every stage of the request's API, or `None` when `methodArn` is not an
/// execute-api method ARN (`arn:{partition}:execute-api:{region}:{account}:{apiId}/{stage}/{VERB}/{path}`).
fn model_resource(arn: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = arn?.splitn(6, ':').collect();
    let [arn, partition, service, region, account, rest] = parts[..] else { return None };
    let name = |s: &str| (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let api = rest.split('/').next().unwrap_or_default();
    let digits = !account.is_empty() && account.chars().all(|c| c.is_ascii_digit());
    (arn == "arn" && service == "execute-api" && name(partition) && name(region) && digits && name(api))
        .then(|| format!("arn:{partition}:execute-api:{region}:{account}:{api}/*/POST/oauth2/token"))
}

/// The API and stage an Allow's context MAC is bound to: the `methodArn`'s API id and the next `/`-part, present,
/// printable and at most 128 characters each; `None` when the ARN names none.
fn model_binding(arn: Option<&str>) -> Option<tb_shared::context::ApiBinding> {
    let rest = arn?.splitn(6, ':').nth(5)?;
    let mut parts = rest.splitn(3, '/');
    let (api_id, stage) = (parts.next()?, parts.next()?);
    let ok = |s: &str| (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    (ok(api_id) && ok(stage)).then(|| tb_shared::context::ApiBinding { api_id: api_id.into(), stage: stage.into() })
}

/// The `Authorization` header as the documents define it: at most one value (in `headers` and in
/// `multiValueHeaders`), `Bearer` in any case, one space, a token without spaces.
fn model_bearer(w: &World, e: &RequestEvent) -> Result<Option<Presented>, ()> {
    let values: Vec<_> = e.headers.get_all("authorization").iter().collect();
    if values.len() > 1 || e.multi_value_headers.get_all("authorization").iter().count() > 1 {
        return Err(());
    }
    let Some(v) = values.first() else { return Ok(None) };
    let text = std::str::from_utf8(v.as_bytes()).map_err(|_| ())?;
    if !text.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Err(());
    }
    let (scheme, token) = text.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(());
    }
    let cred = if token.len() > MAX_TOKEN_BYTES { Cred::Invalid } else { w.cred_of_token(token) };
    Ok(Some(Presented { cred, fingerprint: sha16(token.as_bytes()) }))
}

/// Decodes PEM armour leniently (any whitespace, any base64): the DER a text might carry.
fn lenient_der(text: &str) -> Option<Vec<u8>> {
    let body = text.trim().strip_prefix("-----BEGIN CERTIFICATE-----")?.strip_suffix("-----END CERTIFICATE-----")?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(compact).ok()
}

/// The client certificate field: `None` when absent or empty; otherwise the pool certificate whose DER the text
/// carries (by the authorizer's strict decoding), or an invalid credential. The second value is true when the
/// text carries a pool certificate only by lenient decoding: the strict decoder may refuse it.
fn model_cert(w: &World, e: &RequestEvent) -> (Option<Presented>, bool) {
    let pem = e
        .request_context
        .identity
        .as_ref()
        .and_then(|i| i.client_cert.as_ref())
        .and_then(|c| c.client_cert_pem.as_deref())
        .filter(|p| !p.is_empty());
    let Some(pem) = pem else { return (None, false) };
    let strict = pem_fingerprint(pem);
    let by_strict = strict.and_then(|fp| w.certs.iter().find(|c| <[u8; 32]>::from(Sha256::digest(&c.der)) == fp));
    if let Some(c) = by_strict {
        return (Some(Presented { cred: c.cred.clone(), fingerprint: x5t(&c.der) }), false);
    }
    let lenient = lenient_der(pem).is_some_and(|d| w.certs.iter().any(|c| c.der == d));
    (Some(Presented { cred: Cred::Invalid, fingerprint: String::new() }), lenient)
}

/// Reads the answer to a request with `arn` as its `methodArn` back as API Gateway and then the broker would,
/// checking its shape and an Allow's context MAC; the outcome it stands for.
fn observe(w: &World, arn: Option<&str>, r: &Result<AuthorizerResponse, Unauthorized>) -> Result<Outcome, String> {
    let resource = model_resource(arn);
    let resp = match r {
        Err(Unauthorized) => return Ok(Outcome::Unauthorized),
        Ok(resp) => resp,
    };
    let resource = resource.ok_or("a policy answer for a methodArn that is not an execute-api ARN")?;
    let v = serde_json::to_value(resp).map_err(|e| e.to_string())?;
    let obj = v.as_object().ok_or("answer is not an object")?;
    for k in obj.keys() {
        if !["principalId", "policyDocument", "context", "usageIdentifierKey"].contains(&k.as_str()) {
            return Err(format!("unexpected member {k}: {v}"));
        }
    }
    let effect = v["policyDocument"]["Statement"][0]["Effect"].as_str().unwrap_or_default().to_owned();
    let doc = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Action": "execute-api:Invoke", "Effect": effect, "Resource": [resource] }]
    });
    if v["policyDocument"] != doc {
        return Err(format!("policy document {} is not {doc}", v["policyDocument"]));
    }
    let principal = v["principalId"].as_str().ok_or("no principalId")?;
    match effect.as_str() {
        "Allow" => {
            let ctx = v["context"].as_object().ok_or("Allow without context")?;
            let keys: Vec<&str> = ctx.keys().map(String::as_str).collect();
            let mut want = vec!["authMethod", "callerId", "credentialFingerprint", "policyVersion"];
            want.extend(tb_shared::context::MAC_KEYS);
            want.sort_unstable();
            let mut got = keys.clone();
            got.sort_unstable();
            if got != want || ctx.values().any(|x| !x.is_string()) {
                return Err(format!("context is not the four flat strings and the MAC: {v}"));
            }
            let binding = model_binding(arn).ok_or_else(|| format!("an Allow for a methodArn without a stage: {v}"))?;
            let map: HashMap<String, Value> = ctx.clone().into_iter().collect();
            let caller = tb_shared::context::CallerContext::from_map(&map).map_err(|e| format!("{e}: {v}"))?;
            let keys = tb_devkit::fixtures::context_key_set();
            tb_shared::context::verify(&map, &caller, &binding, &keys, w.now)
                .map_err(|e| format!("the broker would refuse the context ({}): {v}", e.reason()))?;
            let caller = ctx["callerId"].as_str().unwrap_or_default();
            if caller != principal || ctx["policyVersion"] != w.app.authorizer.policy().version.as_str() {
                return Err(format!("principal or policy version: {v}"));
            }
            let key = w.usage_keys.get(caller).copied();
            if v.get("usageIdentifierKey").and_then(Value::as_str) != key {
                return Err(format!("usageIdentifierKey for {caller}: {v}"));
            }
            let method = match ctx["authMethod"].as_str() {
                Some("mtls") => "mtls",
                Some("jwt") => "jwt",
                _ => return Err(format!("authMethod: {v}")),
            };
            let fingerprint = ctx["credentialFingerprint"].as_str().unwrap_or_default().to_owned();
            Ok(Outcome::Allow { caller: caller.to_owned(), method, fingerprint })
        }
        "Deny" => {
            if v.get("context").is_some() || v.get("usageIdentifierKey").is_some() {
                return Err(format!("Deny with context or usage key: {v}"));
            }
            let registered = w.app.authorizer.policy().callers().iter().any(|c| c.id.as_str() == principal);
            if principal != "unknown" && !registered {
                return Err(format!("Deny principal {principal}"));
            }
            Ok(Outcome::Deny)
        }
        other => Err(format!("effect {other:?}")),
    }
}

/// Runs one event through the handler and checks it against the model.
fn check_event(w: &World, e: &RequestEvent) -> Result<Outcome, TestCaseError> {
    let resource = model_resource(e.method_arn.as_deref());
    let (cert, lenient_only) = model_cert(w, e);
    let bearer = model_bearer(w, e);
    let expect = match model(cert, bearer, resource.as_deref()) {
        // An Allow is only ever answered with its MAC, which binds the stage: without one, no Allow.
        Expect::Exactly(Outcome::Allow { .. }) if model_binding(e.method_arn.as_deref()).is_none() => {
            Expect::Exactly(Outcome::Unauthorized)
        }
        other => other,
    };
    let got = observe(w, e.method_arn.as_deref(), &w.run(e)).map_err(TestCaseError::fail)?;
    match (&expect, &got) {
        (Expect::Exactly(want), got) if want == got => {}
        (Expect::Refusal, Outcome::Deny | Outcome::Unauthorized) => {}
        // Text that is a pool certificate only to a lenient decoder may be refused by the strict one.
        (Expect::Exactly(_), Outcome::Unauthorized) if lenient_only => {}
        _ => return Err(TestCaseError::fail(format!("expected {expect:?}, got {got:?}"))),
    }
    Ok(got)
}

// ---------------------------------------------------------------------------------------------------------------
// Target 1: events of any shape.

#[derive(Debug, Clone)]
enum CertField {
    /// `requestContext: {}`: every piece missing at once.
    EmptyContext,
    NoIdentity,
    NullIdentity,
    NoClientCert,
    NullClientCert,
    NoPem,
    NullPem,
    EmptyPem,
    Pool(Index),
    Text(String),
}

#[derive(Debug, Clone)]
enum TokenPick {
    Pool(Index),
    Text(String),
    Huge(usize),
}

#[derive(Debug, Clone)]
struct AuthEntry {
    /// Which letters of `authorization` are upper case.
    case: u16,
    scheme: &'static str,
    sep: &'static str,
    token: TokenPick,
    trailer: &'static str,
}

#[derive(Debug, Clone)]
enum MultiMode {
    /// As API Gateway sends them: each name with all its values.
    Mirror,
    /// Every Authorization value under one name.
    OneName,
    /// Authorization only in `headers`.
    Missing,
    /// `multiValueHeaders: null`.
    Null,
}

#[derive(Debug, Clone)]
enum ArnPick {
    Absent,
    Null,
    Valid { partition: String, region: String, account: String, api: String, stage: String, verb: String, path: String },
    Raw(String),
}

#[derive(Debug, Clone)]
struct EventPlan {
    cert: CertField,
    auth: Vec<AuthEntry>,
    multi: MultiMode,
    arn: ArnPick,
    arn_edit: Option<(Index, String)>,
    request_id: Option<Option<String>>,
    noise: Vec<(String, String)>,
}

fn header_text() -> impl Strategy<Value = String> {
    // What an HTTP client can put in a header value: visible ASCII, spaces, tabs and obs-text.
    prop_oneof![6 => "[ -~]{0,40}", 1 => "[ -~\t\u{80}-\u{ff}]{0,40}", 1 => "[ -~]{200,600}"]
}

fn token_pick() -> impl Strategy<Value = TokenPick> {
    prop_oneof![
        8 => any::<Index>().prop_map(TokenPick::Pool),
        2 => prop_oneof![
            header_text(),
            "[A-Za-z0-9_-]{1,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_=-]{0,40}",
            Just(String::new()),
        ]
        .prop_map(TokenPick::Text),
        1 => (MAX_TOKEN_BYTES - 4..MAX_TOKEN_BYTES + 64).prop_map(TokenPick::Huge),
    ]
}

fn auth_entry() -> impl Strategy<Value = AuthEntry> {
    (
        prop_oneof![3 => Just(0u16), 1 => Just(1u16), 1 => Just(0x1fff), 2 => any::<u16>()],
        prop_oneof![
            8 => Just("Bearer"),
            1 => Just("bearer"),
            1 => Just("BEARER"),
            1 => Just("bEaReR"),
            1 => Just("Basic"),
            1 => Just("Bearer:"),
            1 => Just(""),
            1 => Just("Token"),
        ],
        prop_oneof![8 => Just(" "), 1 => Just("  "), 1 => Just("\t"), 1 => Just(""), 1 => Just(" \t")],
        token_pick(),
        prop_oneof![8 => Just(""), 1 => Just(" "), 1 => Just(" extra"), 1 => Just("\t")],
    )
        .prop_map(|(case, scheme, sep, token, trailer)| AuthEntry { case, scheme, sep, token, trailer })
}

fn arn_pick() -> impl Strategy<Value = ArnPick> {
    let valid = (
        prop_oneof![Just("aws".to_owned()), Just("aws-cn".to_owned()), Just("aws-us-gov".to_owned())],
        "[a-z]{2}-[a-z]{4,9}-[1-9]",
        "[0-9]{12}",
        "[a-z0-9]{10}",
        "[A-Za-z0-9_-]{1,12}",
        prop_oneof![Just("POST".to_owned()), Just("GET".to_owned()), Just("*".to_owned())],
        prop_oneof![Just("oauth2/token".to_owned()), "[a-z0-9/*]{0,20}"],
    )
        .prop_map(|(partition, region, account, api, stage, verb, path)| ArnPick::Valid {
            partition,
            region,
            account,
            api,
            stage,
            verb,
            path,
        });
    prop_oneof![
        8 => valid,
        1 => Just(ArnPick::Absent),
        1 => Just(ArnPick::Null),
        2 => prop_oneof![
            "[ -~]{0,80}",
            "arn:[a-z-]{0,8}:[a-z-]{0,12}:[a-z0-9-]{0,12}:[0-9a-z]{0,12}:[ -~]{0,30}",
        ]
        .prop_map(ArnPick::Raw),
    ]
}

fn cert_field() -> impl Strategy<Value = CertField> {
    prop_oneof![
        1 => Just(CertField::EmptyContext),
        3 => Just(CertField::NoIdentity),
        1 => Just(CertField::NullIdentity),
        2 => Just(CertField::NoClientCert),
        1 => Just(CertField::NullClientCert),
        1 => Just(CertField::NoPem),
        1 => Just(CertField::NullPem),
        1 => Just(CertField::EmptyPem),
        6 => any::<Index>().prop_map(CertField::Pool),
        1 => prop_oneof![
            "[ -~\n]{0,200}",
            Just(" \n\t".to_owned()),
            "-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]{0,200}\n-----END CERTIFICATE-----\n",
        ]
        .prop_map(CertField::Text),
    ]
}

fn event_plan() -> impl Strategy<Value = EventPlan> {
    (
        cert_field(),
        prop_oneof![3 => Just(vec![]), 6 => prop::collection::vec(auth_entry(), 1..=1), 2 => prop::collection::vec(auth_entry(), 2..=3)],
        prop_oneof![6 => Just(MultiMode::Mirror), 1 => Just(MultiMode::OneName), 1 => Just(MultiMode::Missing), 1 => Just(MultiMode::Null)],
        arn_pick(),
        prop::option::weighted(0.15, (any::<Index>(), "[ -~]{0,12}")),
        prop::option::of(prop::option::of("[ -~]{0,200}")),
        prop::collection::vec(("[a-z][a-z0-9-]{0,15}", header_text()), 0..4),
    )
        .prop_map(|(cert, auth, multi, arn, arn_edit, request_id, noise)| EventPlan {
            cert,
            auth,
            multi,
            arn,
            arn_edit,
            request_id,
            noise,
        })
}

fn header_name(case: u16) -> String {
    "authorization"
        .chars()
        .enumerate()
        .map(|(i, c)| if case >> i & 1 == 1 { c.to_ascii_uppercase() } else { c })
        .collect()
}

fn token_text(w: &World, t: &TokenPick) -> String {
    match t {
        TokenPick::Pool(i) => w.tokens[i.index(w.tokens.len())].token.clone(),
        TokenPick::Text(s) => s.clone(),
        TokenPick::Huge(n) => {
            // A partner token padded with claims: valid base64url throughout.
            let base = &w.tokens[0].token;
            let pad = n.saturating_sub(base.len());
            format!("{base}{}", "A".repeat(pad))
        }
    }
}

/// The event JSON the plan describes, as the Lambda runtime would read it.
fn event_json(w: &World, p: &EventPlan) -> Value {
    let mut e = tb_devkit::events::authorizer_mtls("placeholder");
    let rc = &mut e["requestContext"];
    match &p.cert {
        CertField::EmptyContext => *rc = json!({}),
        CertField::NoIdentity => drop(rc.as_object_mut().unwrap().remove("identity")),
        CertField::NullIdentity => rc["identity"] = Value::Null,
        CertField::NoClientCert => drop(rc["identity"].as_object_mut().unwrap().remove("clientCert")),
        CertField::NullClientCert => rc["identity"]["clientCert"] = Value::Null,
        CertField::NoPem => drop(rc["identity"]["clientCert"].as_object_mut().unwrap().remove("clientCertPem")),
        CertField::NullPem => rc["identity"]["clientCert"]["clientCertPem"] = Value::Null,
        CertField::EmptyPem => rc["identity"]["clientCert"]["clientCertPem"] = json!(""),
        CertField::Pool(i) => {
            rc["identity"]["clientCert"]["clientCertPem"] = json!(w.certs[i.index(w.certs.len())].pem)
        }
        CertField::Text(t) => rc["identity"]["clientCert"]["clientCertPem"] = json!(t),
    }
    match &p.request_id {
        None => drop(rc.as_object_mut().unwrap().remove("requestId")),
        Some(None) => rc["requestId"] = Value::Null,
        Some(Some(id)) => rc["requestId"] = json!(id),
    }

    let mut headers = e["headers"].as_object().cloned().unwrap_or_default();
    let mut multi = e["multiValueHeaders"].as_object().cloned().unwrap_or_default();
    for (k, v) in &p.noise {
        headers.insert(k.clone(), json!(v));
        multi.insert(k.clone(), json!([v]));
    }
    let mut all: Vec<String> = Vec::new();
    for a in &p.auth {
        let name = header_name(a.case);
        let value = format!("{}{}{}{}", a.scheme, a.sep, token_text(w, &a.token), a.trailer);
        headers.insert(name.clone(), json!(value));
        if matches!(p.multi, MultiMode::Mirror) {
            let slot = multi.entry(name).or_insert_with(|| json!([]));
            slot.as_array_mut().unwrap().push(json!(value));
        }
        all.push(value);
    }
    if matches!(p.multi, MultiMode::OneName) && !all.is_empty() {
        multi.insert("Authorization".into(), json!(all));
    }
    e["headers"] = Value::Object(headers);
    e["multiValueHeaders"] = if matches!(p.multi, MultiMode::Null) { Value::Null } else { Value::Object(multi) };

    let arn = match &p.arn {
        ArnPick::Absent => None,
        ArnPick::Null => Some(Value::Null),
        ArnPick::Valid { partition, region, account, api, stage, verb, path } => {
            let mut s = format!("arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/{verb}/{path}");
            if let Some((at, with)) = &p.arn_edit {
                // Replace one piece of a valid ARN: a cut, an odd character, another service.
                let pieces: Vec<&str> = s.split([':', '/']).collect();
                let victim = pieces[at.index(pieces.len())].to_owned();
                s = s.replacen(&victim, with, 1);
            }
            Some(json!(s))
        }
        ArnPick::Raw(s) => Some(json!(s)),
    };
    match arn {
        None => drop(e.as_object_mut().unwrap().remove("methodArn")),
        Some(v) => e["methodArn"] = v,
    }
    e
}

// ---------------------------------------------------------------------------------------------------------------
// Target 2: the client certificate field.

#[derive(Debug, Clone)]
enum PemEdit {
    AsIs,
    /// CRLF line ends, surrounding whitespace, another line length, no line breaks at all.
    Whitespace {
        crlf: bool,
        lead: &'static str,
        trail: &'static str,
        width: usize,
    },
    TruncateText(Index),
    ReplaceChar(Index, char),
    InsertChar(Index, char),
    FlipDerBit(Index, u8),
    TruncateDer(Index),
    AppendDer(Vec<u8>),
    RandomDer(Vec<u8>),
    Label(&'static str),
    LowerArmour,
    Several(Vec<Index>, &'static str),
    Oversized(usize),
}

#[derive(Debug, Clone)]
struct PemPlan {
    cert: Index,
    edit: PemEdit,
    bearer: Option<Index>,
}

fn pem_edit() -> impl Strategy<Value = PemEdit> {
    prop_oneof![
        2 => Just(PemEdit::AsIs),
        2 => (
            any::<bool>(),
            prop_oneof![Just(""), Just("\n"), Just("  \r\n"), Just("\t")],
            prop_oneof![Just(""), Just("\n"), Just("\r\n\r\n"), Just(" ")],
            prop_oneof![Just(64usize), Just(76), Just(1), Just(3), Just(100_000)],
        )
            .prop_map(|(crlf, lead, trail, width)| PemEdit::Whitespace { crlf, lead, trail, width }),
        2 => any::<Index>().prop_map(PemEdit::TruncateText),
        2 => (any::<Index>(), prop_oneof![Just('A'), Just('/'), Just('='), Just('-'), Just(' '), Just('*'), Just('\u{e9}'), Just('\0')])
            .prop_map(|(i, c)| PemEdit::ReplaceChar(i, c)),
        1 => (any::<Index>(), prop_oneof![Just('A'), Just('='), Just('-'), Just('\n'), Just('\u{a0}')])
            .prop_map(|(i, c)| PemEdit::InsertChar(i, c)),
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| PemEdit::FlipDerBit(i, b)),
        1 => any::<Index>().prop_map(PemEdit::TruncateDer),
        1 => prop::collection::vec(any::<u8>(), 1..8).prop_map(PemEdit::AppendDer),
        2 => prop_oneof![
            prop::collection::vec(any::<u8>(), 0..1200),
            // Something that starts like a certificate: a SEQUENCE with a plausible length.
            prop::collection::vec(any::<u8>(), 0..600).prop_map(|mut v| {
                let len = v.len() as u16;
                let mut d = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
                d.append(&mut v);
                d
            }),
        ]
        .prop_map(PemEdit::RandomDer),
        1 => prop_oneof![
            Just("X509 CERTIFICATE"),
            Just("TRUSTED CERTIFICATE"),
            Just("PRIVATE KEY"),
            Just("CERTIFICATE REQUEST"),
            Just("X509 CRL"),
            Just(""),
        ]
        .prop_map(PemEdit::Label),
        1 => Just(PemEdit::LowerArmour),
        2 => (prop::collection::vec(any::<Index>(), 2..4), prop_oneof![Just(""), Just("\n"), Just("\nsubject=CN=x\n")])
            .prop_map(|(v, sep)| PemEdit::Several(v, sep)),
        1 => prop_oneof![Just(MAX_PEM_BYTES - 8), Just(MAX_PEM_BYTES + 1), Just(64 * 1024), Just(400 * 1024)]
            .prop_map(PemEdit::Oversized),
    ]
}

fn pem_plan() -> impl Strategy<Value = PemPlan> {
    (any::<Index>(), pem_edit(), prop::option::weighted(0.2, any::<Index>())).prop_map(|(cert, edit, bearer)| PemPlan {
        cert,
        edit,
        bearer,
    })
}

fn rewrap(der: &[u8], width: usize, nl: &str) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(width.max(1)).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----{nl}{}{nl}-----END CERTIFICATE-----{nl}", lines.join(nl))
}

fn char_edit(text: &str, at: &Index, f: impl FnOnce(&mut Vec<char>, usize)) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let i = at.index(chars.len());
    f(&mut chars, i);
    chars.into_iter().collect()
}

fn pem_text(w: &World, p: &PemPlan) -> String {
    let base = &w.certs[p.cert.index(w.certs.len())];
    match &p.edit {
        PemEdit::AsIs => base.pem.clone(),
        PemEdit::Whitespace { crlf, lead, trail, width } => {
            format!("{lead}{}{trail}", rewrap(&base.der, *width, if *crlf { "\r\n" } else { "\n" }))
        }
        PemEdit::TruncateText(at) => base.pem.chars().take(at.index(base.pem.chars().count())).collect(),
        PemEdit::ReplaceChar(at, c) => char_edit(&base.pem, at, |v, i| v[i] = *c),
        PemEdit::InsertChar(at, c) => char_edit(&base.pem, at, |v, i| v.insert(i, *c)),
        PemEdit::FlipDerBit(at, bit) => {
            let mut d = base.der.clone();
            let i = at.index(d.len());
            d[i] ^= 1 << bit;
            to_pem("CERTIFICATE", &d)
        }
        PemEdit::TruncateDer(at) => to_pem("CERTIFICATE", &base.der[..at.index(base.der.len())]),
        PemEdit::AppendDer(extra) => to_pem("CERTIFICATE", &[base.der.as_slice(), extra].concat()),
        PemEdit::RandomDer(bytes) => to_pem("CERTIFICATE", bytes),
        PemEdit::Label(label) => base.pem.replace("CERTIFICATE", label),
        PemEdit::LowerArmour => base.pem.replace("BEGIN CERTIFICATE", "begin certificate"),
        PemEdit::Several(picks, sep) => {
            picks.iter().map(|i| w.certs[i.index(w.certs.len())].pem.clone()).collect::<Vec<_>>().join(sep)
        }
        PemEdit::Oversized(n) => {
            let mut t = base.pem.clone();
            // Whitespace padding keeps the DER; only the size is wrong.
            let pad = n.saturating_sub(t.len());
            t.push_str(&"\n".repeat(pad));
            t
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Targets 3 and 4: partner tokens signed with the registered key, with any header and claims.

/// `None` leaves the member out.
type Member = (String, Option<Value>);

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(Value::from),
        "[ -~]{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly the valid value, sometimes anything else: most tokens differ from a valid one in one or two members.
fn mostly(
    good: impl Strategy<Value = Option<Value>> + 'static,
    other: impl Strategy<Value = Option<Value>> + 'static,
) -> BoxedStrategy<Option<Value>> {
    prop_oneof![12 => good, 1 => other].boxed()
}

fn header_members() -> impl Strategy<Value = Vec<Member>> {
    (
        mostly(
            Just(Some(json!("ES256"))),
            prop_oneof![
                Just(Some(json!("RS256"))),
                Just(Some(json!("HS256"))),
                Just(Some(json!("ES384"))),
                Just(Some(json!("es256"))),
                prop_oneof![Just("none"), Just("None"), Just(" NONE"), Just("nOnE ")].prop_map(|s| Some(json!(s))),
                "[ -~]{0,12}".prop_map(|s| Some(json!(s))),
                any_json().prop_map(Some),
                Just(None),
            ],
        ),
        mostly(
            prop_oneof![3 => Just(Some(json!(KID))), 1 => Just(None)],
            prop_oneof![
                "[ -~]{0,12}".prop_map(|s| Some(json!(s))),
                Just(Some(json!("k".repeat(300)))),
                Just(Some(json!(""))),
                any_json().prop_map(Some),
            ],
        ),
        mostly(
            prop_oneof![Just(Some(json!("JWT"))), Just(None), Just(Some(json!("at+jwt"))), Just(Some(Value::Null))],
            any_json().prop_map(Some),
        ),
        mostly(
            Just(None),
            prop_oneof![
                Just(Some(json!([]))),
                Just(Some(json!(["exp"]))),
                Just(Some(Value::Null)),
                any_json().prop_map(Some)
            ],
        ),
        prop::collection::vec(
            prop_oneof![
                ("jku|x5u|cty|x5t", "[ -~]{0,30}".prop_map(|s| Some(json!(s)))),
                ("cty", any_json().prop_map(Some)),
                // Names no JOSE header defines: read by nobody.
                ("x-[a-z]{1,6}", any_json().prop_map(Some)),
            ],
            0..3,
        ),
    )
        .prop_map(|(alg, kid, typ, crit, extra)| {
            let mut m = vec![("alg".into(), alg), ("typ".into(), typ), ("kid".into(), kid), ("crit".into(), crit)];
            m.extend(extra);
            distinct(m)
        })
}

/// Any NumericDate near `now` (every boundary of exp, nbf, iat, leeway and age), far from it, out of range, or
/// not a number at all.
fn any_time(now: u64) -> impl Strategy<Value = Option<Value>> {
    let n = now as i64;
    let edge = (MAX_AGE + LEEWAY + 30) as i64;
    prop_oneof![
        6 => (-edge..edge).prop_map(move |d| Some(json!(n + d))),
        2 => (-200_000i64..200_000).prop_map(move |d| Some(json!(n + d))),
        3 => (-(edge as f64)..edge as f64).prop_map(move |d| Some(json!(n as f64 + d))),
        2 => prop_oneof![
            Just(json!(0)),
            Just(json!(-0.0)),
            Just(json!(-1)),
            Just(json!(999_999_999_999_999u64)),
            Just(json!(1_000_000_000_000_000u64)),
            Just(json!(1e15)),
            Just(json!(9.999_999_999_999_99e14)),
            Just(json!(1u64 << 63)),
            Just(json!(u64::MAX)),
            Just(json!(1e300)),
            Just(json!(i64::MIN)),
        ]
        .prop_map(Some),
        1 => any::<i64>().prop_map(|v| Some(json!(v))),
        1 => any::<u64>().prop_map(|v| Some(json!(v))),
        1 => Just(Some(json!(now.to_string()))),
        1 => any_json().prop_map(Some),
        1 => Just(None),
    ]
}

fn subject() -> impl Strategy<Value = Option<Value>> {
    mostly(
        prop_oneof![
            3 => Just(Some(json!("acme-billing-sync"))),
            1 => Just(Some(json!("hybrid-svc"))),
            1 => Just(Some(json!("acme-retired"))),
            1 => Just(Some(json!("ACME-BILLING-SYNC"))),
            1 => "[ -~]{1,20}".prop_map(|s| Some(json!(s))),
        ],
        prop_oneof![
            Just(Some(json!(""))),
            prop_oneof![
                Just("s".repeat(256)),
                Just("s".repeat(257)),
                Just("\u{e9}".repeat(128)),
                Just("\u{e9}".repeat(129))
            ]
            .prop_map(|s| Some(json!(s))),
            any_json().prop_map(Some),
            Just(None),
        ],
    )
}

fn audience() -> impl Strategy<Value = Option<Value>> {
    let item = prop_oneof![3 => Just(json!(AUDIENCE)), 3 => "[a-z.-]{0,12}".prop_map(Value::from), 1 => any_json()];
    mostly(
        prop_oneof![
            4 => Just(Some(json!(AUDIENCE))),
            1 => Just(Some(json!(["other", AUDIENCE]))),
        ],
        prop_oneof![
            Just(Some(json!("token-broker "))),
            "[ -~]{0,16}".prop_map(|s| Some(json!(s))),
            prop::collection::vec(item, 0..36).prop_map(|v| Some(json!(v))),
            any_json().prop_map(Some),
            Just(None),
        ],
    )
}

fn issuer() -> impl Strategy<Value = Option<Value>> {
    mostly(
        Just(Some(json!(ISSUER))),
        prop_oneof![
            Just(Some(json!(format!("{ISSUER}/")))),
            Just(Some(json!([ISSUER]))),
            "[ -~]{0,20}".prop_map(|s| Some(json!(s))),
            any_json().prop_map(Some),
            Just(None),
        ],
    )
}

fn claim_members(now: u64) -> impl Strategy<Value = Vec<Member>> {
    let (n, age) = (now as i64, MAX_AGE as i64);
    (
        issuer(),
        subject(),
        audience(),
        mostly((1..3600i64).prop_map(move |d| Some(json!(n + d))), any_time(now)),
        mostly(prop_oneof![Just(None), (0..age).prop_map(move |d| Some(json!(n - d)))], any_time(now)),
        mostly((0..age).prop_map(move |d| Some(json!(n - d))), any_time(now)),
        prop::collection::vec(("[a-z]{1,6}", any_json().prop_map(Some)), 0..3),
    )
        .prop_map(|(iss, sub, aud, exp, nbf, iat, extra)| {
            let mut m = vec![
                ("iss".into(), iss),
                ("sub".into(), sub),
                ("aud".into(), aud),
                ("exp".into(), exp),
                ("nbf".into(), nbf),
                ("iat".into(), iat),
            ];
            m.extend(extra);
            distinct(m)
        })
}

/// The members with each name once (the first), so that only the duplicate target repeats a member.
fn distinct(members: Vec<Member>) -> Vec<Member> {
    let mut seen = std::collections::HashSet::new();
    members.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect()
}

fn present(members: &[Member]) -> Vec<(String, Value)> {
    members.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect()
}

/// A NumericDate (RFC 7519 §2) as the documents take it: a non-negative number below 10^15 seconds, a fraction
/// rounded towards the less valid side.
fn numeric_date(v: Option<&Value>, up: bool) -> Option<u64> {
    let n = v?.as_number()?;
    if let Some(u) = n.as_u64() {
        return (u < 1_000_000_000_000_000).then_some(u);
    }
    let f = n.as_f64()?;
    (0.0..1e15).contains(&f).then(|| if up { f.ceil() } else { f.floor() } as u64)
}

/// The documented checks of a partner token whose signature is the registered key's.
fn token_cred(header: &Map<String, Value>, claims: &Map<String, Value>, now: u64) -> Cred {
    let string_or_null = |k: &str| matches!(header.get(k), None | Some(Value::Null) | Some(Value::String(_)));
    let header_ok = header.get("alg") == Some(&json!("ES256"))
        && !header.contains_key("crit")
        && header.get("kid").is_none_or(|k| k == KID)
        && ["typ", "cty", "jku", "x5u", "x5t"].iter().all(|k| string_or_null(k));
    if !header_ok || claims.get("iss") != Some(&json!(ISSUER)) {
        return Cred::Invalid;
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(list)) => {
            (1..=32).contains(&list.len()) && list.iter().all(Value::is_string) && list.contains(&json!(AUDIENCE))
        }
        _ => false,
    };
    let exp = numeric_date(claims.get("exp"), false);
    let iat = numeric_date(claims.get("iat"), true);
    let nbf = claims.get("nbf").map(|v| numeric_date(Some(v), true));
    let (Some(exp), Some(iat), true, Some(nbf)) = (exp, iat, aud_ok, nbf.unwrap_or(Some(0))) else {
        return Cred::Invalid;
    };
    if exp + LEEWAY < now || nbf > now + LEEWAY || iat > now + LEEWAY || now.saturating_sub(iat) > MAX_AGE {
        return Cred::Invalid;
    }
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => match s.as_str() {
            "acme-billing-sync" => Cred::Owner("partner-acme"),
            "acme-retired" => Cred::Owner("partner-retired"),
            "hybrid-svc" => Cred::Owner("hybrid"),
            _ => Cred::Unowned,
        },
        _ => Cred::Invalid,
    }
}

fn jwt_event_for(token: &str) -> RequestEvent {
    tb_devkit::events::authorizer_jwt_event(token)
}

/// Outcome of a single signed token under the model, from the header and payload JSON texts.
fn token_model(w: &World, header: &Map<String, Value>, claims: &Map<String, Value>, token: &str) -> Outcome {
    let cred = if token.len() > MAX_TOKEN_BYTES { Cred::Invalid } else { token_cred(header, claims, w.now_secs) };
    match model(None, Ok(Some(Presented { cred, fingerprint: sha16(token.as_bytes()) })), Some("x")) {
        Expect::Exactly(o) => o,
        Expect::Refusal => unreachable!("one credential has one class"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Header,
    Payload,
}

#[derive(Debug, Clone)]
struct Duplicate {
    part: Part,
    /// Which existing member (or a new name) is repeated.
    member: Index,
    value: Option<Value>,
    /// Where the copy goes: before the original (the original is then last) or after it.
    after: bool,
}

fn duplicate() -> impl Strategy<Value = Duplicate> {
    (
        prop_oneof![Just(Part::Header), Just(Part::Payload)],
        any::<Index>(),
        prop_oneof![3 => Just(None), 2 => any_json().prop_map(Some)],
        any::<bool>(),
    )
        .prop_map(|(part, member, value, after)| Duplicate { part, member, value, after })
}

/// Inserts the duplicates; a `None` value repeats the member with a valid value of its own (the documents'
/// example value for that name), otherwise with the given one.
fn with_duplicates(
    w: &World,
    header: &mut Vec<(String, Value)>,
    claims: &mut Vec<(String, Value)>,
    dups: &[Duplicate],
) {
    let good: HashMap<String, Value> = good_claims("acme-billing-sync", w.now_secs)
        .into_iter()
        .chain([("alg".into(), json!("ES256")), ("typ".into(), json!("JWT")), ("kid".into(), json!(KID))])
        .collect();
    for d in dups {
        let members = match d.part {
            Part::Header => &mut *header,
            Part::Payload => &mut *claims,
        };
        if members.is_empty() {
            continue;
        }
        let i = d.member.index(members.len());
        let name = members[i].0.clone();
        let value = d.value.clone().or_else(|| good.get(&name).cloned()).unwrap_or_else(|| members[i].1.clone());
        members.insert(if d.after { i + 1 } else { i }, (name, value));
    }
}

fn first_wins(members: &[(String, Value)]) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in members {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
    m
}

fn last_wins(members: &[(String, Value)]) -> Map<String, Value> {
    members.iter().cloned().collect()
}

/// How a header or payload is written, around the valid members.
#[derive(Debug, Clone)]
enum RawJson {
    AsIs,
    /// Whitespace before and after the object (RFC 8259 allows it).
    Padded(&'static str, &'static str),
    /// A byte-order mark first (RFC 8259 §8.1: a parser may ignore one, need not).
    Bom,
    /// Every member name written as `\uXXXX` escapes: the same names.
    EscapedNames,
    /// One more member whose value nests arrays this deep.
    Nested(usize),
    /// One more member with this raw value text.
    Extra(&'static [u8]),
    /// A member repeated under an escaped spelling of its name, with its own value.
    EscapedDuplicate(Index),
    /// One more member whose object value repeats a name.
    NestedDuplicate,
    /// Not one JSON object at all.
    Replaced(&'static [u8]),
    /// Text after the object.
    Trailing(&'static str),
}

fn raw_json() -> impl Strategy<Value = RawJson> {
    prop_oneof![
        12 => Just(RawJson::AsIs),
        1 => (prop::sample::select(vec!["", " ", "\n\t", "\r\n "]), prop::sample::select(vec!["", " ", "\n", "\t\r\n"]))
            .prop_map(|(a, b)| RawJson::Padded(a, b)),
        1 => Just(RawJson::Bom),
        1 => Just(RawJson::EscapedNames),
        2 => prop_oneof![1usize..20, Just(100), Just(126), Just(127), Just(128), Just(129), Just(500), Just(2000)]
            .prop_map(RawJson::Nested),
        2 => prop::sample::select(vec![
            &b"1e400"[..], b"-1e400", b"18446744073709551616", b"-0", b"1E3", b"0.0000001", b"123456789012345678901234567890.5",
            b"\"\\ud800\"", b"\"\\udc00\\ud800\"", b"\"\\u0000\"", b"\"\xff\"", b"\"a\x01b\"", b"\"\xc3\x28\"", b"tru", b"[1,]",
            b"01", b"+1", b".5", b"NaN", b"Infinity", b"\"\\x41\"", b"{}", b"[]",
        ])
        .prop_map(RawJson::Extra),
        1 => any::<Index>().prop_map(RawJson::EscapedDuplicate),
        1 => Just(RawJson::NestedDuplicate),
        1 => prop::sample::select(vec![&b"[]"[..], b"null", b"\"x\"", b"1", b"", b"{", b"{}", b"{\"a\":1}}", b"[{}]"])
            .prop_map(RawJson::Replaced),
        1 => prop::sample::select(vec!["x", "{}", "\n", " \t", "\0", ",", "//"]).prop_map(RawJson::Trailing),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawClass {
    /// Well-formed or not, by RFC 8259: a reference parser decides.
    Strict,
    /// The documents allow a refusal here even when a reference parser reads it: a BOM, a nesting or number
    /// beyond what a parser must support, a lone surrogate, a repeated member.
    MayRefuse,
}

fn escape_name(name: &str) -> String {
    name.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
}

/// The bytes `v` describes around `members`, and whether a refusal is documented for them in any case.
fn raw_text(members: &[(String, Value)], v: &RawJson) -> (Vec<u8>, RawClass) {
    let text = render(members);
    let with = |member: &[u8]| {
        let mut t = text.clone().into_bytes();
        t.pop();
        t.extend_from_slice(b",");
        t.extend_from_slice(member);
        t.push(b'}');
        t
    };
    match v {
        RawJson::AsIs => (text.into_bytes(), RawClass::Strict),
        RawJson::Padded(a, b) => (format!("{a}{text}{b}").into_bytes(), RawClass::Strict),
        RawJson::Bom => (format!("\u{feff}{text}").into_bytes(), RawClass::MayRefuse),
        RawJson::EscapedNames => {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{}\":{v}", escape_name(k))).collect();
            (format!("{{{}}}", body.join(",")).into_bytes(), RawClass::Strict)
        }
        RawJson::Nested(d) => {
            let class = if *d <= 100 { RawClass::Strict } else { RawClass::MayRefuse };
            (with(format!("\"x-deep\":{}1{}", "[".repeat(*d), "]".repeat(*d)).as_bytes()), class)
        }
        RawJson::Extra(value) => {
            // RFC 8259 §6 and §8.2: numbers beyond a parser's range and unpaired surrogates may be refused.
            let lenient = [&b"1e400"[..], b"-1e400", b"\"\\ud800\"", b"\"\\udc00\\ud800\""].contains(value);
            let class = if lenient { RawClass::MayRefuse } else { RawClass::Strict };
            (with(&[&b"\"x-extra\":"[..], value].concat()), class)
        }
        RawJson::EscapedDuplicate(i) => {
            let (k, v) = &members[i.index(members.len())];
            (with(format!("\"{}\":{v}", escape_name(k)).as_bytes()), RawClass::MayRefuse)
        }
        RawJson::NestedDuplicate => (with(br#""x-dup":{"y":1,"y":2}"#), RawClass::MayRefuse),
        RawJson::Replaced(t) => (t.to_vec(), RawClass::Strict),
        RawJson::Trailing(t) => (format!("{text}{t}").into_bytes(), RawClass::Strict),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The targets.

proptest! {
    #![proptest_config(config())]

    /// Events of any shape: Authorization under any spelling, repeated, in `headers` and `multiValueHeaders` or
    /// one of them, any scheme and token; the client certificate field present, null, empty or missing at every
    /// level; any request id and methodArn. The answer is the model's.
    #[test]
    fn events_of_any_shape_get_a_documented_answer(plan in event_plan()) {
        let w = world();
        let json = event_json(w, &plan);
        let event: RequestEvent = serde_json::from_value(json.clone())
            .map_err(|e| TestCaseError::fail(format!("the runtime could not read the event: {e}: {json}")))?;
        check_event(w, &event)?;
    }

    /// The client certificate field: registered, unowned, revoked, expired, foreign and CA certificates, as they
    /// are or re-wrapped, truncated, with a character or a DER bit changed, with bytes appended, random DER,
    /// other labels, several certificates in one field, oversized; sometimes next to a partner token.
    #[test]
    fn client_certificate_fields_get_a_documented_answer(plan in pem_plan()) {
        let w = world();
        let pem = pem_text(w, &plan);
        let mut event = tb_devkit::events::authorizer_mtls_event("placeholder");
        let field = event.request_context.identity.as_mut().and_then(|i| i.client_cert.as_mut()).unwrap();
        field.client_cert_pem = Some(pem.clone());
        if let Some(i) = plan.bearer {
            let jwt = jwt_event_for(&w.tokens[i.index(w.tokens.len())].token);
            event.headers = jwt.headers;
            event.multi_value_headers = jwt.multi_value_headers;
        }
        let got = check_event(w, &event)?;
        // Text that decodes to no registered certificate's DER never proves a caller.
        let base = &w.certs[plan.cert.index(w.certs.len())];
        if let Outcome::Allow { method: "mtls", .. } = got {
            let fp = pem_fingerprint(&pem);
            prop_assert!(fp.is_some_and(|fp| w.certs.iter().any(|c| <[u8; 32]>::from(Sha256::digest(&c.der)) == fp)),
                "allowed a certificate text that is no pool certificate (base {})", base.name);
        }
    }

    /// Partner tokens signed with the registered key, with any `alg`, `kid`, `typ`, `crit` and extra header
    /// members, and `iss`, `aud`, `exp`, `nbf`, `iat`, `sub` of any type and value: Allow exactly when the
    /// documented claim checks pass for a registered, enabled subject.
    #[test]
    fn signed_tokens_with_any_header_and_claims_get_a_documented_answer(
        header in header_members(),
        claims in claim_members(world().now_secs),
    ) {
        let w = world();
        let (header, claims) = (present(&header), present(&claims));
        let token = w.signer.sign(&render(&header), &render(&claims));
        let want = token_model(w, &last_wins(&header), &last_wins(&claims), &token);
        let event = jwt_event_for(&token);
        let got = observe(w, event.method_arn.as_deref(), &w.run(&event)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(got, want, "header {} claims {}", render(&header), render(&claims));
    }

    /// Header and payload members repeated (before or after the original, with a valid or any other value):
    /// the answer is a refusal, or the one the token gets when the last of each member counts; never the answer
    /// of the first member.
    #[test]
    fn duplicate_json_members_are_refused_or_the_last_one_counts(
        claims in claim_members(world().now_secs),
        keep_claims in prop::bool::weighted(0.3),
        dups in prop::collection::vec(duplicate(), 1..3),
    ) {
        let w = world();
        let mut header: Vec<(String, Value)> = serde_json::from_str::<Map<String, Value>>(&good_header())
            .unwrap()
            .into_iter()
            .collect();
        let mut claims = if keep_claims { present(&claims) } else { good_claims("acme-billing-sync", w.now_secs) };
        with_duplicates(w, &mut header, &mut claims, &dups);
        let token = w.signer.sign(&render(&header), &render(&claims));
        let last = token_model(w, &last_wins(&header), &last_wins(&claims), &token);
        let first = token_model(w, &first_wins(&header), &first_wins(&claims), &token);
        let event = jwt_event_for(&token);
        let got = observe(w, event.method_arn.as_deref(), &w.run(&event)).map_err(TestCaseError::fail)?;
        prop_assert!(
            got == Outcome::Unauthorized || got == last,
            "got {:?}; last member counts: {:?}; first member counts: {:?}; header {} claims {}",
            got, last, first, render(&header), render(&claims)
        );
    }

    /// Header and payload texts around valid members: whitespace, a BOM, escaped names, deep nesting, number
    /// literals out of any range, lone surrogates, invalid UTF-8, control characters, escaped and nested repeated
    /// names, no object at all, text after the object. A text RFC 8259 calls well-formed gets the answer of the
    /// members it holds (a refusal where the RFC lets a parser refuse), anything else is `Unauthorized`.
    #[test]
    fn signed_json_texts_of_any_form_get_a_documented_answer(
        header in raw_json(),
        payload in raw_json(),
        sub in prop::sample::select(vec!["acme-billing-sync", "hybrid-svc", "acme-retired", "someone-else"]),
    ) {
        let w = world();
        let base_header: Vec<(String, Value)> =
            vec![("alg".into(), json!("ES256")), ("typ".into(), json!("JWT")), ("kid".into(), json!(KID))];
        let (h, h_class) = raw_text(&base_header, &header);
        let (p, p_class) = raw_text(&good_claims(sub, w.now_secs), &payload);
        let token = w.signer.sign_bytes(&h, &p);
        let object = |b: &[u8]| match serde_json::from_slice::<Value>(b) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        };
        let allowed = match (object(&h), object(&p)) {
            (Some(hm), Some(pm)) => {
                let read = token_model(w, &hm, &pm, &token);
                if h_class == RawClass::Strict && p_class == RawClass::Strict {
                    vec![read]
                } else {
                    vec![read, Outcome::Unauthorized]
                }
            }
            _ => vec![Outcome::Unauthorized],
        };
        let event = jwt_event_for(&token);
        let got = observe(w, event.method_arn.as_deref(), &w.run(&event)).map_err(TestCaseError::fail)?;
        prop_assert!(
            allowed.contains(&got),
            "got {:?}, documented {:?}; header {:?} payload {:?}",
            got, allowed, String::from_utf8_lossy(&h), String::from_utf8_lossy(&p)
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Pinned behaviour found by the targets.

/// A member repeated in a token that is valid with either copy: the answer with the same valid value twice, with
/// an invalid copy before the valid one, and with the invalid copy last. Each member is refused or read last-wins;
/// a valid first copy never rescues an invalid last one. Prints which of the two the code does, per member.
#[test]
fn duplicate_members_are_refused_or_the_last_one_counts_per_member() {
    let w = world();
    let now = w.now_secs;
    let with = |base: Vec<(String, Value)>, extra: Option<&(&str, Value, Value)>| {
        let mut m = base;
        if let Some((k, a, b)) = extra {
            m.retain(|(n, _)| n != k);
            m.push(((*k).into(), a.clone()));
            m.push(((*k).into(), b.clone()));
        }
        render(&m)
    };
    let header = || vec![("alg".to_owned(), json!("ES256")), ("typ".into(), json!("JWT")), ("kid".into(), json!(KID))];
    let claims = || {
        let mut m = good_claims("acme-billing-sync", now);
        m.push(("nbf".into(), json!(now - 10)));
        m
    };
    let outcome = |header: String, claims: String| {
        let token = w.signer.sign(&header, &claims);
        match w.run(&jwt_event_for(&token)) {
            Err(Unauthorized) => "refused",
            Ok(r) if r.policy_document.statement[0].effect == "Allow" => "allowed",
            Ok(_) => "denied",
        }
    };
    // (in the header?, member, a valid value, an invalid value)
    let cases = [
        (true, "alg", json!("ES256"), json!("none")),
        (true, "typ", json!("JWT"), json!(7)),
        (true, "kid", json!(KID), json!("other")),
        (false, "iss", json!(ISSUER), json!("https://other.example")),
        (false, "aud", json!(AUDIENCE), json!("elsewhere")),
        (false, "exp", json!(now + 600), json!(now - 600)),
        (false, "nbf", json!(now - 10), json!(now + 600)),
        (false, "iat", json!(now - 10), json!(now - 3600)),
        (false, "sub", json!("acme-billing-sync"), json!("")),
        (false, "jti", json!("a"), json!("b")),
    ];
    let mut report = Vec::new();
    for (in_header, k, good, bad) in cases {
        let run = |a: &Value, b: &Value| {
            let dup = (k, a.clone(), b.clone());
            if in_header {
                outcome(with(header(), Some(&dup)), with(claims(), None))
            } else {
                outcome(with(header(), None), with(claims(), Some(&dup)))
            }
        };
        let (same, bad_then_good, good_then_bad) = (run(&good, &good), run(&bad, &good), run(&good, &bad));
        assert_eq!(good_then_bad, "refused", "{k}: an invalid last copy must not be rescued by a valid first one");
        let behaviour = match (same, bad_then_good) {
            ("refused", "refused") => "refused",
            ("allowed", "allowed") => "last one counts",
            other => panic!("{k}: neither refused nor last-wins: {other:?}"),
        };
        report.push(format!("{k}: {behaviour}"));
    }
    eprintln!("duplicate members: {}", report.join(", "));
}

/// Every credential of the pools gets the answer its kind documents, alone: the pools themselves are right.
#[test]
fn pool_credentials_alone_get_their_documented_answers() {
    let w = world();
    let resource = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/*/POST/oauth2/token";
    // The events' own methodArn.
    let arn = Some("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/POST/oauth2/token");
    for c in &w.certs {
        let got = observe(w, arn, &w.run(&tb_devkit::events::authorizer_mtls_event(&c.pem))).unwrap();
        let want = model(Some(Presented { cred: c.cred.clone(), fingerprint: x5t(&c.der) }), Ok(None), Some(resource));
        assert_eq!(Expect::Exactly(got), want, "certificate {}", c.name);
    }
    for t in &w.tokens {
        let got = observe(w, arn, &w.run(&jwt_event_for(&t.token))).unwrap();
        let want = model(
            None,
            Ok(Some(Presented { cred: t.cred.clone(), fingerprint: sha16(t.token.as_bytes()) })),
            Some(resource),
        );
        assert_eq!(Expect::Exactly(got), want, "token {}", t.name);
    }
    assert_eq!(w.cert_by_name("hybrid").cred, Cred::Owner("hybrid"));
}
