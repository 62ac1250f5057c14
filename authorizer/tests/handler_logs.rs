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
