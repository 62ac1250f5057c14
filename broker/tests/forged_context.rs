//! The broker refuses a caller context the authorizer did not make, through the whole handler.
//!
//! Anyone allowed to invoke the broker function directly can hand it a proxy event with a context of their own. The
//! context's MAC (made by the authorizer with the shared key, over the contract fields, the API id and stage and an
//! expiry) is checked first: a context without one, with a field changed, expired, made with another key, or made
//! for another API or stage is answered 500 `server_error` (the missing-context answer), counted as
//! `ForgedAuthorizerContext` in total and by reason, logged once at error level without the MAC or any key byte, and
//! nothing else happens: no quota charge, no credential read, no call to Cognito. A context API Gateway replays from
//! its authorizer cache is the same context with the same MAC, and is accepted until the MAC expires.
//!
//! Every test captures the logs first (see `tb_shared::telemetry::capture_default`).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{json, Value};
use support::*;
use tb_broker::{metric_names, Charge, MemoryQuotaStore, QuotaError, QuotaOutcome, QuotaStore};
use tb_devkit::fixtures::{context_key_set, CONTEXT_KEY_BYTES, CONTEXT_KEY_ID};
use tb_shared::context::{ApiBinding, KeyRingConfig, KeySet, KEY_MAC, KEY_MAC_EXPIRES, KEY_MAC_KEY_ID};
use tb_shared::ids::CallerId;
use tb_shared::policy::QuotaWindow;
use tb_shared::telemetry::{capture_default, CaptureWriter};

const GRANT: &str = "grant_type=client_credentials";
const TTL: Duration = Duration::from_secs(300);

/// A quota store that counts every call before handing it to an in-memory one.
#[derive(Default)]
struct CountingQuotas {
    inner: MemoryQuotaStore,
    calls: AtomicUsize,
}

#[async_trait]
impl QuotaStore for CountingQuotas {
    async fn try_charge(
        &self,
        caller: &CallerId,
        windows: &[QuotaWindow],
        now: SystemTime,
    ) -> Result<QuotaOutcome, QuotaError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.try_charge(caller, windows, now).await
    }
    async fn refund(&self, charge: &Charge) -> Result<(), QuotaError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.refund(charge).await
    }
}

/// A harness whose quota store counts its calls, with logs captured from here on.
struct World {
    h: Harness,
    quota_calls: Arc<CountingQuotas>,
    logs: CaptureWriter,
    _guard: tracing::subscriber::DefaultGuard,
}

impl World {
    async fn start() -> World {
        Self::with(Options::default()).await
    }

    async fn with(opts: Options) -> World {
        let logs = CaptureWriter::default();
        let guard = capture_default(logs.clone());
        let quota_calls = Arc::new(CountingQuotas::default());
        let h = Harness::with(Options { quota_store: Some(quota_calls.clone()), ..opts }).await;
        World { h, quota_calls, logs, _guard: guard }
    }

    /// Counters of everything after the context check: quota store calls, credential reads, Cognito requests.
    fn downstream(&self) -> (usize, usize, u64) {
        (self.quota_calls.calls.load(Ordering::SeqCst), self.h.store_reads(), self.h.standin.token_requests())
    }

    /// Sum of one metric over the `{Service, Stack}` lines (the by-reason lines repeat some metrics).
    fn first_line_total(&self, name: &str) -> f64 {
        self.h.emf_lines().iter().filter(|l| l.get("Reason").is_none()).filter_map(|l| l[name].as_f64()).sum()
    }

