//! Lambda runtime test: the real `authorizer` binary runs under the Runtime API emulator of `tb_devkit::runtime_api`
//! with the environment Lambda gives it, and answers REQUEST events through `/invocation/{id}/response|error`.
//! A misconfigured environment is reported through `/runtime/init/error` and the process exits: never a hang.
//!
//! The context key set is an SSM SecureString in moto, as in Lambda, so these tests run through the emulator script
//! (never skipped: without moto they fail and say so): `scripts/with-moto.sh cargo test -p tb-authorizer --test
//! runtime_api`.
//!
//! The binary is `$TB_LAMBDA_BIN_DIR/authorizer`, the release build, when `scripts/test.sh` runs the tests; else this
//! package's debug build (`tb_devkit::runtime_api::function_binary`).

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tb_devkit::fixtures::{context_key_set, temp_dir, write_file, CONTEXT_KEY_BYTES};
use tb_devkit::pki::{IssuedCert, TestCa};
use tb_devkit::runtime_api::{assert_init_error, function_binary, lambda_env, FunctionProcess, Outcome, RuntimeApi};

const ORDERS_URI: &str = "spiffe://example.internal/ns/orders/sa/order-processing";
const REPORTING_DNS: &str = "reporting.svc.example.internal";
const API_ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5";

/// Cold start and one invocation, even of a debug build on a busy 2-core machine, take well under this.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

fn function_bin() -> PathBuf {
    function_binary("authorizer", env!("CARGO_BIN_EXE_authorizer"))
}

const POLICY: &str = r#"version: 1
callers:
  - id: order-processing
    identities: [{ type: san_uri, value: "spiffe://example.internal/ns/orders/sa/order-processing" }]
    cognito_client: order-processing
    allowed_scopes: [customer-api/read, customer-api/write]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
  - id: reporting
    identities: [{ type: san_dns, value: reporting.svc.example.internal }]
    cognito_client: reporting
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
    usage_plan_key: reporting-usage-plan-key-0001
"#;

struct World {
    _dir: tempfile::TempDir,
    api: RuntimeApi,
    function: FunctionProcess,
    orders: IssuedCert,
    reporting: IssuedCert,
    stranger: IssuedCert,
    revoked: IssuedCert,
}

/// A test PKI, the policy, truststore and CRL as files, and the function started against a fresh emulator.
async fn world() -> World {
    world_with_truststore(None).await
}

