//! The handler in process, built by the same builder as the Lambda: what it answers, the decision log line and the
//! EMF lines of each outcome, and that no MAC or other metadata value ever reaches a log line, a metric line or the
//! error Cognito receives.
//!
//! Every test captures the logs first (see `tb_shared::telemetry::capture_default`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};
use tb_devkit::events::lambda_event;
use tb_shared::clock::Clock;
use tb_shared::context::claims::{sign, CLAIMS_TTL, META_MAC};
use tb_shared::context::{AuthMethod, CallerClaims, CallerContext, MemoryKeySource};
use tb_shared::env::Env;
use tb_shared::ids::CallerId;
use tb_shared::telemetry::{capture_default, CaptureWriter, MetricsSink, STACK_DIMENSION};
use tb_trigger::{build, handle, App, Config, Deps, REFUSED_ERROR_TYPE};

const CLIENT: &str = "4k1f7ea9mb0tq2vhs3ugxy85dn";
const CALLER: &str = "order-processing";
const THUMB: &str = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
const POLICY_VERSION: &str = "9a8b7c6d5e4f3a2b";
const T0: u64 = 1_900_000_000;

struct World {
    app: App,
    logs: CaptureWriter,
    metrics: CaptureWriter,
    keys: Arc<MemoryKeySource>,
    seconds: Arc<AtomicU64>,
    _guard: tracing::subscriber::DefaultGuard,
}

async fn world(env: &[(&str, &str)]) -> World {
    let logs = CaptureWriter::default();
    let guard = capture_default(logs.clone());
    let metrics = CaptureWriter::default();
    let keys = tb_devkit::fixtures::context_keys();
    let seconds = Arc::new(AtomicU64::new(T0));
    let s = seconds.clone();
    let clock = Clock::from_fn(move || UNIX_EPOCH + Duration::from_secs(s.load(Ordering::SeqCst)));
    let cfg = Config::from(&Env::from_pairs(env.iter().copied())).unwrap();
    let deps = Deps {
        context_keys: keys.clone(),
        metrics: MetricsSink::to_writer("TokenBroker", metrics.clone()).with_dimension(STACK_DIMENSION, "tb-test"),
        clock,
    };
    let app = build(&cfg, deps).await.unwrap();
    World { app, logs, metrics, keys, seconds, _guard: guard }
}

fn signed(client: &str) -> BTreeMap<String, String> {
    let claims = CallerClaims {
        context: CallerContext {
            caller_id: CallerId::try_from(CALLER).unwrap(),
            auth_method: AuthMethod::Mtls,
            credential_fingerprint: THUMB.into(),
            policy_version: POLICY_VERSION.into(),
        },
        cert_thumbprint: Some(THUMB.into()),
    };
    sign(&claims, client, &tb_devkit::fixtures::context_key_set(), UNIX_EPOCH + Duration::from_secs(T0), CLAIMS_TTL)
}

fn event(source: &str, metadata: &BTreeMap<String, String>) -> Value {
    json!({
        "version": "3",
        "triggerSource": source,
        "region": "eu-west-1",
        "userPoolId": "eu-west-1_Ab12Cd34E",
        "userName": "ClientCredentials",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": CLIENT},
        "request": {"userAttributes": {}, "groupConfiguration": null, "scopes": ["orders/read"], "clientMetadata": metadata},
        "response": {"claimsAndScopeOverrideDetails": null}
    })
}

async fn call(w: &World, e: Value) -> Result<Value, lambda_runtime::Diagnostic> {
    handle(&w.app, lambda_event(e, UNIX_EPOCH + Duration::from_secs(T0 + 5))).await
}

