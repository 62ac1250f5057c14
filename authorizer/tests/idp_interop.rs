//! Interoperability with the identity providers partners actually run. Each fixture in `tests/fixtures/idp/` holds a
//! client-credentials access token shaped the way its IdP's documentation describes it (header members, claims,
//! lifetime), the members its JWKS publishes next to the key, and how an operator registers that IdP in the policy.
//! The tokens are signed here with keys made at run time and the keys served from a JWKS server on loopback, fetched
//! over HTTP by the production fetcher.
//!
//! For every IdP: the token as issued is allowed through the handler; a token that differs from the registration in
//! any one property (issuer, audience, subject, algorithm, key, expiry, age, a required claim) is refused with its
//! exact reason, and with the answer class the handler gives (401, or 403 for a subject no caller owns).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tb_authorizer::{build, handle_request, App, Config, Deps, Trust};
use tb_authorizer::{HttpJwksFetcher, JwksFetcherConfig, JwtConfig, JwtError, JwtVerifier};
use tb_devkit::jwt::{jwks, JwksServer, PartnerKey};
use tb_shared::clock::Clock;
use tb_shared::env::Env;
use tb_shared::policy::Policy;
use tb_shared::telemetry::{CaptureWriter, MetricsSink};

/// The fixtures, by short name.
const FIXTURES: &[(&str, &str)] = &[
    ("cognito", include_str!("fixtures/idp/cognito.json")),
    ("okta", include_str!("fixtures/idp/okta.json")),
    ("auth0", include_str!("fixtures/idp/auth0.json")),
    ("entra", include_str!("fixtures/idp/entra.json")),
    ("keycloak", include_str!("fixtures/idp/keycloak.json")),
];

/// One IdP's token shape and registration. In `header` and `claims`, the strings `$iat`, `$exp` and `$kid` stand for
/// the issue time, the expiry (issue time + `lifetime_seconds`) and the key id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// Which IdP and token this is.
    idp: String,
    /// The IdP documentation the shape follows.
    #[allow(dead_code)]
    documented_in: String,
    kid: String,
    /// Members set on the generated JWK (a null removes one), as the IdP's JWKS publishes them.
    jwk: Map<String, Value>,
    header: Value,
    claims: Value,
    lifetime_seconds: u64,
    registration: Registration,
}

/// The policy's issuer entry for this IdP, and the subject its caller is registered with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    audience_claim: Option<String>,
    #[serde(default)]
    subject_claim: Option<String>,
    subject: String,
    algorithms: Vec<String>,
    max_token_age_seconds: u64,
    #[serde(default)]
    required_claims: Vec<String>,
}

impl Registration {
    fn audience_claim(&self) -> &str {
        self.audience_claim.as_deref().unwrap_or("aud")
    }
    fn subject_claim(&self) -> &str {
        self.subject_claim.as_deref().unwrap_or("sub")
    }
}

fn fixture(name: &str) -> Fixture {
    let (_, text) = FIXTURES.iter().find(|(n, _)| *n == name).expect("a fixture of that name");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn caller_id(name: &str) -> String {
    format!("partner-{name}")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Replaces the `$iat`, `$exp` and `$kid` placeholders.
fn materialize(v: &Value, iat: u64, exp: u64, kid: &str) -> Value {
    match v {
        Value::String(s) if s == "$iat" => json!(iat),
        Value::String(s) if s == "$exp" => json!(exp),
        Value::String(s) if s == "$kid" => json!(kid),
        Value::Array(a) => Value::Array(a.iter().map(|x| materialize(x, iat, exp, kid)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), materialize(x, iat, exp, kid))).collect()),
        other => other.clone(),
    }
}

/// One IdP as a partner runs it: its signing key and the JWKS server that publishes it.
struct Idp {
    name: &'static str,
    fx: Fixture,
    key: PartnerKey,
    server: JwksServer,
    task: tokio::task::JoinHandle<()>,
}

