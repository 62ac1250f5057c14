//! Log and metric captures of the handler. Alone in this binary, and every test here installs its capture first:
//! tracing caches each callsite's interest when it is first hit, and a test thread without a capture that hit it
//! concurrently could cache "never" for it while another test's capture was being installed.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_logs_never_carry_the_certificate() {
    let logs = CaptureWriter::default();
    let _guard = tb_shared::telemetry::capture_default(logs.clone());
    let w = world();
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

#[tokio::test(flavor = "multi_thread")]
async fn logs_never_carry_the_token_or_authorization_header() {
    let logs = CaptureWriter::default();
    let _guard = tb_shared::telemetry::capture_default(logs.clone());
    let w = world();
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

/// Every form a key's bytes could take in a line: base64 (both alphabets), hex, and the raw bytes.
fn key_forms(key: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    vec![
        base64::engine::general_purpose::STANDARD.encode(key),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
        hex::encode(key),
        String::from_utf8_lossy(key).into_owned(),
    ]
}

/// The context keys pass through the cold start, a rotation, failed reads, an outage past the stale bound and a
/// cold start on an invalid document: no log line or metric line carries a byte of any key.
#[tokio::test(flavor = "multi_thread")]
async fn logs_never_carry_a_context_key() {
    let logs = CaptureWriter::default();
    let _guard = tb_shared::telemetry::capture_default(logs.clone());
    let source = tb_devkit::fixtures::context_keys();
    let now = Arc::new(std::sync::Mutex::new(SystemTime::now()));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || *now.lock().unwrap())
    };
    let env =
        [("TRUST_REFRESH_SECONDS", "0"), ("CONTEXT_KEYS_TTL_SECONDS", "10"), ("CONTEXT_KEYS_MAX_STALE_SECONDS", "0")];
    let keys = source.clone();
    let w = world_with(&env, move |_, _, deps| Deps { context_keys: keys, clock, ..deps });
    let at = |s: u64| {
        *now.lock().unwrap() += Duration::from_secs(s);
        *now.lock().unwrap()
    };
    let event = mtls_event(&w.cert("order-processing").pem);
    assert!(handle_request(&w.app, &event, at(0)).await.is_ok());
    let new_key = [0x5cu8; 64];
    let rotated = tb_devkit::fixtures::context_key_set().with_added("test-2", new_key.to_vec()).unwrap();
    source.set(rotated.with_signing("test-2").unwrap().to_document());
    assert!(handle_request(&w.app, &event, at(11)).await.is_ok());
    source.set_unavailable(true);
    assert_eq!(handle_request(&w.app, &event, at(11)).await, Err(Unauthorized));

    // A cold start on a document that breaks the rules, right after a key.
    let bad = format!(r#"{{"signing_key_id":"k1","keys":{{"k1":"{}" "x"}}}}"#, key_forms(&new_key)[0]);
    let policy = tb_devkit::fixtures::write_policy(&tb_devkit::fixtures::reporting_policy(3));
    let cfg = Config::read(&Env::from_pairs([("POLICY_FILE", policy.path().to_str().unwrap())])).unwrap();
    let deps = Deps {
        trust: Trust::Ignored,
        jwks: Arc::new(MemoryJwksFetcher::default()),
        metrics: MetricsSink::to_writer("TokenBroker", w.metrics.clone()),
        clock: Clock::system(),
        context_keys: Arc::new(tb_shared::context::MemoryKeySource::new(bad.into())),
    };
    let err = build(&cfg, deps).await.unwrap_err();
    tracing::error!(event = "init_failed", error = %err, "authorizer cannot start");

    let all = format!("{}{}{err:?}", logs.contents(), w.metrics.contents());
    assert!(all.contains("context keys loaded") && all.contains("context_keys_refresh_failed"), "{all}");
    assert!(all.contains("context_keys_unavailable") && all.contains("init_failed"), "{all}");
    for key in [&tb_devkit::fixtures::CONTEXT_KEY_BYTES[..], &new_key[..]] {
        for form in key_forms(key) {
            assert!(!all.contains(&form), "a context key reached the logs:\n{all}");
        }
    }
}
