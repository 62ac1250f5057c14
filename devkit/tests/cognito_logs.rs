//! The stand-in's logs never carry a secret or token. Alone in its binary: tracing caches each callsite's interest
//! when it is first hit, and another test's thread without a subscriber hitting it while this test installs its
//! capture could cache "never" for it, silently dropping lines from the capture.

mod common;
use common::*;

use tb_shared::telemetry::CaptureWriter;

// current_thread (the default) so the thread-local subscriber also sees the server's tasks.
#[tokio::test]
async fn logs_carry_no_secret_and_no_token() {
    // TRACE, not the functions' DEBUG capture: the scan covers every line the stand-in could ever write.
    let capture = CaptureWriter::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Callsites first hit by other test threads with no subscriber are cached as uninterested; recompute.
    tracing::callsite::rebuild_interest_cache();

    let mut cfg = example_pool_config();
    cfg.admin_routes = true;
    let s = CognitoStandin::start(cfg).await.unwrap();
    let body: Value = basic_request(&s, ORDER_ID, ORDER_SECRET, Some("customer-api/read")).await.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    basic_request(&s, ORDER_ID, "wrong-secret-value", None).await;
    raw_request(
        &s,
        None,
        &format!("grant_type=client_credentials&client_id={REPORT_ID}&client_secret={REPORT_SECRET}"),
    )
    .await;
    let rotated = s.rotate_secret(REPORT_ID).unwrap();
    let admin: Value = http()
        .post(format!("{}/_devkit/clients/{ORDER_ID}/rotate-secret", s.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_secret = admin["client_secret"].as_str().unwrap().to_owned();
    s.shutdown().await;

    let logs = capture.contents();
    // The capture works: outcomes are logged with client ids.
    assert!(logs.contains(ORDER_ID) && logs.contains("issued"), "nothing captured: {logs}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ORDER_ID}:{ORDER_SECRET}"));
    let signature = token.rsplit('.').next().unwrap();
    for needle in
        [ORDER_SECRET, REPORT_SECRET, "wrong-secret-value", &rotated, &admin_secret, &token, signature, &basic]
    {
        assert!(!logs.contains(needle), "a secret or token reached the logs");
    }
}