impl Idp {
    async fn start(name: &'static str) -> Idp {
        let fx = fixture(name);
        let key = PartnerKey::rsa(&fx.kid).unwrap();
        let mut jwk = key.jwk();
        let obj = jwk.as_object_mut().unwrap();
        for (k, v) in &fx.jwk {
            match v {
                Value::Null => drop(obj.remove(k)),
                v => drop(obj.insert(k.clone(), v.clone())),
            }
        }
        let (server, task) = JwksServer::start(jwks([jwk])).await.unwrap();
        Idp { name, fx, key, server, task }
    }

    /// The claims as the IdP issues them at `iat`, with its usual lifetime.
    fn claims(&self, iat: u64) -> Value {
        self.claims_with(iat, iat + self.fx.lifetime_seconds)
    }

    fn claims_with(&self, iat: u64, exp: u64) -> Value {
        materialize(&self.fx.claims, iat, exp, &self.fx.kid)
    }

    fn header(&self) -> Value {
        materialize(&self.fx.header, 0, 0, &self.fx.kid)
    }

    /// Signs `claims` under the IdP's own header, edited by `tweak`, with `alg`.
    fn sign(&self, alg: Algorithm, claims: &Value, tweak: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut header = self.header();
        tweak(header.as_object_mut().unwrap());
        self.key.sign_with(alg, &header, claims.to_string().as_bytes()).unwrap()
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(Algorithm::RS256, claims, |_| {})
    }

    fn issuer_entry(&self) -> Value {
        let r = &self.fx.registration;
        let mut e = json!({
            "issuer": r.issuer,
            "jwks_url": self.server.url,
            "audiences": r.audiences,
            "algorithms": r.algorithms,
            "max_token_age_seconds": r.max_token_age_seconds,
            "required_claims": r.required_claims,
        });
        if let Some(c) = &r.audience_claim {
            e["audience_claim"] = json!(c);
        }
        if let Some(c) = &r.subject_claim {
            e["subject_claim"] = json!(c);
        }
        e
    }

    fn caller_entry(&self) -> Value {
        json!({
            "id": caller_id(self.name),
            "identities": [{"type": "jwt", "issuer": self.fx.registration.issuer, "subject": self.fx.registration.subject}],
            "cognito_client": caller_id(self.name),
            "allowed_scopes": ["api/read"],
            "max_token_lifetime_seconds": 3600,
            "quotas": "unlimited",
        })
    }
}

/// The authorizer with the given IdPs registered, built the way the Lambda builds it, with the production JWKS
/// fetcher; and a verifier over the same policy for the exact refusal reasons.
struct World {
    idps: Vec<Idp>,
    app: App,
    verifier: JwtVerifier,
    _policy: tempfile::NamedTempFile,
}