fn log_lines(w: &World) -> Vec<Value> {
    w.logs.contents().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn decision(w: &World) -> Value {
    let lines: Vec<Value> = log_lines(w).into_iter().filter(|l| l["event"] == "trigger_decision").collect();
    assert_eq!(lines.len(), 1, "one decision line per invocation: {lines:?}");
    lines[0].clone()
}

fn metric_lines(w: &World) -> Vec<Value> {
    w.metrics.contents().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Nothing of the metadata but the caller id (and that only when `caller_allowed`) in any captured text.
fn assert_no_metadata(w: &World, metadata: &BTreeMap<String, String>, extra: &str, caller_allowed: bool) {
    let texts = [w.logs.contents(), w.metrics.contents(), extra.to_owned()];
    for (key, value) in metadata {
        if key == "callerId" && caller_allowed {
            continue;
        }
        for text in &texts {
            assert!(!text.contains(value.as_str()), "{key} leaked: {text}");
        }
    }
}

#[tokio::test]
async fn a_verified_token_gets_its_claims_one_log_line_and_a_metric() {
    let w = world(&[]).await;
    let m = signed(CLIENT);
    let out = call(&w, event("TokenGeneration_ClientCredentials", &m)).await.unwrap();
    let claims = &out["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"];
    assert_eq!(claims["tb:callerId"], CALLER);
    assert_eq!(claims["cnf"]["x5t#S256"], THUMB);
    let d = decision(&w);
    assert_eq!(d["outcome"], "claims_added");
    assert_eq!(d["caller_id"], CALLER);
    assert_eq!(d["client_id"], CLIENT);
    assert_eq!(d["trigger_source"], "TokenGeneration_ClientCredentials");
    assert_eq!(d["bound"], true);
    let metrics = metric_lines(&w);
    assert_eq!(metrics.len(), 1);
    assert_eq!((metrics[0]["ClaimsAdded"].clone(), metrics[0]["ClaimsRefused"].clone()), (json!(1.0), json!(0.0)));
    assert_eq!(metrics[0]["Service"], "trigger");
    // The claims carry the thumbprint and fingerprint into the token, but the logs do not.
    assert_no_metadata(&w, &m, "", true);
}

#[tokio::test]
async fn a_refused_token_is_an_error_with_a_reason_and_nothing_of_the_metadata() {
    let w = world(&[]).await;
    let cases: Vec<(BTreeMap<String, String>, &str)> = vec![
        (signed("another-app-client"), "mac_mismatch"),
        (
            {
                let mut m = signed(CLIENT);
                m.insert(META_MAC.into(), "A".repeat(43));
                m
            },
            "mac_mismatch",
        ),
        (BTreeMap::new(), "metadata_missing"),
        (
            {
                let mut m = signed(CLIENT);
                m.insert("scope".into(), "admin".into());
                m
            },
            "metadata_unexpected_key",
        ),
    ];
    for (m, reason) in cases {
        w.logs.clear();
        w.metrics.clear();
        let err = call(&w, event("TokenGeneration_ClientCredentials", &m)).await.unwrap_err();
        assert_eq!(err.error_type, REFUSED_ERROR_TYPE);
        assert_eq!(err.error_message, format!("caller claims refused: {reason}"));
        let d = decision(&w);
        assert_eq!((d["outcome"].clone(), d["reason"].clone()), (json!("refused"), json!(reason)));
        assert!(d.get("caller_id").is_none(), "no caller id unless verified: {d}");
        let metrics = metric_lines(&w);
        assert_eq!(metrics.len(), 2);
        assert_eq!(metrics[0]["ClaimsRefused"], 1.0);
        assert_eq!((metrics[1]["Reason"].clone(), metrics[1]["ClaimsRefused"].clone()), (json!(reason), json!(1.0)));
        assert_no_metadata(&w, &m, &format!("{err:?}"), false);
        assert!(!w.logs.contents().contains(CALLER), "the unverified caller id is not logged");
    }
}

#[tokio::test]
async fn a_user_token_passes_unchanged_without_metrics() {
    let w = world(&[]).await;
    let m = signed(CLIENT);
    let e = event("TokenGeneration_Authentication", &m);
    assert_eq!(call(&w, e.clone()).await.unwrap(), e);
    let d = decision(&w);
    assert_eq!(d["outcome"], "unchanged");
    assert!(metric_lines(&w).is_empty());
    assert_no_metadata(&w, &m, "", false);
}

#[tokio::test]
async fn without_a_usable_key_set_client_credentials_tokens_fail_and_user_tokens_pass() {
    let w = world(&[("CONTEXT_KEYS_TTL_SECONDS", "10"), ("CONTEXT_KEYS_MAX_STALE_SECONDS", "0")]).await;
    w.keys.set_unavailable(true);
    w.seconds.store(T0 + 11, Ordering::SeqCst);
    let m = signed(CLIENT);
    let err = call(&w, event("TokenGeneration_ClientCredentials", &m)).await.unwrap_err();
    assert_eq!(err.error_message, "caller claims refused: context_keys_unavailable");
    assert_eq!(metric_lines(&w)[1]["Reason"], "context_keys_unavailable");
    let user = event("TokenGeneration_RefreshTokens", &m);
    assert_eq!(call(&w, user.clone()).await.unwrap(), user);
    w.keys.set_unavailable(false);
    w.seconds.store(T0 + 20, Ordering::SeqCst);
    // The MAC was made at T0 and lives 120 s: still valid once the keys are back.
    assert!(call(&w, event("TokenGeneration_ClientCredentials", &m)).await.is_ok());
}

#[tokio::test]
async fn caller_ids_are_hashed_in_the_log_when_a_key_is_set() {
    let w = world(&[("CALLER_HASH_KEY", "a-log-hashing-key-of-32-bytes!!!")]).await;
    call(&w, event("TokenGeneration_ClientCredentials", &signed(CLIENT))).await.unwrap();
    let d = decision(&w);
    let shown = d["caller_id"].as_str().unwrap();
    let expected = tb_shared::telemetry::CallerIdHasher::keyed(b"a-log-hashing-key-of-32-bytes!!!")
        .display(&CallerId::try_from(CALLER).unwrap());
    assert_eq!(shown, expected);
    assert!(shown.starts_with("h:"), "{shown}");
    assert!(!w.logs.contents().contains(CALLER));
}

#[tokio::test]
async fn the_build_fails_naming_the_parameter_when_the_key_set_cannot_be_read() {
    let logs = CaptureWriter::default();
    let _guard = capture_default(logs.clone());
    let keys = Arc::new(MemoryKeySource::default());
    let deps =
        Deps { context_keys: keys, metrics: MetricsSink::to_writer("T", std::io::sink()), clock: Clock::system() };
    let cfg = Config::from(&Env::from_pairs::<&str, &str>([])).unwrap();
    let e = build(&cfg, deps).await.unwrap_err().to_string();
    assert!(e.starts_with("CONTEXT_KEY_PARAMETER: "), "{e}");
}