/// [`world`], with `truststore` as the truststore file's content instead of the CA's certificate.
async fn world_with_truststore(truststore: Option<&str>) -> World {
    let dir = temp_dir("authorizer");
    let ca = TestCa::root("Dev Root CA").unwrap();
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let issue = |b: tb_devkit::pki::ClientCertBuilder<'_>| b.validity(now - hour, now + 24 * hour).build().unwrap();
    let orders = issue(ca.issue_client().cn("order-processing").san_uri(ORDERS_URI));
    let reporting = issue(ca.issue_client().cn("reporting").san_dns(REPORTING_DNS));
    let stranger = issue(ca.issue_client().cn("nobody").san_uri("spiffe://example.internal/nobody"));
    let revoked = issue(ca.issue_client().cn("order-processing-old").san_uri(ORDERS_URI));
    let crl = ca.crl(&[revoked.serial.as_slice()], now - hour, now + hour).unwrap();

    let api = RuntimeApi::start().await.unwrap();
    let mut env = lambda_env(&api, "token-broker-authorizer");
    env.extend(
        [
            ("POLICY_FILE", write_file(&dir, "policy.yaml", POLICY)),
            ("TRUSTSTORE_URI", write_file(&dir, "truststore.pem", truststore.unwrap_or(ca.cert_pem()))),
            ("CRL_URI", write_file(&dir, "crls.pem", &crl.pem)),
            ("LOG_LEVEL", "info".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env.extend(common::test_keys_env().await);
    let function = FunctionProcess::spawn(&function_bin(), &env).unwrap();
    World { _dir: dir, api, function, orders, reporting, stranger, revoked }
}

use tb_devkit::events::{authorizer_mtls as mtls_event, authorizer_no_credentials as no_credentials_event};

async fn invoke(w: &World, event: &Value) -> Outcome {
    match w.api.invoke(event, INVOKE_TIMEOUT).await {
        Ok(o) => o,
        Err(e) => panic!("invocation failed: {e}\n--- function output ---\n{}", w.function.output()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_events_are_answered_through_the_runtime_api() {
    let mut w = world().await;

    // Allow: the certificate's SAN URI maps to a caller.
    let Outcome::Response(allow) = invoke(&w, &mtls_event(&w.orders.pem)).await else {
        panic!("expected a response; output:\n{}", w.function.output())
    };
    assert_eq!(allow["principalId"], "order-processing", "{allow}");
    let statement = &allow["policyDocument"]["Statement"][0];
    assert_eq!(allow["policyDocument"]["Version"], "2012-10-17");
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Action"], "execute-api:Invoke");
    assert_eq!(statement["Resource"], json!([format!("{API_ARN}/*/POST/oauth2/token")]));
    assert_eq!(allow["context"]["callerId"], "order-processing");
    assert_eq!(allow["context"]["authMethod"], "mtls");
    use base64::Engine as _;
    let sha = hex::decode(w.orders.cert_sha256_hex()).unwrap();
    let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha);
    assert_eq!(allow["context"]["credentialFingerprint"], thumbprint.as_str(), "the certificate's x5t#S256");
    assert!(allow["context"]["policyVersion"].as_str().is_some_and(|v| !v.is_empty()), "{allow}");
    assert!(allow.get("usageIdentifierKey").is_none_or(Value::is_null), "{allow}");
    // The context carries a MAC made with the key read from SSM, for this request's API and stage only.
    let context: std::collections::HashMap<String, Value> = serde_json::from_value(allow["context"].clone()).unwrap();
    let caller = tb_shared::context::CallerContext::from_map(&context).unwrap();
    let binding = |stage: &str| tb_shared::context::ApiBinding { api_id: "a1b2c3d4e5".into(), stage: stage.into() };
    let keys = context_key_set();
    let now = SystemTime::now();
    assert_eq!(tb_shared::context::verify(&context, &caller, &binding("prod"), &keys, now), Ok(()), "{allow}");
    assert!(tb_shared::context::verify(&context, &caller, &binding("beta"), &keys, now).is_err());

    // A caller with a usage plan key gets it as usageIdentifierKey.
    let Outcome::Response(rep) = invoke(&w, &mtls_event(&w.reporting.pem)).await else { panic!("reporting refused") };
    assert_eq!(rep["principalId"], "reporting");
    assert_eq!(rep["usageIdentifierKey"], "reporting-usage-plan-key-0001");

    // No credentials at all: the function error whose message is exactly "Unauthorized" (API Gateway's 401).
    match invoke(&w, &no_credentials_event()).await {
        Outcome::Error { error_message, .. } => assert_eq!(error_message, "Unauthorized"),
        other => panic!("expected the Unauthorized error, got {other:?}"),
    }

    // A valid certificate of nobody in the policy, and a revoked one: an explicit Deny (403), no context.
    for (name, cert) in [("stranger", &w.stranger), ("revoked", &w.revoked)] {
        match invoke(&w, &mtls_event(&cert.pem)).await {
            Outcome::Response(deny) => {
                assert_eq!(deny["policyDocument"]["Statement"][0]["Effect"], "Deny", "{name}: {deny}");
                assert!(deny.get("context").is_none_or(|c| c.as_object().is_none_or(|m| m.is_empty())), "{deny}");
            }
            other => panic!("{name}: expected a Deny policy, got {other:?}"),
        }
    }

    // An event that is not a REQUEST authorizer event is an invocation error, and the process keeps serving.
    match w.api.invoke(&json!("not an event"), INVOKE_TIMEOUT).await {
        Ok(Outcome::Error { .. }) => {}
        other => panic!("expected an invocation error for a malformed event, got {other:?}"),
    }
    let Outcome::Response(again) = invoke(&w, &mtls_event(&w.orders.pem)).await else { panic!("warm call refused") };
    assert_eq!(again["principalId"], "order-processing");

    assert!(w.function.try_exit_status().is_none(), "a warm function keeps running:\n{}", w.function.output());
    assert!(w.api.polls() >= 7, "one long-poll per invocation, got {}", w.api.polls());
    assert_eq!(w.api.init_error(Duration::ZERO).await, None);
    let logs = w.function.output();
    assert!(!logs.contains("BEGIN CERTIFICATE"), "certificates must not be logged:\n{logs}");
    assert!(logs.contains("context keys loaded"), "{logs}");
    assert_no_key_material(&logs);
    w.function.kill();
}

/// The function's output once it holds `lines` EMF lines counting `Unauthorized` (stdout is read by another thread,
/// a moment behind the invocation's answer).
async fn output_after_unauthorized(w: &World, lines: usize) -> String {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = w.function.output();
        // The request's own line, not the second one that breaks `Unauthorized` down by `Reason`.
        let seen = out.lines().filter(|l| l.contains("\"Unauthorized\":1.0") && !l.contains("\"Reason\":")).count();
        if seen >= lines || std::time::Instant::now() >= until {
            assert_eq!(seen, lines, "Unauthorized metric lines; output:\n{out}");
            return out;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn expect_unauthorized(w: &World, what: &str, event: &Value) {
    match invoke(w, event).await {
        Outcome::Error { error_message, .. } => assert_eq!(error_message, "Unauthorized", "{what}"),
        other => panic!("{what}: expected the Unauthorized error, got {other:?}"),
    }
}

/// Every 401 is a function error to Lambda, so the function's `Errors` metric cannot tell an outage from a caller
/// without credentials; the EMF `AuthorizerErrors` the alarm reads can. A burst of requests without credentials or
/// with bad ones leaves it at zero; a function whose truststore is unreadable starts anyway, and raises it for every
/// certificate it cannot check.
#[tokio::test(flavor = "multi_thread")]
async fn authorizer_errors_count_outages_and_never_bad_credentials() {
    let mut w = world().await;
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let foreign = TestCa::root("Dev Root CA").unwrap().issue_client().cn("order-processing").build().unwrap();
    let expired = TestCa::root("Dev Root CA")
        .unwrap()
        .issue_client()
        .san_uri(ORDERS_URI)
        .validity(now - 48 * hour, now - 24 * hour)
        .build()
        .unwrap();
    let mut basic = tb_devkit::events::authorizer_jwt("x");
    basic["headers"]["Authorization"] = json!("Basic eDp5");
    basic["multiValueHeaders"]["Authorization"] = json!(["Basic eDp5"]);
    let mut burst: Vec<(&str, Value)> = (0..10).map(|_| ("no credentials", no_credentials_event())).collect();
    burst.extend([
        ("foreign certificate", mtls_event(&foreign.pem)),
        ("expired certificate", mtls_event(&expired.pem)),
        ("not a PEM", mtls_event("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")),
        ("not a token", tb_devkit::events::authorizer_jwt("not.a.token")),
        ("Basic credentials", basic),
    ]);
    for (what, event) in &burst {
        expect_unauthorized(&w, what, event).await;
    }
    let out = output_after_unauthorized(&w, burst.len()).await;
    assert_eq!(common::authorizer_errors_in(&out), Vec::<String>::new(), "bad credentials raised AuthorizerErrors");
    w.function.kill();

    // The truststore object holds no certificate the loader accepts: the cold start carries on (reported), and each
    // certificate is refused for want of trust material, while requests without credentials still are not errors.
    let mut w = world_with_truststore(Some("this is not a PEM bundle\n")).await;
    for _ in 0..3 {
        expect_unauthorized(&w, "valid certificate, no trust material", &mtls_event(&w.orders.pem)).await;
    }
    expect_unauthorized(&w, "no credentials", &no_credentials_event()).await;
    let out = output_after_unauthorized(&w, 4).await;
    assert_eq!(w.api.init_error(Duration::ZERO).await, None, "unreadable trust material must not fail the init");
    let reasons = common::authorizer_errors_in(&out);
    assert_eq!(reasons.iter().filter(|r| *r == "no_trust_material").count(), 3, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| *r == "trust_refresh_failed").count(), 1, "the cold start: {reasons:?}");
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    w.function.kill();
}

/// Starts the function with `extra` configuration and expects an init error mentioning each of `mentions`
/// (case-insensitive), then an exit.
async fn expect_init_error(extra: Vec<(String, String)>, mentions: &[&str]) {
    let probe = mtls_event("");
    assert_init_error(&function_bin(), "token-broker-authorizer", extra, mentions, &probe, INVOKE_TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_policy_file_is_an_init_error_and_the_process_exits() {
    let dir = temp_dir("init");
    let ca = TestCa::root("Dev Root CA").unwrap();
    // The file name does not say "policy": the message itself must.
    let missing = dir.path().join("missing.yaml").to_string_lossy().into_owned();
    let mut extra = vec![
        ("POLICY_FILE".to_owned(), missing),
        ("TRUSTSTORE_URI".to_owned(), write_file(&dir, "truststore.pem", ca.cert_pem())),
    ];
    extra.extend(common::test_keys_env().await);
    expect_init_error(extra, &["policy", "missing.yaml"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_callers_without_a_truststore_are_an_init_error() {
    let dir = temp_dir("init");
    let mut extra = vec![("POLICY_FILE".to_owned(), write_file(&dir, "policy.yaml", POLICY))];
    extra.extend(common::test_keys_env().await);
    expect_init_error(extra, &["TRUSTSTORE_URI"]).await;
}

/// Every form a key byte of the test key could take in a log line: base64 (both alphabets), hex, raw.
fn assert_no_key_material(logs: &str) {
    use base64::Engine as _;
    let forms = [
        base64::engine::general_purpose::STANDARD.encode(CONTEXT_KEY_BYTES),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(CONTEXT_KEY_BYTES),
        hex::encode(CONTEXT_KEY_BYTES),
        String::from_utf8_lossy(&CONTEXT_KEY_BYTES).into_owned(),
    ];
    for form in forms {
        assert!(!logs.contains(&form), "a context key reached the output:\n{logs}");
    }
}

/// Without its context key no Allow could carry a context the broker accepts, so the function does not start: the
/// parameter unset, a parameter that does not exist, and a document that breaks the key-set rules (a key too
/// short, and not JSON at all) are each an init error naming `CONTEXT_KEY_PARAMETER` and the reason, and neither the
/// report nor any log line holds a byte of the key.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_invalid_context_key_parameter_is_an_init_error() {
    use base64::Engine as _;
    let dir = temp_dir("init");
    let base = vec![
        ("POLICY_FILE".to_owned(), write_file(&dir, "policy.yaml", POLICY)),
        (
            "TRUSTSTORE_URI".to_owned(),
            write_file(&dir, "truststore.pem", TestCa::root("Dev Root CA").unwrap().cert_pem()),
        ),
    ];

    expect_init_error(base.clone(), &["CONTEXT_KEY_PARAMETER", "required"]).await;

    let mut absent = base.clone();
    absent.extend(common::key_parameter_env(None).await);
    expect_init_error(absent, &["CONTEXT_KEY_PARAMETER", "does not exist"]).await;

    // 31 bytes of the test key: one short of the floor.
    let short = base64::engine::general_purpose::STANDARD.encode(&CONTEXT_KEY_BYTES[..31]);
    let documents = [
        (format!(r#"{{"signing_key_id":"k1","keys":{{"k1":"{short}"}}}}"#), "invalid"),
        (format!("signing_key_id=k1 key={}", hex::encode(CONTEXT_KEY_BYTES)), "invalid"),
    ];
    for (document, reason) in documents {
        let api = tb_devkit::runtime_api::RuntimeApi::start().await.unwrap();
        let mut env = lambda_env(&api, "token-broker-authorizer");
        env.extend(base.clone());
        env.extend(common::key_parameter_env(Some(&document)).await);
        let mut function = FunctionProcess::spawn(&function_bin(), &env).unwrap();
        let wait = api.wait_init_error(&mut function, INVOKE_TIMEOUT).await;
        let tb_devkit::runtime_api::InitWait::Reported(error_type, message) = wait else {
            panic!("expected an init error, got {wait:?}; output:\n{}", function.output())
        };
        assert_eq!(error_type, "Runtime.InitError");
        assert!(message.contains("CONTEXT_KEY_PARAMETER") && message.contains(reason), "{message}");
        function.wait_exit(Duration::from_secs(15)).await.expect("the function exits after its init error");
        let logs = function.output();
        assert!(logs.contains("init_failed"), "the failure is logged:\n{logs}");
        assert_no_key_material(&format!("{message}\n{logs}"));
        assert!(!logs.contains(&short) && !message.contains(&short), "{message}\n{logs}");
    }
}