    /// The captured log lines, parsed.
    fn log_lines(&self) -> Vec<Value> {
        self.logs.contents().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Sends `req`; asserts the refusal of a forged context for `reason` and that nothing downstream was touched.
    /// Returns the refusal's log line.
    async fn assert_forged(
        &self,
        what: &str,
        req: aws_lambda_events::apigw::ApiGatewayProxyRequest,
        reason: &str,
    ) -> Value {
        let before = self.downstream();
        let emf_before = self.h.emf_lines().len();
        let logs_before = self.log_lines().len();
        let r = self.h.send(req).await;
        assert_error(&r, 500, "server_error");
        assert_eq!(r.json["error_description"], "the request could not be processed", "{what}: {}", r.body);
        assert_eq!(self.downstream(), before, "{what}: the quota store, the credential store or Cognito was reached");

        let lines = self.h.emf_lines()[emf_before..].to_vec();
        assert_eq!(lines.len(), 3, "{what}: {lines:?}");
        assert_eq!(lines[0][metric_names::FORGED_CONTEXT], 1.0, "{what}");
        assert_eq!(lines[0]["Denials"], 1.0, "{what}");
        assert_eq!(lines[0]["Grants"], 0.0, "{what}");
        assert!(lines[0].get(metric_names::MISSING_CONTEXT_ALARM).is_none(), "{what}: counted as missing");
        assert_eq!(lines[1]["Reason"], "forged_authorizer_context", "{what}");
        assert_eq!(lines[2]["Reason"], reason, "{what}");
        assert_eq!(lines[2][metric_names::FORGED_CONTEXT], 1.0, "{what}");

        let logs = self.log_lines()[logs_before..].to_vec();
        let forged: Vec<&Value> = logs.iter().filter(|l| l["event"] == "forged_context").collect();
        assert_eq!(forged.len(), 1, "{what}: {logs:?}");
        let line = forged[0].clone();
        assert_eq!(line["level"], "ERROR", "{what}");
        assert_eq!(line["mac_reason"], reason, "{what}");
        assert_eq!(line["status"], 500, "{what}");
        line
    }

    /// Asserts that no captured log line holds a MAC the test made or a form of the key's bytes.
    fn assert_no_mac_or_key_in_logs(&self, macs: &[String]) {
        let text = self.logs.contents();
        assert!(!text.is_empty(), "nothing captured proves nothing");
        for mac in macs {
            assert!(!text.contains(mac.as_str()), "a MAC in the logs");
        }
        let key = CONTEXT_KEY_BYTES;
        for form in [
            String::from_utf8_lossy(&key).into_owned(),
            base64::engine::general_purpose::STANDARD.encode(key),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
            hex(&key),
        ] {
            assert!(!text.contains(&form), "key material in the logs");
        }
        assert!(!text.contains(KEY_MAC), "a MAC field name in the logs");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac_of(req: &aws_lambda_events::apigw::ApiGatewayProxyRequest) -> String {
    req.request_context.authorizer.fields.get(KEY_MAC).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn field(req: &mut aws_lambda_events::apigw::ApiGatewayProxyRequest, key: &str, value: Value) {
    req.request_context.authorizer.fields.insert(key.to_owned(), value);
}

/// A request of order-svc signed with `keys` for `api` at `at`.
fn signed(keys: &KeySet, api: &ApiBinding, at: SystemTime) -> aws_lambda_events::apigw::ApiGatewayProxyRequest {
    let mut req = request(Some("order-svc"), GRANT);
    sign_context(&mut req, keys, api, at, TTL);
    req
}

/// GIVEN a direct invoke whose context names a real caller but carries no MAC THEN 500, counted as a forged context
/// (reason `missing`), logged with the claimed caller, the API and stage, and nothing downstream; the same event
/// with the authorizer's MAC is granted.
#[tokio::test]
async fn a_context_without_a_mac_is_refused_before_anything_else() {
    let w = World::start().await;
    let mut forged = request(Some("order-svc"), GRANT);
    for key in [KEY_MAC, KEY_MAC_KEY_ID, KEY_MAC_EXPIRES] {
        forged.request_context.authorizer.fields.remove(key);
    }
    let line = w.assert_forged("no MAC", forged, "missing").await;
    assert_eq!(line["claimed_caller"], "order-svc");
    assert_eq!(line["api_id"], API_ID);
    assert_eq!(line["stage"], STAGE);
    assert_eq!(line["mac_key_id"], "-");
    assert_eq!(line["reason"], "forged_authorizer_context");

    // Everything else about the event is fine: signed as the authorizer signs it, it gets a token.
    let r = w.h.post("order-svc", GRANT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(w.downstream(), (1, 1, 1));
}

/// GIVEN a context signed by the authorizer WHEN any one contract field is changed afterwards (another registered
/// caller, another method, fingerprint or policy version) THEN `mismatch`, nothing downstream. Also a moved expiry.
#[tokio::test]
async fn a_changed_contract_field_is_a_mismatch() {
    let w = World::start().await;
    let mut macs = Vec::new();
    let changes: [(&str, Value); 5] = [
        ("callerId", json!("other-svc")),
        ("authMethod", json!("jwt")),
        ("credentialFingerprint", json!("0000000000000000")),
        ("policyVersion", json!("fedcba9876543210")),
        (KEY_MAC_EXPIRES, Value::Null),
    ];
    for (key, value) in changes {
        let mut req = request(Some("order-svc"), GRANT);
        macs.push(mac_of(&req));
        let value = if key == KEY_MAC_EXPIRES {
            let e: u64 = req.request_context.authorizer.fields[KEY_MAC_EXPIRES].as_str().unwrap().parse().unwrap();
            json!((e + 60).to_string())
        } else {
            value
        };
        field(&mut req, key, value);
        let line = w.assert_forged(key, req, "mismatch").await;
        assert_eq!(line["mac_key_id"], CONTEXT_KEY_ID, "{key}");
    }
    w.assert_no_mac_or_key_in_logs(&macs);
}

/// GIVEN a context whose MAC expired (signed 400 s ago with a 300 s lifetime) THEN `expired`; one signed 200 s ago
/// (as API Gateway replays a context from its authorizer cache) is accepted, and again on a second request.
#[tokio::test]
async fn an_expired_mac_is_refused_and_a_cached_context_is_accepted_until_it_expires() {
    let w = World::start().await;
    let keys = context_key_set();
    let now = SystemTime::now();
    let stale = signed(&keys, &api(), now - Duration::from_secs(400));
    let stale_mac = mac_of(&stale);
    w.assert_forged("expired", stale, "expired").await;

    let cached = signed(&keys, &api(), now - Duration::from_secs(200));
    for replay in 0..2 {
        let r = w.h.send(cached.clone()).await;
        assert_eq!(r.status, 200, "replay {replay}: {}", r.body);
    }
    assert_eq!(w.first_line_total(metric_names::FORGED_CONTEXT), 1.0, "the expired one only");
    w.assert_no_mac_or_key_in_logs(&[stale_mac, mac_of(&cached)]);
}

/// GIVEN a MAC made with a key of the broker's key id but other bytes (a forger who guessed the id) THEN `mismatch`;
/// made with a key id the broker does not hold THEN `unknown_key`, with that id in the log line.
#[tokio::test]
async fn a_mac_made_with_another_key_is_refused() {
    let w = World::start().await;
    let now = SystemTime::now();
    let same_id = KeySet::single(CONTEXT_KEY_ID, vec![0x42; 32]).unwrap();
    let req = signed(&same_id, &api(), now);
    let macs = vec![mac_of(&req)];
    w.assert_forged("same id, other bytes", req, "mismatch").await;

    let other_id = KeySet::single("attacker-key", CONTEXT_KEY_BYTES.to_vec()).unwrap();
    let req = signed(&other_id, &api(), now);
    let line = w.assert_forged("unknown key id", req, "unknown_key").await;
    assert_eq!(line["mac_key_id"], "attacker-key");
    w.assert_no_mac_or_key_in_logs(&macs);
}

/// GIVEN contexts signed with the right key for another API id, for another stage, and a real context captured
/// from one API and replayed in an event of another THEN `mismatch` each time, with the event's API and stage in the
/// log line. An event without `apiId` and `stage` (not made by API Gateway) is a `mismatch` too.
#[tokio::test]
async fn a_context_made_for_another_api_or_stage_is_refused() {
    let w = World::start().await;
    let keys = context_key_set();
    let now = SystemTime::now();
    let other_api = ApiBinding { api_id: "0therap1id".into(), ..api() };
    w.assert_forged("other API", signed(&keys, &other_api, now), "mismatch").await;
    let other_stage = ApiBinding { stage: "v2".into(), ..api() };
    w.assert_forged("other stage", signed(&keys, &other_stage, now), "mismatch").await;

    // A context that really passed the authorizer on API `replayed` (and is granted there), replayed elsewhere.
    let mut captured = request(Some("order-svc"), GRANT);
    captured.request_context.apiid = Some("replayed01".into());
    sign_context(&mut captured, &keys, &ApiBinding { api_id: "replayed01".into(), ..api() }, now, TTL);
    let r = w.h.send(captured.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut replay = captured.clone();
    replay.request_context.apiid = Some(API_ID.into());
    let line = w.assert_forged("replayed on another API", replay, "mismatch").await;
    assert_eq!((line["api_id"].as_str(), line["stage"].as_str()), (Some(API_ID), Some(STAGE)));

    let mut bare = request(Some("order-svc"), GRANT);
    bare.request_context.apiid = None;
    bare.request_context.stage = None;
    let line = w.assert_forged("no apiId or stage", bare, "mismatch").await;
    assert_eq!((line["api_id"].as_str(), line["stage"].as_str()), (Some("-"), Some("-")));
}

/// GIVEN no authorizer fields at all THEN still the missing-context path (its own metric), not a forgery.
#[tokio::test]
async fn no_authorizer_context_stays_a_missing_context() {
    let w = World::start().await;
    let r = w.h.send(request(None, GRANT)).await;
    assert_error(&r, 500, "server_error");
    assert_eq!(w.first_line_total(metric_names::MISSING_CONTEXT_ALARM), 1.0);
    assert_eq!(w.h.metric_total(metric_names::FORGED_CONTEXT), 0.0);
    assert!(w.log_lines().iter().all(|l| l["event"] != "forged_context"));
    assert_eq!(w.downstream(), (0, 0, 0));
}

/// GIVEN the key store down and the key set read at cold start past its stale bound THEN 503
/// `temporarily_unavailable` with Retry-After, counted as `ContextKeysUnavailable`, logged, and nothing downstream;
/// once the store answers again, grants resume.
#[tokio::test]
async fn without_a_usable_key_set_every_request_is_a_503_and_nothing_else_happens() {
    // Every use reads the store again, and a failed read leaves nothing usable.
    let ring = KeyRingConfig { ttl: Duration::ZERO, max_stale: Duration::ZERO, retry_after_failure: Duration::ZERO };
    let w = World::with(Options { context_keys: Some(ring), ..Options::default() }).await;
    w.h.context_keys.set_unavailable(true);
    let r = w.h.post("order-svc", GRANT).await;
    assert_error(&r, 503, "temporarily_unavailable");
    assert_eq!(retry_after(&r), 5);
    assert_eq!(w.downstream(), (0, 0, 0));
    assert_eq!(w.first_line_total(metric_names::CONTEXT_KEYS_UNAVAILABLE), 1.0);
    assert_eq!(w.h.metric_total(metric_names::FORGED_CONTEXT), 0.0);
    let logs = w.log_lines();
    assert!(logs.iter().any(|l| l["event"] == "context_keys_unavailable" && l["level"] == "ERROR"), "{logs:?}");
    assert!(logs.iter().any(|l| l["reason"] == "context_keys_unavailable"), "the decision line: {logs:?}");

    w.h.context_keys.set_unavailable(false);
    let r = w.h.post("order-svc", GRANT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    w.assert_no_mac_or_key_in_logs(&[]);
}
