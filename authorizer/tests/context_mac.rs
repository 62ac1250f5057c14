//! The MAC on an Allow's context: what lets the broker tell a context API Gateway passed on from the authorizer
//! from one made up by anyone allowed to invoke the broker directly.
//!
//! Each test builds the authorizer as the Lambda does, with the devkit's in-memory key source and a clock the test
//! moves, and checks the answer the way the broker does (`tb_shared::context::verify`).

mod common;
use common::*;

use std::collections::HashMap;
use std::sync::Mutex;

use secrecy::ExposeSecret;
use tb_shared::context::{verify, ApiBinding, CallerContext, KeySet, MacError, MemoryKeySource, KEY_MAC_KEY_ID};

const API_ID: &str = "a1b2c3d4e5";
const API_ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5";

/// The world with the devkit's key source and a clock the test moves, which the key ring reads.
struct Keyed {
    w: World,
    source: Arc<MemoryKeySource>,
    now: Arc<Mutex<SystemTime>>,
}

impl Keyed {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap()
    }
    fn advance(&self, seconds: u64) {
        *self.now.lock().unwrap() += Duration::from_secs(seconds);
    }
    /// The answer to `event` at the world's time.
    async fn answer(&self, event: &RequestEvent) -> Result<Value, Unauthorized> {
        handle_request(&self.w.app, event, self.now()).await.map(|r| serde_json::to_value(r).unwrap())
    }
    async fn allow(&self, event: &RequestEvent) -> HashMap<String, Value> {
        let v = self.answer(event).await.expect("an Allow");
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow", "{v}");
        serde_json::from_value(v["context"].clone()).unwrap()
    }
    fn mtls(&self, caller: &str) -> RequestEvent {
        mtls_event(&self.w.cert(caller).pem)
    }
}

/// Key-ring settings short enough to step through: read again after 10 s, stale for 60 s more.
const RING: [(&str, &str); 2] = [("CONTEXT_KEYS_TTL_SECONDS", "10"), ("CONTEXT_KEYS_MAX_STALE_SECONDS", "60")];

fn keyed(env: &[(&str, &str)]) -> Keyed {
    let source = tb_devkit::fixtures::context_keys();
    let now = Arc::new(Mutex::new(SystemTime::now()));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || *now.lock().unwrap())
    };
    let mut all = vec![("TRUST_REFRESH_SECONDS", "0")];
    all.extend_from_slice(env);
    let keys = source.clone();
    let w = world_with(&all, move |_, _, deps| Deps { context_keys: keys, clock, ..deps });
    Keyed { w, source, now }
}

fn binding(api_id: &str, stage: &str) -> ApiBinding {
    ApiBinding { api_id: api_id.into(), stage: stage.into() }
}

/// What the broker checks: the caller read from the context, its MAC against the API and stage it came through.
fn broker_check(
    context: &HashMap<String, Value>,
    api: &ApiBinding,
    keys: &KeySet,
    now: SystemTime,
) -> Result<(), MacError> {
    let caller = CallerContext::from_map(context).expect("the contract fields");
    verify(context, &caller, api, keys, now)
}

fn key_id(context: &HashMap<String, Value>) -> &str {
    context[KEY_MAC_KEY_ID].as_str().unwrap()
}

/// GIVEN an allowed caller, by certificate or by partner JWT WHEN the authorizer answers THEN the context carries a
/// MAC the broker accepts for the API and stage of the `methodArn`, valid for `CONTEXT_MAC_TTL_SECONDS`, and refuses
/// for another stage, another API, another key, a changed field, or after it expired.
#[tokio::test(flavor = "multi_thread")]
async fn the_allow_context_carries_a_mac_for_its_api_and_stage_only() {
    let k = keyed(&[("CONTEXT_MAC_TTL_SECONDS", "120")]);
    let keys = tb_devkit::fixtures::context_key_set();
    let now = k.now();
    let prod = binding(API_ID, "prod");
    for event in [k.mtls("order-processing"), jwt_event(&k.w.partner_token("acme-billing-sync"))] {
        let context = k.allow(&event).await;
        assert_eq!(broker_check(&context, &prod, &keys, now), Ok(()), "{context:?}");
        let expires = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 120;
        assert_eq!(context["contextMacExpires"], Value::String(expires.to_string()));
        assert_eq!(broker_check(&context, &binding(API_ID, "staging"), &keys, now), Err(MacError::Mismatch));
        assert_eq!(broker_check(&context, &binding("f9e8d7c6b5", "prod"), &keys, now), Err(MacError::Mismatch));
        let other = KeySet::single(tb_devkit::fixtures::CONTEXT_KEY_ID, vec![7u8; 32]).unwrap();
        assert_eq!(broker_check(&context, &prod, &other, now), Err(MacError::Mismatch));
        assert_eq!(
            broker_check(&context, &prod, &keys, now + Duration::from_secs(121)),
            Err(MacError::Expired),
            "past CONTEXT_MAC_TTL_SECONDS"
        );
        let mut forged = context.clone();
        forged.insert("callerId".into(), Value::String("reporting".into()));
        assert_eq!(broker_check(&forged, &prod, &keys, now), Err(MacError::Mismatch));
    }
}

