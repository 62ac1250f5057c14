//! The stand-in's logs never carry the secret of a `GetClientToken` call, the token it answers, nor the client
//! metadata's MAC that its pre-token-generation trigger checks. Alone in its binary for the reason `cognito_logs.rs`
//! gives: tracing caches each callsite's interest when it is first hit.

mod common;
use common::*;

use std::time::SystemTime;

use tb_devkit::cognito::PreTokenGeneration;
use tb_devkit::fixtures::context_key_set;
use tb_shared::context::claims::{sign, CallerClaims, META_MAC};
use tb_shared::context::{AuthMethod, CallerContext};
use tb_shared::telemetry::CaptureWriter;
use tracing_subscriber::layer::SubscriberExt as _;

/// Metadata signed for `client`, and a copy whose caller was changed after signing; the MAC of each.
fn metadata(client: &str) -> (std::collections::HashMap<String, String>, std::collections::HashMap<String, String>) {
    let claims = CallerClaims {
        context: CallerContext {
            caller_id: tb_shared::ids::CallerId::try_from("order-processing").unwrap(),
            auth_method: AuthMethod::Jwt,
            credential_fingerprint: "0f1e2d3c4b5a6978".to_owned(),
            policy_version: "9a8b7c6d5e4f3a2b".to_owned(),
        },
        cert_thumbprint: None,
    };
    let good: std::collections::HashMap<String, String> =
        sign(&claims, client, &context_key_set(), SystemTime::now(), Duration::from_secs(60)).into_iter().collect();
    let mut tampered = good.clone();
    tampered.insert("callerId".to_owned(), "reporting".to_owned());
    (good, tampered)
}

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

    let mut cfg = client_token_pool_config();
    cfg.pre_token_generation =
        Some(PreTokenGeneration::caller_claims(tb_trigger::ClaimPrefix::default(), context_key_set()));
    let s = CognitoStandin::start(cfg).await.unwrap();
    let sdk = cognito_sdk(&s).await;
    let (good, tampered) = metadata(M2M_ID);
    let request = sdk.get_client_token().client_id(M2M_ID).secret(M2M_SECRET);
    let ok = request.clone().set_client_metadata(Some(good.clone())).send().await.unwrap();
    request.clone().set_client_metadata(Some(tampered)).send().await.unwrap_err();
    request.clone().send().await.unwrap_err();
    // The same through /oauth2/token.
    let (oauth_good, oauth_tampered) = metadata(ORDER_ID);
    for md in [&oauth_good, &oauth_tampered] {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("aws_client_metadata", &serde_json::to_string(md).unwrap())
            .finish();
        raw_request(&s, Some((ORDER_ID, ORDER_SECRET)), &body).await;
    }
    let token = ok.client_authentication_result().and_then(|r| r.access_token()).unwrap().to_owned();
    let refused = [
        (M2M_ID, "wrong-secret-value-0001"),
        ("nosuchclient000000000000001", "unknown-client-secret-0001"),
        (ORDER_ID, ORDER_SECRET),
    ];
    for (id, secret) in refused {
        sdk.get_client_token().client_id(id).secret(secret).client_metadata("k", "v").send().await.unwrap_err();
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
    assert!(logs.contains("UserLambdaValidationException") && logs.contains("trigger failed"), "{logs}");
    let signature = token.rsplit('.').next().unwrap();
    for needle in [M2M_SECRET, ORDER_SECRET, "wrong-secret-value-0001", "unknown-client-secret-0001", &token, signature]
    {
        assert!(!logs.contains(needle), "a secret or token reached the logs");
    }
    for mac in [&good[META_MAC], &oauth_good[META_MAC]] {
        assert!(!logs.contains(mac.as_str()), "a metadata MAC reached the logs");
    }
}
