//! What an on-call engineer's alarms read, from the real `authorizer` binary under the Runtime API emulator of
//! `tb_devkit::runtime_api`: a burst of requests with missing or bad credentials is `Unauthorized`, counted once per
//! request and once more by reason, and never `AuthorizerErrors`; a function whose truststore cannot be read raises
//! `AuthorizerErrors` (`no_trust_material`) for every certificate and `TrustRefreshFailures` (`truststore`) for every
//! failed read. Every EMF line carries the `Stack` dimension with the `STACK_NAME` the function was given.
//!
//! The function reads its context key set from an SSM SecureString in moto, as in Lambda: run through
//! `scripts/with-moto.sh`.
//!
//! The binary is `$TB_LAMBDA_BIN_DIR/authorizer`, the release build, when `scripts/test.sh` runs the tests; else this
//! package's debug build (`tb_devkit::runtime_api::function_binary`).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tb_authorizer::{metric_names as names, OBJECT_DIMENSION, REASON_DIMENSION};
use tb_devkit::events::{authorizer_jwt, authorizer_mtls, authorizer_no_credentials};
use tb_devkit::fixtures::{temp_dir, write_file};
use tb_devkit::jwt::{standard_claims, PartnerKey};
use tb_devkit::pki::{IssuedCert, TestCa};
use tb_devkit::runtime_api::{function_binary, lambda_env, FunctionProcess, Outcome, RuntimeApi};

/// The stack name the function is started with; every metric line must carry it.
const STACK: &str = "tb-outage-test";

/// Cold start and one invocation, even of a debug build on a busy 2-core machine, take well under this.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

const ORDERS_URI: &str = "spiffe://example.internal/ns/orders/sa/order-processing";
const PARTNER_ISSUER: &str = "https://idp.partner.example";

fn function_bin() -> PathBuf {
    function_binary("authorizer", env!("CARGO_BIN_EXE_authorizer"))
}

/// One certificate caller and one partner issuer. The partner's JWKS URL is never fetched by the bad tokens sent
/// here: each is refused before a key is looked up (so a JWKS outage cannot blur the count).
const POLICY: &str = r#"version: 1
callers:
  - id: order-processing
    identities: [{ type: san_uri, value: "spiffe://example.internal/ns/orders/sa/order-processing" }]
    cognito_client: order-processing
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
  - id: partner
    identities: [{ type: jwt, issuer: "https://idp.partner.example", subject: partner-sync }]
    cognito_client: partner
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 900
    quotas: unlimited
issuers:
  - issuer: https://idp.partner.example
    jwks_url: http://127.0.0.1:9/jwks.json
    audiences: [token-broker]
    algorithms: [RS256]
    max_token_age_seconds: 300
"#;

struct World {
    _dir: tempfile::TempDir,
    api: RuntimeApi,
    function: FunctionProcess,
    ca: TestCa,
    orders: IssuedCert,
}