impl World {
    async fn new(names: &[&'static str]) -> World {
        let mut idps = Vec::new();
        for n in names {
            idps.push(Idp::start(n).await);
        }
        // JSON is YAML: the policy document is written as JSON.
        let doc = json!({
            "version": 1,
            "callers": idps.iter().map(Idp::caller_entry).collect::<Vec<_>>(),
            "issuers": idps.iter().map(Idp::issuer_entry).collect::<Vec<_>>(),
        });
        let file = tb_devkit::fixtures::write_policy(&serde_json::to_string_pretty(&doc).unwrap());
        let cfg = Config::read(&Env::from_pairs([("POLICY_FILE", file.path().to_str().unwrap())])).unwrap();
        let fetcher = || Arc::new(HttpJwksFetcher::new(&JwksFetcherConfig::default()).unwrap());
        let deps = Deps {
            trust: Trust::None,
            jwks: fetcher(),
            metrics: MetricsSink::to_writer("TokenBroker", CaptureWriter::default()),
            clock: Clock::system(),
            context_keys: tb_devkit::fixtures::context_keys(),
        };
        let app = build(&cfg, deps).await.unwrap();
        let policy = Arc::new(Policy::load(file.path()).unwrap());
        let verifier = JwtVerifier::new(policy, fetcher(), JwtConfig::default());
        World { idps, app, verifier, _policy: file }
    }

    fn idp(&self, name: &str) -> &Idp {
        self.idps.iter().find(|i| i.name == name).unwrap()
    }

    /// The handler's answer: `Allow <caller>`, `Deny`, or `Unauthorized`.
    async fn answer(&self, token: &str) -> String {
        let event = tb_devkit::events::authorizer_jwt_event(token);
        match handle_request(&self.app, &event, SystemTime::now()).await {
            Ok(r) => {
                let v = serde_json::to_value(r).unwrap();
                match v["policyDocument"]["Statement"][0]["Effect"].as_str() {
                    Some("Allow") => format!("Allow {}", v["principalId"].as_str().unwrap()),
                    other => other.unwrap().to_owned(),
                }
            }
            Err(_) => "Unauthorized".into(),
        }
    }

    fn stop(self) {
        for i in &self.idps {
            i.task.abort();
        }
    }
}

/// What a case must come to: refused by the verifier with this reason (401), or verified but owned by no caller
/// (403).
enum Want {
    Refused(JwtError),
    UnknownCaller,
}

fn set(claims: &Value, name: &str, v: Value) -> Value {
    let mut c = claims.clone();
    c[name] = v;
    c
}

fn without(claims: &Value, name: &str) -> Value {
    let mut c = claims.clone();
    c.as_object_mut().unwrap().remove(name);
    c
}

/// The whole check for one IdP.
async fn interoperates(name: &'static str) {
    let w = World::new(&[name]).await;
    let idp = w.idp(name);
    let r = &idp.fx.registration;
    let n = unix_now();
    let issued = idp.claims(n);

    // As issued: allowed, for the registered caller.
    let token = idp.token(&issued);
    let v = w.verifier.verify(&token, SystemTime::now()).await.unwrap_or_else(|e| panic!("{}: {e}", idp.fx.idp));
    assert_eq!((v.issuer.as_str(), v.subject.as_str()), (r.issuer.as_str(), r.subject.as_str()));
    assert_eq!(w.answer(&token).await, format!("Allow {}", caller_id(name)), "{}", idp.fx.idp);

    // The issuer with its trailing slash toggled: the near miss an operator makes.
    let near_iss = r.issuer.strip_suffix('/').map_or_else(|| format!("{}/", r.issuer), str::to_owned);
    let aud_claim = r.audience_claim();
    let other_aud = match &issued[aud_claim] {
        Value::Array(_) => json!(["https://another-api.example"]),
        _ => json!("https://another-api.example"),
    };
    let missing_aud = if aud_claim == "aud" { "aud" } else { "audience" };
    let max_age = r.max_token_age_seconds;
    let lifetime = idp.fx.lifetime_seconds;
    let stranger = PartnerKey::rsa(&idp.fx.kid).unwrap();

    let mut cases: Vec<(String, String, Want)> = vec![
        ("wrong iss".into(), idp.token(&set(&issued, "iss", json!(near_iss))), Want::Refused(JwtError::UnknownIssuer)),
        (
            "wrong audience".into(),
            idp.token(&set(&issued, aud_claim, other_aud)),
            Want::Refused(JwtError::WrongAudience),
        ),
        (
            "no audience".into(),
            idp.token(&without(&issued, aud_claim)),
            Want::Refused(JwtError::MissingClaim(missing_aud)),
        ),
        (
            "wrong subject".into(),
            idp.token(&set(&issued, r.subject_claim(), json!("another-client"))),
            Want::UnknownCaller,
        ),
        (
            "no subject".into(),
            idp.token(&without(&issued, r.subject_claim())),
            Want::Refused(JwtError::MissingClaim("subject")),
        ),
        (
            "alg not allowed (PS256 by the same key)".into(),
            idp.sign(Algorithm::PS256, &issued, |h| drop(h.insert("alg".into(), json!("PS256")))),
            Want::Refused(JwtError::AlgNotAllowed),
        ),
        (
            "unknown kid".into(),
            idp.sign(Algorithm::RS256, &issued, |h| drop(h.insert("kid".into(), json!("retired-key-1")))),
            Want::Refused(JwtError::UnknownKid),
        ),
        (
            "another key under the IdP's kid".into(),
            stranger.sign_with(Algorithm::RS256, &idp.header(), issued.to_string().as_bytes()).unwrap(),
            Want::Refused(JwtError::BadSignature),
        ),
        ("expired".into(), idp.token(&idp.claims_with(n - lifetime - 120, n - 120)), Want::Refused(JwtError::Expired)),
        (
            "older than the registered maximum age".into(),
            idp.token(&idp.claims_with(n - max_age - 60, n + 600)),
            Want::Refused(JwtError::TooOld),
        ),
    ];
    for c in &r.required_claims {
        cases.push((
            format!("without required claim {c}"),
            idp.token(&without(&issued, c)),
            Want::Refused(JwtError::MissingRequiredClaim(c.clone())),
        ));
    }

    for (label, token, want) in cases {
        let got = w.verifier.verify(&token, SystemTime::now()).await;
        let answer = w.answer(&token).await;
        match want {
            Want::Refused(e) => {
                assert_eq!(got.err(), Some(e.clone()), "{}: {label}", idp.fx.idp);
                assert_eq!(answer, "Unauthorized", "{}: {label}", idp.fx.idp);
            }
            Want::UnknownCaller => {
                assert!(got.is_ok(), "{}: {label}: {got:?}", idp.fx.idp);
                assert_eq!(answer, "Deny", "{}: {label}", idp.fx.idp);
            }
        }
    }
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amazon_cognito_access_token() {
    interoperates("cognito").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_access_token() {
    interoperates("okta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_access_token() {
    interoperates("auth0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_entra_id_v2_access_token() {
    interoperates("entra").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_access_token() {
    interoperates("keycloak").await;
}

/// All five registered side by side: each token goes to its own caller, and no IdP's key verifies a token that
/// names another IdP as issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_idps_side_by_side_never_cross() {
    let names: Vec<&'static str> = FIXTURES.iter().map(|(n, _)| *n).collect();
    let w = World::new(&names).await;
    let n = unix_now();
    for idp in &w.idps {
        assert_eq!(w.answer(&idp.token(&idp.claims(n))).await, format!("Allow {}", caller_id(idp.name)));
    }
    for signer in &w.idps {
        for claimed in w.idps.iter().filter(|i| i.name != signer.name) {
            // The claimed IdP's own claims and header, signed by another IdP's key.
            let claims = claimed.claims(n);
            let forged = signer.key.sign_with(Algorithm::RS256, &claimed.header(), claims.to_string().as_bytes());
            let forged = forged.unwrap();
            let got = w.verifier.verify(&forged, SystemTime::now()).await;
            assert_eq!(got.err(), Some(JwtError::BadSignature), "{} signing as {}", signer.name, claimed.name);
            // Under the signer's own kid, which the claimed IdP's JWKS does not list.
            let own_kid = signer.sign(Algorithm::RS256, &claims, |_| {});
            let got = w.verifier.verify(&own_kid, SystemTime::now()).await;
            assert_eq!(got.err(), Some(JwtError::UnknownKid), "{} as {} under its own kid", signer.name, claimed.name);
            assert_eq!(w.answer(&own_kid).await, "Unauthorized");
        }
    }
    // One fetch per IdP by the app and one by the verifier: the unknown kids above fell inside the refetch cooldown.
    for idp in &w.idps {
        assert_eq!(idp.server.requests(), 2, "{}", idp.name);
    }
    w.stop();
}
