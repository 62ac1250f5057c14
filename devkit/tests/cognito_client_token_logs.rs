//! The stand-in's logs never carry the secret of a `GetClientToken` call, nor the token it answers. Alone in its
//! binary for the reason `cognito_logs.rs` gives: tracing caches each callsite's interest when it is first hit.

mod common;
use common::*;

use tb_shared::telemetry::CaptureWriter;
use tracing_subscriber::layer::SubscriberExt as _;

// current_thread (the default) so the thread-local subscriber also sees the server's tasks.
#[tokio::test]
async fn get_client_token_logs_carry_no_secret_and_no_token() {
    // TRACE for everything the stand-in writes; the SDK's own lines are not the stand-in's and are left out.
    let capture = CaptureWriter::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(capture.clone()))
        .with(tracing_subscriber::filter::Targets::new().with_target("tb_devkit", tracing::Level::TRACE));
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let s = CognitoStandin::start(client_token_pool_config()).await.unwrap();
    let sdk = cognito_sdk(&s).await;
    let ok = sdk.get_client_token().client_id(M2M_ID).secret(M2M_SECRET).send().await.unwrap();
    let token = ok.client_authentication_result().and_then(|r| r.access_token()).unwrap().to_owned();
    let refused = [
        (M2M_ID, "wrong-secret-value-0001"),
        ("nosuchclient000000000000001", "unknown-client-secret-0001"),
        (ORDER_ID, ORDER_SECRET),
    ];
    for (id, secret) in refused {
        sdk.get_client_token().client_id(id).secret(secret).send().await.unwrap_err();
    }
    let scoped = sdk.get_client_token().client_id(M2M_ID).secret(M2M_SECRET).scopes("customer-api/admin");
    scoped.send().await.unwrap_err();
    s.faults().fail_next(1, 500);
    sdk.get_client_token().client_id(M2M_ID).secret(M2M_SECRET).send().await.unwrap_err();
    s.shutdown().await;

    let logs = capture.contents();
    // The capture works: outcomes are logged with client ids.
    assert!(logs.contains(M2M_ID) && logs.contains("issued"), "nothing captured: {logs}");
    assert!(logs.contains("NotAuthorizedException") && logs.contains("ResourceNotFoundException"), "{logs}");
    let signature = token.rsplit('.').next().unwrap();
    for needle in [M2M_SECRET, ORDER_SECRET, "wrong-secret-value-0001", "unknown-client-secret-0001", &token, signature]
    {
        assert!(!logs.contains(needle), "a secret or token reached the logs");
    }
}