/// GIVEN a decision cached from a request through `prod` WHEN the same credential arrives through `staging` THEN
/// the decision is reused but the MAC is made for `staging`: the cache holds decisions, never MACs.
#[tokio::test(flavor = "multi_thread")]
async fn a_cached_decision_is_signed_again_for_the_stage_of_each_request() {
    let k = keyed(&[]);
    let keys = tb_devkit::fixtures::context_key_set();
    let pem = k.w.cert("order-processing").pem.clone();
    let first = k.allow(&event_with_arn(&pem, &format!("{API_ARN}/prod/POST/oauth2/token"))).await;
    k.advance(2);
    let second = k.allow(&event_with_arn(&pem, &format!("{API_ARN}/staging/POST/oauth2/token"))).await;
    let hits = k.w.metrics.contents().lines().filter(|l| l.contains("\"DecisionCacheHits\":1.0")).count();
    assert_eq!(hits, 1, "the second answer came from the decision cache");
    let now = k.now();
    assert_eq!(broker_check(&second, &binding(API_ID, "staging"), &keys, now), Ok(()));
    assert_eq!(broker_check(&second, &binding(API_ID, "prod"), &keys, now), Err(MacError::Mismatch));
    assert_eq!(broker_check(&first, &binding(API_ID, "prod"), &keys, now), Ok(()));
    assert_ne!(first["contextMacExpires"], second["contextMacExpires"], "each answer gets its own expiry");
}

/// A rotation as the operator runs it: the new key is added beside the old one (the authorizer keeps signing with
/// the old), then made the signing key; the authorizer picks the switch up at its next read, once the key set is
/// older than `CONTEXT_KEYS_TTL_SECONDS`, and a broker holding both keys accepts contexts of either.
#[tokio::test(flavor = "multi_thread")]
async fn a_signing_key_switch_is_picked_up_after_the_ttl() {
    let k = keyed(&RING);
    let old = tb_devkit::fixtures::context_key_set();
    let event = k.mtls("reporting");
    assert_eq!(key_id(&k.allow(&event).await), "test-1");
    let fetches = k.source.fetches();

    let both = old.with_added("test-2", vec![0x42; 48]).unwrap();
    k.source.set(both.to_document());
    k.advance(11);
    let during = k.allow(&event).await;
    assert_eq!(key_id(&during), "test-1", "a key added beside the signing key does not sign yet");
    assert_eq!(k.source.fetches(), fetches + 1, "read again once older than the TTL");

    let switched = both.with_signing("test-2").unwrap();
    k.source.set(switched.to_document());
    k.advance(9);
    assert_eq!(key_id(&k.allow(&event).await), "test-1", "not before the TTL");
    k.advance(2);
    let after = k.allow(&event).await;
    assert_eq!(key_id(&after), "test-2", "the switch is picked up after the TTL");

    let now = k.now();
    let prod = binding(API_ID, "prod");
    assert_eq!(broker_check(&during, &prod, &switched, now), Ok(()), "the old key still verifies during the rotation");
    assert_eq!(broker_check(&after, &prod, &switched, now), Ok(()));
    assert_eq!(broker_check(&after, &prod, &old, now), Err(MacError::UnknownKey), "a broker that never loaded it");
    let done = switched.without("test-1").unwrap();
    assert_eq!(broker_check(&during, &prod, &done, now), Err(MacError::UnknownKey), "the old key removed");
}

