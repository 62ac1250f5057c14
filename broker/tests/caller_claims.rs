//! Tokens that say who called: the broker's caller claims through both upstream modes, the pre-token-generation
//! trigger the Cognito stand-in runs (the project's own `tb-trigger` code), certificate-bound tokens, and the
//! `GetClientToken` mode's error handling. The real handler, the stand-in over real HTTP on loopback, the real AWS SDK.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tb_broker::metric_names as names;
use tb_devkit::cognito::{PreTokenGeneration, ThrottleStyle};
use tb_shared::context::{AuthMethod, KeySet};

const GRANT: &str = "grant_type=client_credentials";
/// Two `x5t#S256` thumbprints (base64url of 32 bytes), as the authorizer writes them for two certificates.
const THUMB_A: &str = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
const THUMB_B: &str = "yA2OjvRkTkrPDl8lTP5xxJrW_DNaVqSJaG1OJbqc4xE";

async fn with(trigger: bool, client_token_apps: &'static [&'static str]) -> Harness {
    Harness::with(Options { trigger, client_token_apps, ..Options::default() }).await
}

fn claims_of(h: &Harness, r: &Reply) -> tb_devkit::cognito::AccessTokenClaims {
    assert_eq!(r.status, 200, "{}", r.body);
    h.standin.verify_access_token(r.token()).expect("a token the stand-in signed")
}

/// GIVEN the trigger installed WHEN one caller's app client uses the hosted endpoint and another's GetClientToken
/// THEN both tokens carry the caller claims under the default prefix, for the right caller, and nothing binds them.
#[tokio::test]
async fn both_upstream_modes_issue_tokens_that_name_the_caller() {
    let h = with(true, &["others"]).await;
    let hosted = claims_of(&h, &h.post("order-svc", GRANT).await);
    let api = claims_of(&h, &h.post("other-svc", GRANT).await);
    assert_eq!(h.standin.api_calls("GetClientToken"), 1, "other-svc's app client goes through the API");
    assert_eq!((hosted.client_id.as_str(), api.client_id.as_str()), ("orders-client", "others-client"));
    for (claims, caller) in [(&hosted, "order-svc"), (&api, "other-svc")] {
        assert_eq!(claims.claim("tb:callerId"), Some(&json!(caller)));
        assert_eq!(claims.claim("tb:authMethod"), Some(&json!("mtls")));
        assert_eq!(claims.claim("tb:credentialFingerprint"), Some(&json!("9f86d081884c7d65")));
        assert_eq!(claims.claim("tb:policyVersion"), Some(&json!("0123456789abcdef")));
        assert_eq!(claims.claim("cnf"), None, "{caller} is not bound");
        for name in claims.extra.keys() {
            assert!(name.starts_with("tb:"), "only prefixed claims are added: {name}");
        }
    }
    assert_eq!(api.scopes(), vec!["api/admin"]);
}

/// GIVEN a caller whose policy binds its tokens to its certificate, with token reuse on THEN each token carries the
/// thumbprint of the certificate that asked (`cnf.x5t#S256`), a token is served again only to the same
/// certificate, and another caller of the same app client (unbound) never gets a bound token, nor one of its own
/// handed to the bound caller.
#[tokio::test]
async fn a_bound_callers_tokens_carry_its_certificate_and_are_reused_only_with_it() {
    let h = with(true, &[]).await;
    let first_a = h.send(request_with_fingerprint(Some("bound-svc"), GRANT, THUMB_A)).await;
    let claims_a = claims_of(&h, &first_a);
    assert_eq!(claims_a.claim("cnf"), Some(&json!({ "x5t#S256": THUMB_A })));
    assert_eq!(claims_a.claim("tb:credentialFingerprint"), Some(&json!(THUMB_A)));

    let first_b = h.send(request_with_fingerprint(Some("bound-svc"), GRANT, THUMB_B)).await;
    assert_eq!(claims_of(&h, &first_b).claim("cnf"), Some(&json!({ "x5t#S256": THUMB_B })));
    assert_ne!(first_a.token(), first_b.token(), "another certificate never gets the first one's token");
    assert_eq!(h.standin.token_requests(), 2);

    let again_a = h.send(request_with_fingerprint(Some("bound-svc"), GRANT, THUMB_A)).await;
    assert_eq!(again_a.token(), first_a.token(), "the same certificate is served the cached token");
    assert_eq!(h.standin.token_requests(), 2);

    let twin = h.send(request_with_fingerprint(Some("bound-twin-svc"), GRANT, THUMB_A)).await;
    let twin_claims = claims_of(&h, &twin);
    assert_eq!(twin_claims.claim("cnf"), None, "the unbound caller's token is unbound");
    assert_eq!(twin_claims.claim("tb:callerId"), Some(&json!("bound-twin-svc")));
    assert_eq!(h.standin.token_requests(), 3);
    assert_eq!(h.metric_total(names::REUSE_HITS), 1.0);
}

