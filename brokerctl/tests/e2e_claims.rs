//! End-to-end: tokens that say who called, through the whole local stack (real TLS listeners, the gateway, the
//! authorizer, the broker, the Cognito stand-in running the project's pre-token-generation trigger, the sample
//! resource server). Every case runs on the embedded stores and with DynamoDB, SSM and S3 on moto.
//!
//! The example callers cover both upstream modes and both kinds of token: order-processing's app client uses the
//! hosted `/oauth2/token` and its tokens are bound to its certificate; reporting's uses `GetClientToken` and its
//! tokens are not bound; the partner's uses the hosted endpoint.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use brokerctl::devstack::{DevUpstream, UpstreamTarget};
use e2e_common::tokens::{claims_of, direct_api, direct_hosted, resource_call, secret, thumbprint, Direct};
use e2e_common::{client, client_with, dev_ca, start, token_request, Mode};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest as _;
use tb_shared::context::claims::{sign, CallerClaims, CLAIMS_TTL, META_CERT_THUMBPRINT};
use tb_shared::context::{AuthMethod, CallerContext, KeySet, KEY_CALLER_ID};
use tb_shared::ids::CallerId;

#[macro_use]
mod e2e_common;

/// The claims every token of `caller` must carry, with `fingerprint` as the credential's.
fn assert_caller_claims(
    claims: &tb_devkit::cognito::AccessTokenClaims,
    caller: &str,
    method: &str,
    fingerprint: &str,
    policy_version: &str,
) {
    assert_eq!(claims.claim("tb:callerId"), Some(&json!(caller)), "{caller}");
    assert_eq!(claims.claim("tb:authMethod"), Some(&json!(method)), "{caller}");
    assert_eq!(claims.claim("tb:credentialFingerprint"), Some(&json!(fingerprint)), "{caller}");
    assert_eq!(claims.claim("tb:policyVersion"), Some(&json!(policy_version)), "{caller}");
    for name in claims.extra.keys() {
        assert!(name.starts_with("tb:") || name == "cnf", "{caller}: the trigger added {name}");
    }
}

