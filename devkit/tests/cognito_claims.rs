//! Client metadata on the Cognito stand-in: `aws_client_metadata` on `/oauth2/token`, `ClientMetadata` on
//! `GetClientToken`, and what the pre-token-generation trigger makes of it.

mod common;
use common::*;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
use sha2::Digest as _;
use tb_devkit::cognito::{ClientFlow, PreTokenGeneration};
use tb_devkit::fixtures::context_key_set;
use tb_shared::context::claims::{sign, CallerClaims, META_MAC};
use tb_shared::context::{AuthMethod, CallerContext, KeySet};
use tb_shared::ids::CallerId;
use tb_trigger::ClaimPrefix;

fn metadata_form(metadata: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("aws_client_metadata", metadata)
        .finish()
}

#[tokio::test]
async fn malformed_client_metadata_is_an_invalid_request() {
    let s = start().await;
    for bad in ["", "not json", "[]", r#"{"callerId":7}"#, r#"{"a":{"b":"c"}}"#, r#"{"a":"x","a":"y"}"#] {
        let resp = raw_request(&s, Some((ORDER_ID, ORDER_SECRET)), &metadata_form(bad)).await;
        expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    assert_eq!(s.tokens_issued(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn without_a_trigger_client_metadata_is_ignored() {
    let s = start().await;
    let resp =
        raw_request(&s, Some((ORDER_ID, ORDER_SECRET)), &metadata_form(r#"{"callerId":"anyone","x":"y"}"#)).await;
    let (status, body) = status_and_json(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = s.verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
    assert!(claims.extra.is_empty(), "{:?}", claims.extra);
    assert_eq!(claims.client_id, ORDER_ID);

    let sdk = cognito_sdk(&s).await;
    s.upsert_client(StandinClient::new(M2M_ID, M2M_SECRET, &["customer-api/read"]).flow(ClientFlow::ClientTokenAuth));
    let out = sdk
        .get_client_token()
        .client_id(M2M_ID)
        .secret(M2M_SECRET)
        .client_metadata("callerId", "anyone")
        .send()
        .await
        .unwrap();
    let token = out.client_authentication_result().and_then(|r| r.access_token()).unwrap();
    assert!(s.verify_access_token(token).unwrap().extra.is_empty());
    s.shutdown().await;
}

// ---- The pre-token-generation trigger ----

const CALLER: &str = "order-processing";
const POLICY_VERSION: &str = "9a8b7c6d5e4f3a2b";
const JWT_FINGERPRINT: &str = "0f1e2d3c4b5a6978";

/// An RFC 8705 thumbprint: base64url (no padding) of the SHA-256 of a certificate's DER.
fn thumbprint() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"a client certificate's DER"))
}

fn caller(bound: bool) -> CallerClaims {
    CallerClaims {
        context: CallerContext {
            caller_id: CallerId::try_from(CALLER).unwrap(),
            auth_method: if bound { AuthMethod::Mtls } else { AuthMethod::Jwt },
            credential_fingerprint: if bound { thumbprint() } else { JWT_FINGERPRINT.to_owned() },
            policy_version: POLICY_VERSION.to_owned(),
        },
        cert_thumbprint: bound.then(thumbprint),
    }
}

/// Metadata as the broker signs it for a token request for `app_client`.
fn signed_for(claims: &CallerClaims, app_client: &str) -> BTreeMap<String, String> {
    sign(claims, app_client, &context_key_set(), SystemTime::now(), Duration::from_secs(60))
}

/// The example pool and the client-token client, with the project's trigger (prefix `tb:`, the test key set).
async fn start_with_trigger() -> CognitoStandin {
    let mut cfg = client_token_pool_config();
    cfg.pre_token_generation = Some(PreTokenGeneration::caller_claims(ClaimPrefix::default(), context_key_set()));
    CognitoStandin::start(cfg).await.unwrap()
}

/// `/oauth2/token` for ORDER_ID with `metadata` (none when `None`).
async fn oauth_with(s: &CognitoStandin, metadata: Option<&BTreeMap<String, String>>) -> reqwest::Response {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(m) = metadata {
        form.append_pair("aws_client_metadata", &serde_json::to_string(m).unwrap());
    }
    raw_request(s, Some((ORDER_ID, ORDER_SECRET)), &form.finish()).await
}

/// `GetClientToken` for M2M_ID with `metadata` (none when `None`): the token, or the error's code and message.
async fn api_with(s: &CognitoStandin, metadata: Option<&BTreeMap<String, String>>) -> Result<String, (String, String)> {
    let sdk = cognito_sdk(s).await;
    let md: Option<HashMap<String, String>> = metadata.map(|m| m.clone().into_iter().collect());
    let out = sdk.get_client_token().client_id(M2M_ID).secret(M2M_SECRET).set_client_metadata(md).send().await;
    match out {
        Ok(o) => Ok(o.client_authentication_result().and_then(|r| r.access_token()).unwrap().to_owned()),
        Err(e) => {
            let service = e.into_service_error();
            Err((service.code().unwrap_or("").to_owned(), service.message().unwrap_or("").to_owned()))
        }
    }
}

fn assert_caller_claims(claims: &tb_devkit::cognito::AccessTokenClaims, bound: bool) {
    assert_eq!(claims.claim("tb:callerId"), Some(&Value::from(CALLER)));
    assert_eq!(claims.claim("tb:authMethod"), Some(&Value::from(if bound { "mtls" } else { "jwt" })));
    let fingerprint = if bound { thumbprint() } else { JWT_FINGERPRINT.to_owned() };
    assert_eq!(claims.claim("tb:credentialFingerprint"), Some(&Value::from(fingerprint)));
    assert_eq!(claims.claim("tb:policyVersion"), Some(&Value::from(POLICY_VERSION)));
    if bound {
        assert_eq!(claims.claim("cnf"), Some(&serde_json::json!({ "x5t#S256": thumbprint() })));
        assert_eq!(claims.extra.len(), 5, "{:?}", claims.extra);
    } else {
        assert_eq!(claims.extra.len(), 4, "{:?}", claims.extra);
    }
}

#[tokio::test]
async fn tokens_from_both_entry_points_carry_the_verified_caller_claims() {
    let s = start_with_trigger().await;
    for bound in [false, true] {
        let resp = oauth_with(&s, Some(&signed_for(&caller(bound), ORDER_ID))).await;
        let (status, body) = status_and_json(resp).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let claims = s.verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
        assert_caller_claims(&claims, bound);
        // Cognito's own claims are untouched.
        assert_eq!((claims.sub.as_str(), claims.client_id.as_str()), (ORDER_ID, ORDER_ID));
        assert_eq!(claims.scope, ALL);

        let token = api_with(&s, Some(&signed_for(&caller(bound), M2M_ID))).await.unwrap();
        let claims = s.verify_access_token(&token).unwrap();
        assert_caller_claims(&claims, bound);
        assert_eq!((claims.sub.as_str(), claims.client_id.as_str()), (M2M_ID, M2M_ID));
        assert_eq!(claims.scopes(), ["customer-api/read", "customer-api/write"]);
    }
    assert_eq!(s.tokens_issued(), 4);
    s.shutdown().await;
}

/// Metadata that must not reach a token, each made from metadata signed for the right client.
fn tampered(app_client: &str, other_client: &str) -> Vec<(&'static str, Option<BTreeMap<String, String>>)> {
    let good = signed_for(&caller(false), app_client);
    let with = |k: &str, v: &str| {
        let mut m = good.clone();
        m.insert(k.to_owned(), v.to_owned());
        Some(m)
    };
    let mut no_mac = good.clone();
    no_mac.remove(META_MAC);
    let other_key = KeySet::single("test-1", b"another-key-of-thirty-two-bytes!".to_vec()).unwrap();
    vec![
        ("changed caller", with("callerId", "reporting")),
        ("changed fingerprint", with("credentialFingerprint", "ffffffffffffffff")),
        ("bound after signing", with("certThumbprint", &thumbprint())),
        ("extra key", with("role", "admin")),
        ("another client's metadata", Some(signed_for(&caller(false), other_client))),
        ("no MAC", Some(no_mac)),
        ("no metadata", None),
        ("empty metadata", Some(BTreeMap::new())),
        (
            "expired",
            Some(sign(
                &caller(false),
                app_client,
                &context_key_set(),
                SystemTime::now() - Duration::from_secs(600),
                Duration::from_secs(60),
            )),
        ),
        ("another key", Some(sign(&caller(false), app_client, &other_key, SystemTime::now(), Duration::from_secs(60)))),
    ]
}

#[tokio::test]
async fn tampered_or_missing_metadata_fails_the_token_at_both_entry_points() {
    let s = start_with_trigger().await;
    for (case, metadata) in tampered(ORDER_ID, REPORT_ID) {
        let (status, body) = status_and_json(oauth_with(&s, metadata.as_ref()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(body["error"], "invalid_request", "{case}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.starts_with("PreTokenGeneration failed with error "), "{case}: {description}");
        if let Some(mac) = metadata.as_ref().and_then(|m| m.get(META_MAC)) {
            assert!(!body.to_string().contains(mac.as_str()), "{case}: the MAC is in the answer");
        }
    }
    for (case, metadata) in tampered(M2M_ID, ORDER_ID) {
        let (code, message) = api_with(&s, metadata.as_ref()).await.unwrap_err();
        assert_eq!(code, "UserLambdaValidationException", "{case}: {message}");
        assert!(message.starts_with("PreTokenGeneration failed with error "), "{case}: {message}");
        if let Some(mac) = metadata.as_ref().and_then(|m| m.get(META_MAC)) {
            assert!(!message.contains(mac.as_str()), "{case}: the MAC is in the answer");
        }
    }
    assert_eq!(s.tokens_issued(), 0);
    assert_eq!(s.token_requests(), 20);
    s.shutdown().await;
}

#[tokio::test]
async fn the_refusal_names_why() {
    let s = start_with_trigger().await;
    let (_, body) = status_and_json(oauth_with(&s, None).await).await;
    assert_eq!(body["error_description"], "PreTokenGeneration failed with error metadata_missing.");
    let mut changed = signed_for(&caller(false), ORDER_ID);
    changed.insert("callerId".to_owned(), "reporting".to_owned());
    let (_, body) = status_and_json(oauth_with(&s, Some(&changed)).await).await;
    assert_eq!(body["error_description"], "PreTokenGeneration failed with error mac_mismatch.");
    let (_, message) = api_with(&s, Some(&signed_for(&caller(false), ORDER_ID))).await.unwrap_err();
    assert_eq!(message, "PreTokenGeneration failed with error mac_mismatch.");
    s.shutdown().await;
}

#[tokio::test]
async fn the_trigger_can_be_switched_on_and_off_in_a_running_pool() {
    let s = CognitoStandin::start(client_token_pool_config()).await.unwrap();
    // Off: metadata or not, tokens as before.
    let (status, body) = status_and_json(oauth_with(&s, None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(s.verify_access_token(body["access_token"].as_str().unwrap()).unwrap().extra.is_empty());
    assert!(s.verify_access_token(&api_with(&s, None).await.unwrap()).unwrap().extra.is_empty());

    s.set_pre_token_generation(Some(PreTokenGeneration::caller_claims(ClaimPrefix::default(), context_key_set())));
    expect_status(oauth_with(&s, None).await, StatusCode::BAD_REQUEST).await;
    let token = api_with(&s, Some(&signed_for(&caller(true), M2M_ID))).await.unwrap();
    assert_caller_claims(&s.verify_access_token(&token).unwrap(), true);

    s.set_pre_token_generation(None);
    expect_status(oauth_with(&s, None).await, StatusCode::OK).await;
    s.shutdown().await;
}

async fn expect_status(resp: reqwest::Response, status: StatusCode) {
    let (got, body) = status_and_json(resp).await;
    assert_eq!(got, status, "{body}");
}

#[tokio::test]
async fn the_trigger_gets_cognitos_version_3_client_credentials_event() {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = seen.clone();
    let mut cfg = client_token_pool_config();
    cfg.issuer_path = "eu-west-1_Ab12Cd34E".to_owned();
    cfg.pre_token_generation = Some(PreTokenGeneration::from_fn(move |event| {
        record.lock().unwrap().push(event.clone());
        Ok(event)
    }));
    let s = CognitoStandin::start(cfg).await.unwrap();
    let metadata = signed_for(&caller(false), ORDER_ID);
    let resp = raw_request(
        &s,
        Some((ORDER_ID, ORDER_SECRET)),
        &form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", "customer-api/write customer-api/read")
            .append_pair("aws_client_metadata", &serde_json::to_string(&metadata).unwrap())
            .finish(),
    )
    .await;
    expect_status(resp, StatusCode::OK).await;
    api_with(&s, None).await.unwrap();

    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    let expected_common = |e: &Value, client: &str| {
        assert_eq!(e["version"], "3");
        assert_eq!(e["triggerSource"], "TokenGeneration_ClientCredentials");
        assert_eq!(e["region"], "eu-west-1");
        assert_eq!(e["userPoolId"], "eu-west-1_Ab12Cd34E");
        assert!(e["userName"].is_string());
        assert_eq!(e["callerContext"]["clientId"], client);
        assert!(e["callerContext"]["awsSdkVersion"].is_string());
        assert_eq!(e["request"]["userAttributes"], serde_json::json!({}));
        assert_eq!(e["response"], serde_json::json!({ "claimsAndScopeOverrideDetails": null }));
    };
    expected_common(&events[0], ORDER_ID);
    // The scopes being granted, in the order asked; the metadata exactly as sent.
    assert_eq!(events[0]["request"]["scopes"], serde_json::json!(["customer-api/write", "customer-api/read"]));
    assert_eq!(events[0]["request"]["clientMetadata"], serde_json::json!(metadata));
    expected_common(&events[1], M2M_ID);
    assert_eq!(events[1]["request"]["scopes"], serde_json::json!(["customer-api/read", "customer-api/write"]));
    assert!(events[1]["request"].get("clientMetadata").is_none(), "{}", events[1]);
    s.shutdown().await;
}

#[tokio::test]
async fn an_answer_is_applied_as_cognito_does_and_never_to_protected_claims() {
    let mut cfg = client_token_pool_config();
    cfg.pre_token_generation = Some(PreTokenGeneration::from_fn(|mut event| {
        event["response"]["claimsAndScopeOverrideDetails"] = serde_json::json!({
            "accessTokenGeneration": {
                "claimsToAddOrOverride": {
                    "sub": "someone-else", "client_id": "someone-else", "iss": "https://evil.example",
                    "exp": 4_000_000_000u64, "token_use": "id", "scope": "customer-api/admin", "version": 3,
                    "jti": "fixed", "username": "admin", "cognito:groups": ["admins"], "aud": "someone-else",
                    "team": { "name": "orders", "size": 4 }, "gone": "x",
                },
                "claimsToSuppress": ["gone", "iat", "auth_time"],
                "scopesToAdd": ["extra/scope", "with blank"],
                "scopesToSuppress": ["customer-api/read"],
            },
            "idTokenGeneration": { "claimsToAddOrOverride": { "ignored": "in an access token" } },
        });
        Ok(event)
    }));
    let s = CognitoStandin::start(cfg).await.unwrap();
    let (_, body) = status_and_json(oauth_with(&s, None).await).await;
    let from_oauth = s.verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
    let from_api = s.verify_access_token(&api_with(&s, None).await.unwrap()).unwrap();
    for (claims, client, scope) in [
        (&from_oauth, ORDER_ID, "customer-api/write customer-api/admin extra/scope"),
        (&from_api, M2M_ID, "customer-api/write extra/scope"),
    ] {
        assert_eq!((claims.sub.as_str(), claims.client_id.as_str()), (client, client));
        assert_eq!(claims.iss, s.issuer());
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.auth_time, claims.iat);
        assert_eq!((claims.token_use.as_str(), claims.version), ("access", 2));
        assert_ne!(claims.jti, "fixed");
        assert_eq!(claims.scope, scope);
        assert_eq!(Value::Object(claims.extra.clone()), serde_json::json!({ "team": { "name": "orders", "size": 4 } }));
    }
    s.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_answer_fails_the_token() {
    let mut cfg = client_token_pool_config();
    cfg.pre_token_generation = Some(PreTokenGeneration::from_fn(|mut event| {
        event["response"]["claimsAndScopeOverrideDetails"] =
            serde_json::json!({ "accessTokenGeneration": { "claimsToSuppress": "not a list" } });
        Ok(event)
    }));
    let s = CognitoStandin::start(cfg).await.unwrap();
    let (status, body) = status_and_json(oauth_with(&s, None).await).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &Value::from("invalid_request")), "{body}");
    let (code, _) = api_with(&s, None).await.unwrap_err();
    assert_eq!(code, "InvalidLambdaResponseException");
    assert_eq!(s.tokens_issued(), 0);
    s.shutdown().await;
}