/// GIVEN the key store unreadable WHEN the key set is past its TTL THEN the last keys still sign up to the stale
/// bound; past it an allowed caller gets 401 counted as the authorizer's outage (`context_keys_unavailable`), never an
/// Allow without a MAC, while a Deny needs no key and is still answered; once a read succeeds, Allows resume.
#[tokio::test(flavor = "multi_thread")]
async fn keys_unavailable_past_the_stale_bound_refuse_every_allow_as_an_outage() {
    let k = keyed(&RING);
    let event = k.mtls("order-processing");
    k.allow(&event).await;
    k.source.set_unavailable(true);
    k.advance(69); // 10 s TTL + 60 s stale bound, less one second
    assert_eq!(key_id(&k.allow(&event).await), "test-1", "the last keys sign within the stale bound");
    assert_eq!(authorizer_errors(&k.w.metrics), Vec::<String>::new());

    k.advance(1);
    assert_eq!(k.answer(&event).await, Err(Unauthorized));
    assert_eq!(authorizer_errors(&k.w.metrics), ["context_keys_unavailable"]);
    let metrics = k.w.metrics.contents();
    let allows = metrics.lines().filter(|l| l.contains("\"Allows\":1.0")).count();
    assert_eq!(allows, 2, "the refused answer is not counted as an Allow:\n{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("\"Reason\":\"context_keys_unavailable\"") && l.contains("\"Unauthorized\"")),
        "the 401 is broken down by its reason:\n{metrics}"
    );

    let deny = k.answer(&k.mtls("stranger")).await.expect("a Deny needs no key");
    assert_eq!(deny["policyDocument"]["Statement"][0]["Effect"], "Deny");
    assert!(deny.get("context").is_none(), "{deny}");

    k.source.set_unavailable(false);
    k.advance(5); // the wait after a failed read
    assert_eq!(key_id(&k.allow(&event).await), "test-1", "Allows resume once a read succeeds");
    assert_eq!(authorizer_errors(&k.w.metrics), ["context_keys_unavailable"]);
}

fn build_with_keys(source: MemoryKeySource) -> Result<App, tb_authorizer::InitError> {
    let policy = tb_devkit::fixtures::write_policy(&tb_devkit::fixtures::reporting_policy(3));
    let cfg = Config::read(&Env::from_pairs([("POLICY_FILE", policy.path().to_str().unwrap())])).unwrap();
    let deps = Deps {
        trust: Trust::Ignored,
        jwks: Arc::new(MemoryJwksFetcher::default()),
        metrics: MetricsSink::to_writer("TokenBroker", CaptureWriter::default()),
        clock: Clock::system(),
        context_keys: Arc::new(source),
    };
    block_on(build(&cfg, deps))
}

/// Without a usable key set the function does not start (fail closed): the error names `CONTEXT_KEY_PARAMETER` and
/// the reason, never a byte of the key. The SSM-backed adapters require the parameter to be set at all.
#[tokio::test(flavor = "multi_thread")]
async fn no_usable_key_set_is_an_init_error_that_shows_no_key() {
    let err = build_with_keys(MemoryKeySource::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, tb_authorizer::InitError::ContextKeys(_)), "{err:?}");
    assert!(text.contains("CONTEXT_KEY_PARAMETER") && text.contains("unavailable"), "{text}");

    let short = tb_devkit::fixtures::CONTEXT_KEY_BYTES[..31].to_vec();
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let bad = format!(r#"{{"signing_key_id":"k1","keys":{{"k1":"{}"}}}}"#, b64(&short));
    let err = build_with_keys(MemoryKeySource::new(bad.into())).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("CONTEXT_KEY_PARAMETER") && text.contains("invalid"), "{text}");
    assert!(!text.contains(&b64(&short)) && !text.contains(&hex::encode(&short)), "{text}");

    let good = tb_devkit::fixtures::context_key_set().to_document();
    assert!(build_with_keys(MemoryKeySource::new(good.expose_secret().to_owned().into())).is_ok());

    let policy = tb_devkit::fixtures::write_policy(&tb_devkit::fixtures::reporting_policy(3));
    let cfg = Config::read(&Env::from_pairs([("POLICY_FILE", policy.path().to_str().unwrap())])).unwrap();
    let sdk = tb_devkit::moto::sdk_config_at("http://127.0.0.1:9", "eu-west-1").await;
    let err = Deps::from_sdk_config(&cfg, &sdk).err().expect("CONTEXT_KEY_PARAMETER is required");
    assert!(err.to_string().contains("CONTEXT_KEY_PARAMETER"), "{err}");
}