async fn both_upstream_modes_issue_tokens_that_name_the_caller(mode: Mode) {
    let s = start(mode, "claims", |_| {}).await;
    let standin = s.standin().unwrap();
    let version = s.policy().version.clone();
    assert_eq!(s.upstream().mode_of("order-processing"), DevUpstream::TokenEndpoint);
    assert_eq!(s.upstream().mode_of("reporting"), DevUpstream::GetClientToken);

    // order-processing: the hosted endpoint, a token bound to the certificate it asked with.
    let (st, body) = token_request(&client(&s, Some("order-processing")), &s.mtls_url(), None, None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(standin.api_calls("GetClientToken"), 0, "order-processing's app client uses /oauth2/token");
    let orders = claims_of(&s, &body);
    let orders_thumbprint = thumbprint(&s, "order-processing");
    assert_eq!(orders_thumbprint.len(), 43);
    assert_caller_claims(&orders, "order-processing", "mtls", &orders_thumbprint, &version);
    assert_eq!(orders.claim("cnf"), Some(&json!({ "x5t#S256": orders_thumbprint })));
    assert_eq!(orders.client_id, secret(&s, "order-processing").client_id);

    // reporting: GetClientToken through the broker's AWS SDK client, not bound.
    let (st, body) = token_request(&client(&s, Some("reporting")), &s.mtls_url(), None, None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(standin.api_calls("GetClientToken"), 1, "reporting's app client uses GetClientToken");
    let reporting = claims_of(&s, &body);
    assert_caller_claims(&reporting, "reporting", "mtls", &thumbprint(&s, "reporting"), &version);
    assert_eq!(reporting.claim("cnf"), None, "reporting is not bound");
    assert_eq!(reporting.client_id, secret(&s, "reporting").client_id);
    assert_eq!(standin.tokens_issued(), 2);

    if let Mode::Moto = mode {
        // The credentials in SSM say where each app client's tokens come from, as a deployment's do.
        let ssm = aws_sdk_ssm::Client::new(&tb_devkit::moto::sdk_config().await);
        let read = |app: &'static str| {
            let (ssm, name) = (ssm.clone(), format!("{}/{app}", s.aws_names().ssm_prefix));
            async move {
                let out = ssm.get_parameter().name(name).with_decryption(true).send().await.unwrap();
                serde_json::from_str::<Value>(out.parameter().and_then(|p| p.value()).unwrap()).unwrap()
            }
        };
        let reporting = read("reporting").await;
        assert_eq!(reporting["upstream"], "get_client_token");
        assert_eq!(reporting["endpoint_url"], standin.base_url());
        assert_eq!(reporting["region"], "us-east-1");
        assert_eq!(read("order-processing").await["token_url"], standin.token_url());
    }
}

async fn a_partner_gets_a_token_that_names_it_and_is_not_bound(mode: Mode) {
    let s = start(mode, "claims-partner", |_| {}).await;
    let jwt = s.state().partner_token().unwrap();
    let (st, body) = token_request(&client(&s, None), &s.partner_url(), None, Some(&jwt)).await;
    assert_eq!(st, 200, "{body}");
    let claims = claims_of(&s, &body);
    // A bearer JWT's fingerprint is the first 16 hex digits of its SHA-256: enough to match log lines, no more.
    let fingerprint = hex::encode(&sha2::Sha256::digest(jwt.as_bytes())[..8]);
    assert_caller_claims(&claims, "partner-acme", "jwt", &fingerprint, &s.policy().version);
    assert_eq!(claims.claim("cnf"), None, "a partner's token is never bound");
    // And it is served like any unbound token, on either listener.
    let token = body["access_token"].as_str().unwrap();
    let (st, _, body) =
        resource_call(&client(&s, None), Method::GET, format!("{}/customers", s.resource_url()), token).await;
    assert_eq!(st, 200, "{body}");
}

async fn a_bound_token_is_served_only_with_its_certificate(mode: Mode) {
    let s = start(mode, "claims-bound", |_| {}).await;
    let orders = client(&s, Some("order-processing"));
    let (st, body) = token_request(&orders, &s.mtls_url(), Some("customer-api/read customer-api/admin"), None).await;
    assert_eq!(st, 200, "{body}");
    let bound = body["access_token"].as_str().unwrap().to_owned();
    let (get, delete) =
        (format!("{}/customers", s.resource_mtls_url()), format!("{}/customers/123", s.resource_mtls_url()));

    // With the certificate it was issued for, on the mTLS listener: served, scopes and all.
    let (st, _, body) = resource_call(&orders, Method::GET, get.clone(), &bound).await;
    assert_eq!(st, 200, "{body}");
    let (st, _, body) = resource_call(&orders, Method::DELETE, delete.clone(), &bound).await;
    assert_eq!((st, body["deleted"].as_str()), (200, Some("123")), "{body}");

    // Another caller's certificate, a second certificate of the same caller (which the authorizer would accept as
    // order-processing), no certificate, and the plain listener: each a 401 invalid_token, before scopes count.
    let twin = dev_ca(&s)
        .issue_client()
        .cn("order-processing")
        .san_uri(brokerctl::devstack::CLIENTS[0].san_uri.unwrap())
        .build()
        .unwrap();
    let plain = format!("{}/customers/123", s.resource_url());
    for (what, c, url) in [
        ("reporting's certificate", client(&s, Some("reporting")), delete.clone()),
        ("another certificate of order-processing", client_with(&s, &twin), delete.clone()),
        ("no certificate", client(&s, None), delete.clone()),
        ("the plain listener", client(&s, Some("order-processing")), plain),
    ] {
        let (st, www, body) = resource_call(&c, Method::DELETE, url, &bound).await;
        assert_eq!((st, body["error"].as_str()), (401, Some("invalid_token")), "{what}: {body}");
        assert!(www.contains("error=\"invalid_token\""), "{what}: {www}");
    }

    // The second certificate gets a token of its own, bound to it and not to the first.
    let (st, body) = token_request(&client_with(&s, &twin), &s.mtls_url(), None, None).await;
    assert_eq!(st, 200, "{body}");
    let twin_thumbprint = tb_resource::certificate_thumbprint(&twin.der);
    assert_eq!(claims_of(&s, &body).claim("cnf"), Some(&json!({ "x5t#S256": twin_thumbprint })));
    assert_ne!(twin_thumbprint, thumbprint(&s, "order-processing"));

    // An unbound token (reporting's) works as before: on the plain listener, and on the mTLS one with any
    // certificate of the stack's CA or none.
    let (st, body) = token_request(&client(&s, Some("reporting")), &s.mtls_url(), None, None).await;
    assert_eq!(st, 200, "{body}");
    let unbound = body["access_token"].as_str().unwrap().to_owned();
    for (what, c, url) in [
        ("plain", client(&s, None), format!("{}/customers", s.resource_url())),
        ("mTLS, its own certificate", client(&s, Some("reporting")), get.clone()),
        ("mTLS, another certificate", client(&s, Some("order-processing")), get.clone()),
        ("mTLS, no certificate", client(&s, None), get.clone()),
    ] {
        let (st, _, body) = resource_call(&c, Method::GET, url, &unbound).await;
        assert_eq!(st, 200, "{what}: {body}");
    }
    let (st, _, body) = resource_call(&client(&s, Some("reporting")), Method::DELETE, delete, &unbound).await;
    assert_eq!((st, body["error"].as_str()), (403, Some("insufficient_scope")), "{body}");
}

/// Caller claims for `caller` as the broker would sign them, the thumbprint given for a bound caller.
fn caller_claims(caller: &str, fingerprint: &str, policy_version: &str, bound: bool) -> CallerClaims {
    CallerClaims {
        context: CallerContext {
            caller_id: CallerId::try_from(caller).unwrap(),
            auth_method: AuthMethod::Mtls,
            credential_fingerprint: fingerprint.to_owned(),
            policy_version: policy_version.to_owned(),
        },
        cert_thumbprint: bound.then(|| fingerprint.to_owned()),
    }
}

async fn metadata_not_made_by_the_broker_is_refused_at_both_entry_points(mode: Mode) {
    let s = start(mode, "claims-tamper", |_| {}).await;
    let standin = s.standin().unwrap();
    let keys = s.context_key_set();
    let version = s.policy().version.clone();
    let now = SystemTime::now();
    let client_id = |app: &str| secret(&s, app).client_id.clone();
    // Someone holding order-processing's app-client secret calls /oauth2/token; someone holding reporting's calls
    // GetClientToken (each app client has one entry point, as in Cognito).
    for (app, other_app) in [("order-processing", "reporting"), ("reporting", "order-processing")] {
        let direct = |metadata: Option<BTreeMap<String, String>>| {
            let s = &s;
            async move {
                match s.upstream().mode_of(app) {
                    DevUpstream::TokenEndpoint => direct_hosted(s, app, metadata.as_ref()).await,
                    DevUpstream::GetClientToken => direct_api(s, app, metadata.as_ref()).await,
                }
            }
        };
        let refusal = match s.upstream().mode_of(app) {
            DevUpstream::TokenEndpoint => "400 invalid_request",
            DevUpstream::GetClientToken => "UserLambdaValidationException",
        };
        let own = caller_claims(app, &thumbprint(&s, app), &version, false);
        let genuine = sign(&own, &client_id(app), keys, now, CLAIMS_TTL);

        // The control: metadata the broker would have made for this app client is believed, so the refusals below
        // are the trigger's verdict on the tampering, not a broken direct call.
        let before = standin.tokens_issued();
        match direct(Some(genuine.clone())).await {
            Direct::Token(t) => {
                let claims = standin.verify_access_token(&t).unwrap();
                assert_eq!(claims.claim("tb:callerId"), Some(&json!(app)), "{app}: control");
            }
            Direct::Refused(e) => panic!("{app}: genuine metadata was refused: {e}"),
        }
        assert_eq!(standin.tokens_issued(), before + 1);

        let mut another_caller = genuine.clone();
        another_caller.insert(KEY_CALLER_ID.into(), other_app.into());
        let mut bound_by_the_caller = genuine.clone();
        bound_by_the_caller.insert(META_CERT_THUMBPRINT.into(), thumbprint(&s, other_app));
        let wrong_key = KeySet::single(keys.signing().id(), b"not the stack's key, thirty-two bytes".to_vec()).unwrap();
        let cases = [
            ("(a) no metadata", None),
            ("(b) a genuine map with callerId changed to another caller", Some(another_caller)),
            (
                "(b) another caller's claims signed with a key the stack does not hold",
                Some(sign(
                    &caller_claims(other_app, &thumbprint(&s, other_app), &version, false),
                    &client_id(app),
                    &wrong_key,
                    now,
                    CLAIMS_TTL,
                )),
            ),
            ("(b) a genuine map with a certificate binding added", Some(bound_by_the_caller)),
            (
                "(c) genuine metadata signed for the other app client",
                Some(sign(&own, &client_id(other_app), keys, now, CLAIMS_TTL)),
            ),
            (
                "(c) the other caller's genuine metadata, made for its own app client",
                Some(sign(
                    &caller_claims(other_app, &thumbprint(&s, other_app), &version, false),
                    &client_id(other_app),
                    keys,
                    now,
                    CLAIMS_TTL,
                )),
            ),
            (
                "expired genuine metadata",
                Some(sign(&own, &client_id(app), keys, now - Duration::from_secs(600), CLAIMS_TTL)),
            ),
        ];
        for (what, metadata) in cases {
            let before = standin.tokens_issued();
            match direct(metadata).await {
                Direct::Token(_) => panic!("{app}: {what}: a token was issued"),
                Direct::Refused(e) => assert_eq!(e, refusal, "{app}: {what}"),
            }
            assert_eq!(standin.tokens_issued(), before, "{app}: {what}: a token was issued");
        }
    }
}

both!(
    both_upstream_modes_issue_tokens_that_name_the_caller,
    a_partner_gets_a_token_that_names_it_and_is_not_bound,
    a_bound_token_is_served_only_with_its_certificate,
    metadata_not_made_by_the_broker_is_refused_at_both_entry_points,
);

/// With `--token-url` the stack configures only what can work with a real token endpoint: every app client uses it
/// (reporting included), and no trigger runs, so a pool without one issues tokens without caller claims or `cnf`
/// (the broker still sends its signed metadata, which such a pool ignores). The printout shows no claims or
/// bound-token demo, which could not work there, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_token_endpoint_gets_every_app_client_and_no_trigger() {
    use tb_devkit::cognito::{CognitoStandin, StandinClient, StandinConfig};
    let dir = tempfile::Builder::new().prefix("brokerctl-e2e-real-endpoint-").tempdir().unwrap();
    let state = brokerctl::devstack::DevState::open(dir.path()).unwrap();
    // A user pool of its own, without a trigger, whose OAuth app clients have the state directory's secrets.
    let clients = state
        .secrets
        .iter()
        .map(|s| {
            let app = brokerctl::devstack::APP_CLIENTS.iter().find(|a| a.name == s.app_client).unwrap();
            StandinClient::new(&s.client_id, &s.client_secret, app.scopes)
                .token_validity(Duration::from_secs(app.token_validity_secs))
        })
        .collect();
    let pool = CognitoStandin::start(StandinConfig::new(clients)).await.unwrap();
    let opts = brokerctl::devstack::DevOptions {
        state_dir: dir.path().to_path_buf(),
        token_url: Some(pool.token_url()),
        ..Default::default()
    };
    let s = brokerctl::devstack::DevStack::start(opts).await.unwrap();
    assert!(s.standin().is_none());
    assert!(matches!(s.upstream(), UpstreamTarget::Real { .. }));
    assert_eq!(s.upstream().mode_of("reporting"), DevUpstream::TokenEndpoint);
    for caller in ["order-processing", "reporting"] {
        let (st, body) = token_request(&client(&s, Some(caller)), &s.mtls_url(), None, None).await;
        assert_eq!(st, 200, "{caller}: {body}");
        let claims = pool.verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
        assert!(claims.extra.is_empty(), "{caller}: {:?}", claims.extra);
    }
    assert_eq!(pool.api_calls("GetClientToken"), 0);
    assert_eq!(pool.tokens_issued(), 2);
    let printed = s.curl_commands();
    assert!(
        printed.contains("--token-url") && !printed.contains("token_claims") && !printed.contains("BOUND="),
        "{printed}"
    );
    assert!(!printed.contains("GetClientToken"), "{printed}");
}