/// GIVEN a caller with a certificate identity and a partner JWT identity, token reuse on THEN a token obtained with
/// the certificate (claims say `mtls`) is never served to a request made with the JWT, which gets its own token
/// saying `jwt`; each is then served its own.
#[tokio::test]
async fn a_token_is_reused_only_for_the_same_way_of_authenticating() {
    let h = with(true, &[]).await;
    let by_cert = h.send(request_as(Some("dual-svc"), GRANT, AuthMethod::Mtls, THUMB_A)).await;
    assert_eq!(claims_of(&h, &by_cert).claim("tb:authMethod"), Some(&json!("mtls")));
    let by_jwt = h.send(request_as(Some("dual-svc"), GRANT, AuthMethod::Jwt, "1bdfa238a01cec59")).await;
    assert_ne!(by_jwt.token(), by_cert.token());
    assert_eq!(claims_of(&h, &by_jwt).claim("tb:authMethod"), Some(&json!("jwt")));
    assert_eq!(h.standin.token_requests(), 2);
    let again = h.send(request_as(Some("dual-svc"), GRANT, AuthMethod::Jwt, "0123456789abcdef")).await;
    assert_eq!(again.token(), by_jwt.token(), "the JWT path's own token is reused");
    assert_eq!(h.standin.token_requests(), 2);
}

/// GIVEN a bound caller whose context names no certificate thumbprint (an authorizer from before binding) THEN it
/// gets 500 and Cognito is never asked: nothing is issued unbound.
#[tokio::test]
async fn a_bound_caller_without_a_thumbprint_gets_nothing() {
    let h = with(true, &[]).await;
    let r = h.post("bound-svc", GRANT).await;
    assert_error(&r, 500, "server_error");
    assert_eq!(h.standin.token_requests(), 0);
}

/// GIVEN the trigger holds other keys than the broker signs with (or metadata that does not verify for any other
/// reason) THEN Cognito fails the token in both modes and the broker answers 502 without retrying or refreshing
/// credentials; the grant is metered (the same request would fail again).
#[tokio::test]
async fn a_trigger_refusing_the_metadata_fails_the_grant_in_both_modes() {
    let h = with(true, &["others"]).await;
    let other_keys = KeySet::single("test-1", b"another-key-of-thirty-two-bytes!".to_vec()).unwrap();
    h.standin.set_pre_token_generation(Some(PreTokenGeneration::caller_claims(Default::default(), other_keys)));
    for caller in ["order-svc", "other-svc"] {
        let r = h.post(caller, GRANT).await;
        assert_error(&r, 502, "server_error");
        assert!(!r.body.contains("trigger"), "nothing internal in the answer: {}", r.body);
    }
    assert_eq!(h.standin.token_requests(), 2, "one call each: a refused token is not retried");
    assert_eq!(h.store_reads(), 2, "no credential refresh: the secret was not what Cognito refused");
    assert_eq!(h.standin.tokens_issued(), 0);
}

/// GIVEN the GetClientToken mode THEN Cognito's error types are handled like the hosted endpoint's answers:
/// internal errors and throttling are retried once and then answered 503 with Retry-After, a slow API is cut by the
/// attempt timeout, and a refused secret is read again once from the store and then fails with the alarm metric.
#[tokio::test]
async fn get_client_token_errors_are_classified_like_the_hosted_endpoints() {
    let mut h = Harness::with(Options {
        client_token_apps: &["orders"],
        attempt_timeout: Duration::from_millis(500),
        breaker_threshold: 100,
        ..Options::default()
    })
    .await;
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);

    let before = h.standin.token_requests();
    h.standin.faults().fail_next(2, 500);
    let r = h.post("order-svc", GRANT).await;
    assert_error(&r, 503, "temporarily_unavailable");
    assert!(retry_after(&r) >= 1);
    assert_eq!(h.standin.token_requests() - before, 2, "the failed request made two attempts");

    h.standin.faults().throttle_next(1, ThrottleStyle::CognitoBadRequest);
    let r = h.post("order-svc", GRANT).await;
    assert_eq!(r.status, 200, "one throttled attempt is retried: {}", r.body);

    h.standin.faults().set_delay(Duration::from_secs(2));
    let r = h.post("order-svc", GRANT).await;
    assert_error(&r, 503, "temporarily_unavailable");
    h.standin.faults().clear();
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);

    let reads = h.store_reads();
    h.rotate("orders", false);
    let refused = h.post("order-svc", GRANT).await;
    assert_error(&refused, 502, "server_error");
    assert_eq!(h.store_reads(), reads + 1, "the refused secret was read again once");
    assert_eq!(h.metric_total(names::INVALID_CLIENT_ALARM), 1.0);
}

/// GIVEN the GetClientToken mode THEN no client secret, Basic value or issued token ever reaches a log line or an
/// EMF line, and no secret reaches an answer.
#[tokio::test]
async fn get_client_token_mode_leaks_no_secret() {
    let logs = tb_shared::telemetry::CaptureWriter::default();
    let _guard = tb_shared::telemetry::capture_default(logs.clone());
    let mut h = with(true, &["orders"]).await;
    let ok = h.post("order-svc", GRANT).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    h.rotate("orders", false);
    let refused = h.post("order-svc", GRANT).await;
    let captured = format!("{} {}", logs.contents(), h.emf.contents());
    assert!(!logs.contents().is_empty(), "the capture works");
    for secret in &h.secrets {
        assert!(!captured.contains(secret.as_str()), "a client secret leaked into logs or metrics");
        assert!(!ok.body.contains(secret.as_str()) && !refused.body.contains(secret.as_str()));
    }
    assert!(!captured.contains(ok.token()), "the token is never logged");
}
