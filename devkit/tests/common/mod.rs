//! What the stand-in's test binaries share: the example pool's clients and requests made the way the broker makes them.
#![allow(dead_code, unused_imports)]

pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use base64::Engine as _;
pub use reqwest::StatusCode;
pub use serde_json::Value;
pub use tb_devkit::cognito::{
    verify_access_token_with_jwks, CognitoStandin, JwkSet, StandinClient, StandinConfig, ThrottleStyle, VerifyError,
};

pub const ORDER_ID: &str = "orderclient0000000000000001";
pub const ORDER_SECRET: &str = "ordersecret0000000000000000000000000000000000000001";
pub const REPORT_ID: &str = "reportclient000000000000001";
pub const REPORT_SECRET: &str = "reportsecret000000000000000000000000000000000000001";
pub const ALL: &str = "customer-api/read customer-api/write customer-api/admin";

/// The example pool: an order service with read/write/admin and a reporting service with read only.
pub fn example_pool_config() -> StandinConfig {
    StandinConfig::new(vec![
        StandinClient::new(ORDER_ID, ORDER_SECRET, &["customer-api/read", "customer-api/write", "customer-api/admin"]),
        StandinClient::new(REPORT_ID, REPORT_SECRET, &["customer-api/read"]),
    ])
}

pub async fn start() -> CognitoStandin {
    CognitoStandin::start(example_pool_config()).await.unwrap()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// A Basic client_credentials request with an optional scope.
pub async fn basic_request(s: &CognitoStandin, id: &str, secret: &str, scope: Option<&str>) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    http().post(s.token_url()).basic_auth(id, Some(secret)).form(&form).send().await.unwrap()
}

/// A request with a raw form body and optional Basic credentials.
pub async fn raw_request(s: &CognitoStandin, basic: Option<(&str, &str)>, body: &str) -> reqwest::Response {
    let mut req =
        http().post(s.token_url()).header("content-type", "application/x-www-form-urlencoded").body(body.to_owned());
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

pub async fn status_and_json(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub async fn expect_error(resp: reqwest::Response, status: StatusCode, code: &str) {
    let (got_status, body) = status_and_json(resp).await;
    assert_eq!(got_status, status, "body: {body}");
    assert_eq!(body, serde_json::json!({ "error": code }));
}

pub async fn fetch_jwks(url: &str) -> JwkSet {
    http().get(url).send().await.unwrap().error_for_status().unwrap().json().await.unwrap()
}

pub fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A client-token (`ALLOW_CLIENT_TOKEN_AUTH`) app client of the example pool: read and write.
pub const M2M_ID: &str = "m2mclient000000000000000001";
pub const M2M_SECRET: &str = "m2msecret00000000000000000000000000000000000000001";

/// The example pool plus [`M2M_ID`], which gets its tokens from `GetClientToken` only.
pub fn client_token_pool_config() -> StandinConfig {
    let mut cfg = example_pool_config();
    cfg.clients.push(
        StandinClient::new(M2M_ID, M2M_SECRET, &["customer-api/read", "customer-api/write"])
            .flow(tb_devkit::cognito::ClientFlow::ClientTokenAuth),
    );
    cfg
}

/// The real AWS SDK's Cognito client aimed at the stand-in, with static test credentials and a region, and no SDK
/// retries (so one call is one request; a test that wants the SDK's retries builds its own).
pub async fn cognito_sdk(s: &CognitoStandin) -> aws_sdk_cognitoidentityprovider::Client {
    let sdk = tb_devkit::moto::sdk_config_at(&s.base_url(), "us-east-1").await;
    let conf = aws_sdk_cognitoidentityprovider::config::Builder::from(&sdk)
        .retry_config(aws_sdk_cognitoidentityprovider::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_cognitoidentityprovider::Client::from_conf(conf)
}