/// The function started with the policy, the CA's truststore (or, with `truststore_missing`, a truststore path
/// where no file is) and a fresh CRL, trust material re-read on every request.
async fn world(truststore_missing: bool) -> World {
    let dir = temp_dir("outage-metrics");
    let ca = TestCa::root("Dev Root CA").unwrap();
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let orders = ca.issue_client().cn("order-processing").san_uri(ORDERS_URI).build().unwrap();
    let crl = ca.crl(&[], now - hour, now + hour).unwrap();
    let truststore = if truststore_missing {
        dir.path().join("truststore-not-uploaded.pem").to_string_lossy().into_owned()
    } else {
        write_file(&dir, "truststore.pem", ca.cert_pem())
    };

    let api = RuntimeApi::start().await.unwrap();
    let mut env = lambda_env(&api, "token-broker-authorizer");
    env.extend(
        [
            ("POLICY_FILE", write_file(&dir, "policy.yaml", POLICY)),
            ("TRUSTSTORE_URI", truststore),
            ("CRL_URI", write_file(&dir, "crls.pem", &crl.pem)),
            ("TRUST_REFRESH_SECONDS", "0".to_owned()),
            ("STACK_NAME", STACK.to_owned()),
            ("LOG_LEVEL", "info".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env.extend(common::test_keys_env().await);
    let function = FunctionProcess::spawn(&function_bin(), &env).unwrap();
    World { _dir: dir, api, function, ca, orders }
}

/// A JWT-shaped string with the given header and payload and a junk signature.
fn crafted_token(header: &Value, payload: &Value) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{}", enc(header), enc(payload), URL_SAFE_NO_PAD.encode(b"not a signature"))
}

/// A burst of at least 50 requests with missing, malformed or bad credentials, each with the reason its
/// `Unauthorized` must be counted under.
fn bad_credentials_burst(w: &World) -> Vec<(&'static str, Value)> {
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let foreign = TestCa::root("Dev Root CA").unwrap().issue_client().san_uri(ORDERS_URI).build().unwrap();
    let expired = w.ca.issue_client().san_uri(ORDERS_URI).validity(now - 2 * day, now - day).build().unwrap();
    let not_a_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let stranger_key = PartnerKey::rsa("k1").unwrap();
    let unknown_issuer = stranger_key.token(&standard_claims("https://idp.evil.example", "x", "token-broker")).unwrap();
    let claims = json!({"iss": PARTNER_ISSUER, "sub": "partner-sync", "aud": "token-broker"});
    let alg_none = crafted_token(&json!({"alg": "none", "typ": "JWT"}), &claims);
    let hs256 = crafted_token(&json!({"alg": "HS256", "typ": "JWT"}), &claims);
    let with_header = |value: &str| {
        let mut e = authorizer_jwt("x");
        e["headers"]["Authorization"] = json!(value);
        e["multiValueHeaders"]["Authorization"] = json!([value]);
        e
    };

    let mut burst = Vec::new();
    for _ in 0..4 {
        burst.push(("no_credential", authorizer_no_credentials()));
        burst.push(("no_credential", authorizer_no_credentials()));
        burst.push(("no_credential", authorizer_no_credentials()));
        burst.push(("malformed_authorization", with_header("Basic eDp5")));
        burst.push(("malformed_authorization", with_header("Bearer  two spaces")));
        burst.push(("invalid_certificate", authorizer_mtls(&foreign.pem)));
        burst.push(("invalid_certificate", authorizer_mtls(&expired.pem)));
        burst.push(("invalid_certificate", authorizer_mtls(not_a_pem)));
        burst.push(("invalid_jwt", authorizer_jwt("not.a.token")));
        burst.push(("invalid_jwt", authorizer_jwt(&unknown_issuer)));
        burst.push(("invalid_jwt", authorizer_jwt(&alg_none)));
        burst.push(("invalid_jwt", authorizer_jwt(&hs256)));
        burst.push(("invalid_jwt", authorizer_jwt("eyJhbGciOiJSUzI1NiJ9.e30")));
    }
    assert!(burst.len() >= 50, "a burst, not a handful: {}", burst.len());
    burst
}

async fn expect_unauthorized(w: &World, what: &str, event: &Value) {
    match w.api.invoke(event, INVOKE_TIMEOUT).await {
        Ok(Outcome::Error { error_message, .. }) => assert_eq!(error_message, "Unauthorized", "{what}"),
        other => panic!("{what}: expected the Unauthorized error, got {other:?}\n{}", w.function.output()),
    }
}

/// The EMF lines of the function's output (stdout also holds the JSON log lines, which are not EMF).
fn emf_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

/// The dimension names of an EMF line's one dimension set.
fn dimensions(line: &Value) -> Vec<String> {
    let sets = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "{line}");
    sets[0].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect()
}

/// What the alarms and dashboards would see of the function's metrics.
#[derive(Debug, Default)]
struct Seen {
    lines: usize,
    /// Sum of each metric on its `{Service, Stack}` series.
    totals: BTreeMap<String, f64>,
    /// Sum of each metric by the value of its one extra dimension: `(metric, dimension value)`.
    by_value: BTreeMap<(String, String), f64>,
}

impl Seen {
    fn total(&self, name: &str) -> f64 {
        self.totals.get(name).copied().unwrap_or(0.0)
    }
    fn by(&self, name: &str, value: &str) -> f64 {
        self.by_value.get(&(name.to_owned(), value.to_owned())).copied().unwrap_or(0.0)
    }
    /// The values `name` was broken down by, with their sums.
    fn breakdown(&self, name: &str) -> BTreeMap<String, f64> {
        self.by_value.iter().filter(|((n, _), _)| n == name).map(|((_, v), s)| (v.clone(), *s)).collect()
    }
}

/// Reads every EMF line, checking that each carries `Service` = `authorizer` and `Stack` = [`STACK`], and that a
/// line with one more dimension adds `Reason` or `Object` only.
fn seen(output: &str) -> Seen {
    let mut s = Seen::default();
    for line in emf_lines(output) {
        s.lines += 1;
        assert_eq!(line["Stack"], STACK, "every line carries the stack: {line}");
        assert_eq!(line["Service"], "authorizer", "{line}");
        let dims = dimensions(&line);
        let extra: Vec<&String> = dims.iter().filter(|d| *d != "Service" && *d != "Stack").collect();
        assert_eq!(dims.len(), 2 + extra.len(), "Service and Stack in every set: {line}");
        let defs = line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        for d in defs {
            let name = d["Name"].as_str().unwrap().to_owned();
            let value = line[&name].as_f64().unwrap();
            match extra.as_slice() {
                [] => *s.totals.entry(name).or_default() += value,
                [dim] if **dim == REASON_DIMENSION || **dim == OBJECT_DIMENSION => {
                    let v = line[dim.as_str()].as_str().unwrap().to_owned();
                    *s.by_value.entry((name, v)).or_default() += value;
                }
                other => panic!("unexpected dimensions {other:?}: {line}"),
            }
        }
    }
    s
}

/// The function's output once `Unauthorized` has been counted `n` times on its total series (stdout is read by
/// another thread, a moment behind the invocation's answer).
async fn output_after_unauthorized(w: &World, n: usize) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let out = w.function.output();
        let counted = seen(&out).total(names::UNAUTHORIZED) as usize;
        if counted >= n || Instant::now() >= until {
            assert_eq!(counted, n, "Unauthorized on its total series; output:\n{out}");
            return out;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bad credentials in bulk are answers to callers, not outages: the alarm's `AuthorizerErrors` stays at zero while
/// `Unauthorized` counts every request, once in total and once by the credential's reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_bad_credentials_is_unauthorized_and_never_an_authorizer_error() {
    let mut w = world(false).await;
    let burst = bad_credentials_burst(&w);
    for (reason, event) in &burst {
        expect_unauthorized(&w, reason, event).await;
    }
    let out = output_after_unauthorized(&w, burst.len()).await;
    let s = seen(&out);

    assert_eq!(s.total(names::AUTHORIZER_ERRORS), 0.0, "bad credentials raised AuthorizerErrors:\n{out}");
    assert!(s.breakdown(names::AUTHORIZER_ERRORS).is_empty(), "{s:?}");
    assert_eq!(s.total(names::UNAUTHORIZED), burst.len() as f64);
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for (reason, _) in &burst {
        *expected.entry((*reason).to_owned()).or_default() += 1.0;
    }
    assert_eq!(s.breakdown(names::UNAUTHORIZED), expected, "Unauthorized by reason");
    assert_eq!(s.total(names::TRUST_REFRESH_FAILURES), 0.0, "{s:?}");
    assert_eq!(s.total(names::JWKS_FETCH_FAILURES), 0.0, "no bad token made the function fetch keys: {s:?}");
    assert_eq!(s.total(names::ALLOWS), 0.0);
    // The trust gauges of the cold start and of every request's refresh: the CA lasts years, the CRL an hour.
    assert!(s.total(names::TRUSTSTORE_SECONDS_TO_EXPIRY) > 0.0, "{s:?}");
    assert!(s.total(names::CRL_SECONDS_TO_NEXT_UPDATE) > 0.0, "{s:?}");

    // A valid caller is still allowed, on the same stack's series.
    match w.api.invoke(&authorizer_mtls(&w.orders.pem), INVOKE_TIMEOUT).await {
        Ok(Outcome::Response(r)) => assert_eq!(r["principalId"], "order-processing", "{r}"),
        other => panic!("expected an Allow, got {other:?}\n{}", w.function.output()),
    }
    assert!(w.function.try_exit_status().is_none(), "a warm function keeps running:\n{}", w.function.output());
    w.function.kill();
}

/// A truststore that cannot be read (its object is missing) does not stop the cold start; each read that fails is
/// a `TrustRefreshFailures` of the `truststore` object (and an `AuthorizerErrors` `trust_refresh_failed`), and every
/// certificate the function cannot check is an `AuthorizerErrors` `no_trust_material`, while requests without
/// credentials are still only `Unauthorized`.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_truststore_raises_authorizer_errors_and_trust_refresh_failures() {
    let mut w = world(true).await;
    let certificates = 12;
    let without_credentials = 3;
    for _ in 0..certificates {
        expect_unauthorized(&w, "valid certificate, no trust material", &authorizer_mtls(&w.orders.pem)).await;
    }
    for _ in 0..without_credentials {
        expect_unauthorized(&w, "no credentials", &authorizer_no_credentials()).await;
    }
    let out = output_after_unauthorized(&w, certificates + without_credentials).await;
    assert_eq!(w.api.init_error(Duration::ZERO).await, None, "unreadable trust material must not fail the init");
    let s = seen(&out);

    // The cold start's read, then one per request (TRUST_REFRESH_SECONDS=0 re-reads on every request).
    let reads = (1 + certificates + without_credentials) as f64;
    assert_eq!(s.total(names::TRUST_REFRESH_FAILURES), reads, "{s:?}");
    assert_eq!(s.breakdown(names::TRUST_REFRESH_FAILURES), BTreeMap::from([("truststore".to_owned(), reads)]));
    assert_eq!(s.by(names::AUTHORIZER_ERRORS, "no_trust_material"), certificates as f64, "{s:?}");
    assert_eq!(s.by(names::AUTHORIZER_ERRORS, "trust_refresh_failed"), reads, "{s:?}");
    assert_eq!(s.total(names::AUTHORIZER_ERRORS), certificates as f64 + reads, "the alarm's series counts all");
    assert_eq!(s.by(names::UNAUTHORIZED, "invalid_certificate"), certificates as f64);
    assert_eq!(s.by(names::UNAUTHORIZED, "no_credential"), without_credentials as f64);
    assert_eq!(s.total(names::TRUSTSTORE_SECONDS_TO_EXPIRY), 0.0, "no truststore, no truststore gauge: {s:?}");
    assert!(s.lines > 0);
    w.function.kill();
}
