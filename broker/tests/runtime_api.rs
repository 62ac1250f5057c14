//! Lambda runtime test: the real `broker` binary runs under the Runtime API emulator of `tb_devkit::runtime_api`
//! with the environment Lambda gives it, DynamoDB and SSM in moto (`AWS_ENDPOINT_URL`; the context-MAC key set is a
//! SecureString there, as `CONTEXT_KEY_PARAMETER` names it) and the Cognito stand-in as token endpoint, and answers
//! API Gateway proxy events, refusing one whose context the authorizer did not sign. A misconfigured environment is reported through
//! `/runtime/init/error` and the process exits: never a hang.
//!
//! Run through the emulator script (never skipped: without moto the token test fails and says so):
//! `scripts/with-moto.sh cargo test -p tb-broker --test runtime_api`.
//!
//! The binary is `$TB_LAMBDA_BIN_DIR/broker`, the release build, when `scripts/test.sh` runs the tests; else this
//! package's debug build (`tb_devkit::runtime_api::function_binary`).

mod common_moto;

use std::path::PathBuf;
use std::time::Duration;

use common_moto::{create_quota_table, unique};
use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use tb_devkit::cognito::{ClientFlow, CognitoStandin, PreTokenGeneration, StandinClient, StandinConfig};
use tb_devkit::events::ProxyRequestBuilder;
use tb_devkit::fixtures::{context_key_set, temp_dir, write_file};
use tb_devkit::moto;
use tb_devkit::runtime_api::{assert_init_error, function_binary, lambda_env, FunctionProcess, Outcome, RuntimeApi};

/// Cold start (SDK config, policy) and one invocation, even of a debug build on a busy 2-core machine, take well under
/// this.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The region `lambda_env` gives the function; the test's own SDK clients use the same one in moto.
const REGION: &str = "eu-west-1";
const SSM_PREFIX: &str = "/token-broker-rt/cognito";
const COGNITO_CLIENT_ID: &str = "rt0rdersclient0000000000001";

const POLICY: &str = r#"version: 1
callers:
  - id: order-processing
    identities: [{ type: san_uri, value: "spiffe://example.internal/ns/orders/sa/order-processing" }]
    cognito_client: order-processing
    allowed_scopes: [customer-api/read, customer-api/write]
    default_scopes: [customer-api/read]
    quotas: [{ per: day, limit: 2 }]
    max_token_lifetime_seconds: 3600
"#;

fn function_bin() -> PathBuf {
    function_binary("broker", env!("CARGO_BIN_EXE_broker"))
}

/// API Gateway's REST proxy event for `POST /oauth2/token` after the authorizer allowed `order-processing`.
fn proxy_event(body: &str) -> Value {
    ProxyRequestBuilder::new("order-processing", body).to_json()
}

/// The same request with the context but not the authorizer's MAC: a direct invoke of the function.
fn forged_event(body: &str) -> Value {
    ProxyRequestBuilder::new("order-processing", body).unsigned().to_json()
}

/// The same request without `requestContext.authorizer`: it did not pass through the authorizer.
fn unauthorised_event(body: &str) -> Value {
    ProxyRequestBuilder::new("order-processing", body).without_authorizer().to_json()
}

fn header<'a>(response: &'a Value, name: &str) -> Option<&'a str> {
    let headers = response.get("headers")?.as_object()?;
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str())
}

fn body_json(response: &Value) -> Value {
    let body = response["body"].as_str().unwrap_or_else(|| panic!("no string body: {response}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}"))
}

async fn invoke(api: &RuntimeApi, function: &FunctionProcess, event: &Value) -> Value {
    match api.invoke(event, INVOKE_TIMEOUT).await {
        Ok(Outcome::Response(r)) => r,
        Ok(other) => panic!("expected a proxy response, got {other:?}\n--- function output ---\n{}", function.output()),
        Err(e) => panic!("invocation failed: {e}\n--- function output ---\n{}", function.output()),
    }
}

/// The environment Lambda gives the function, with its configuration: the policy written to `dir`, the quota
/// table, the credentials prefix and the context-key parameter in moto at `endpoint`.
fn function_env(
    api: &RuntimeApi,
    dir: &tempfile::TempDir,
    table: String,
    prefix: String,
    key_parameter: String,
    endpoint: String,
) -> Vec<(String, String)> {
    let mut env = lambda_env(api, "token-broker-broker");
    env.extend(
        [
            ("POLICY_FILE", write_file(dir, "policy.yaml", POLICY)),
            ("QUOTA_TABLE", table),
            ("SSM_PREFIX", prefix),
            ("CONTEXT_KEY_PARAMETER", key_parameter),
            ("LOG_LEVEL", "info".to_owned()),
            // What Lambda's execution role gives the function; here moto's fake keys and its endpoint.
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_SESSION_TOKEN", "testing".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_events_are_answered_with_tokens_through_the_runtime_api() {
    let endpoint = moto::endpoint();
    let sdk = moto::sdk_config_at(&endpoint, REGION).await;
    let table = create_quota_table(&aws_sdk_dynamodb::Client::new(&sdk), "rt-quota").await;

    let secret = tb_devkit::cognito::random_secret();
    let cognito = CognitoStandin::start(StandinConfig::new(vec![StandinClient::new(
        COGNITO_CLIENT_ID,
        secret.clone(),
        &["customer-api/read", "customer-api/write"],
    )]))
    .await
    .unwrap();
    let prefix = format!("{SSM_PREFIX}/{}", unique("run"));
    let parameter = json!({"client_id": COGNITO_CLIENT_ID, "client_secret": secret, "token_url": cognito.token_url()});
    moto::put_secure_string(&sdk, &format!("{prefix}/order-processing"), &parameter.to_string()).await;
    // The key set the authorizer signs its context with: the devkit's test key, which the events are signed with.
    let key_parameter = format!("/token-broker-rt/{}", unique("context-key"));
    let key_document = context_key_set().to_document();
    moto::put_secure_string(&sdk, &key_parameter, key_document.expose_secret()).await;

    let dir = temp_dir("broker");
    let api = RuntimeApi::start().await.unwrap();
    let env = function_env(&api, &dir, table, prefix, key_parameter, endpoint);
    let mut function = FunctionProcess::spawn(&function_bin(), &env).unwrap();

    // A direct invoke with a context of its own making: 500, not a function error, and no quota used (the two grants
    // of the day below still go through).
    let forged = invoke(&api, &function, &forged_event("grant_type=client_credentials")).await;
    assert_eq!(forged["statusCode"], 500, "{forged}");
    assert_eq!(body_json(&forged)["error"], "server_error", "{forged}");
    assert!(body_json(&forged).get("access_token").is_none());
    assert_eq!(cognito.token_requests(), 0);

    // A token for the caller the authorizer established, with the caller's default scope.
    let ok = invoke(&api, &function, &proxy_event("grant_type=client_credentials")).await;
    assert_eq!(ok["statusCode"], 200, "{ok}\n{}", function.output());
    assert_eq!(header(&ok, "cache-control"), Some("no-store"), "{ok}");
    let grant = body_json(&ok);
    assert_eq!(grant["token_type"], "Bearer", "{grant}");
    assert_eq!(grant["scope"], "customer-api/read", "{grant}");
    assert!(grant["expires_in"].as_u64().is_some_and(|s| s > 0 && s <= 3600), "{grant}");
    let token = grant["access_token"].as_str().expect("access_token");
    let claims = cognito.verify_access_token(token).expect("a token the Cognito stand-in issued");
    assert_eq!(claims.scopes(), vec!["customer-api/read"]);

    // A requested scope within the caller's allowance; this uses the second of two grants a day (DynamoDB in moto).
    let write = invoke(&api, &function, &proxy_event("grant_type=client_credentials&scope=customer-api%2Fwrite")).await;
    assert_eq!(write["statusCode"], 200, "{write}");
    assert_eq!(body_json(&write)["scope"], "customer-api/write");

    // The third request of the day is over the quota: 429 with the OAuth error shape and Retry-After.
    let over = invoke(&api, &function, &proxy_event("grant_type=client_credentials")).await;
    assert_eq!(over["statusCode"], 429, "{over}");
    assert!(header(&over, "retry-after").is_some(), "{over}");
    assert!(body_json(&over)["error"].is_string(), "{over}");
    assert_eq!(cognito.tokens_issued(), 2);

    // Without the authorizer's context nothing is issued: a 500 answer, not a function error.
    let no_ctx = invoke(&api, &function, &unauthorised_event("grant_type=client_credentials")).await;
    assert_eq!(no_ctx["statusCode"], 500, "{no_ctx}");
    assert!(body_json(&no_ctx).get("access_token").is_none());

    assert!(function.try_exit_status().is_none(), "a warm function keeps running:\n{}", function.output());
    assert_eq!(api.init_error(Duration::ZERO).await, None);
    let logs = function.output();
    assert!(logs.contains("forged_context"), "the forged context is logged:\n{logs}");
    assert!(!logs.contains(&secret), "the client secret must never be logged");
    let key = serde_json::from_str::<Value>(key_document.expose_secret()).unwrap()["keys"]
        [tb_devkit::fixtures::CONTEXT_KEY_ID]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!logs.contains(&key), "the context key must never be logged");
    assert!(!logs.contains(token), "an access token must never be logged");
    function.kill();
}

/// The released binary's `GetClientToken` path: an app client whose credentials in SSM (moto) say
/// `"upstream": "get_client_token"`, the AWS SDK inside the binary signing with the function's environment
/// credentials and calling the Cognito stand-in, which runs the project's trigger: the token names the caller.
#[tokio::test(flavor = "multi_thread")]
async fn a_get_client_token_app_client_gets_tokens_that_name_the_caller() {
    let endpoint = moto::endpoint();
    let sdk = moto::sdk_config_at(&endpoint, REGION).await;
    let table = create_quota_table(&aws_sdk_dynamodb::Client::new(&sdk), "rt-quota-gct").await;
    let secret = tb_devkit::cognito::random_secret();
    let mut cfg = StandinConfig::new(vec![StandinClient::new(
        COGNITO_CLIENT_ID,
        secret.clone(),
        &["customer-api/read", "customer-api/write"],
    )
    .flow(ClientFlow::ClientTokenAuth)]);
    cfg.pre_token_generation =
        Some(PreTokenGeneration::caller_claims(tb_trigger::ClaimPrefix::default(), context_key_set()));
    let cognito = CognitoStandin::start(cfg).await.unwrap();
    let prefix = format!("{SSM_PREFIX}/{}", unique("gct"));
    let parameter = json!({
        "client_id": COGNITO_CLIENT_ID, "client_secret": secret, "upstream": "get_client_token",
        "region": "eu-central-1", "endpoint_url": format!("{}/", cognito.base_url().trim_end_matches('/')),
    });
    moto::put_secure_string(&sdk, &format!("{prefix}/order-processing"), &parameter.to_string()).await;
    let key_parameter = format!("/token-broker-rt/{}", unique("context-key"));
    moto::put_secure_string(&sdk, &key_parameter, context_key_set().to_document().expose_secret()).await;

    let dir = temp_dir("broker-gct");
    let api = RuntimeApi::start().await.unwrap();
    let env = function_env(&api, &dir, table, prefix, key_parameter, endpoint);
    let mut function = FunctionProcess::spawn(&function_bin(), &env).unwrap();
    let ok = invoke(&api, &function, &proxy_event("grant_type=client_credentials")).await;
    assert_eq!(ok["statusCode"], 200, "{ok}\n{}", function.output());
    let grant = body_json(&ok);
    let token = grant["access_token"].as_str().expect("access_token");
    let claims = cognito.verify_access_token(token).expect("a token the Cognito stand-in issued");
    assert_eq!(cognito.api_calls("GetClientToken"), 1);
    assert_eq!(claims.scopes(), vec!["customer-api/read"]);
    assert_eq!(claims.claim("tb:callerId"), Some(&json!("order-processing")));
    assert_eq!(claims.claim("tb:authMethod"), Some(&json!("mtls")));
    let logs = function.output();
    assert!(!logs.contains(&secret), "the client secret must never be logged");
    assert!(!logs.contains(token), "an access token must never be logged");
    function.kill();
}

/// Starts the function with `extra` configuration and expects an init error mentioning each of `mentions`
/// (case-insensitive), then an exit.
async fn expect_init_error(extra: Vec<(String, String)>, mentions: &[&str]) {
    let probe = unauthorised_event("grant_type=client_credentials");
    assert_init_error(&function_bin(), "token-broker-broker", extra, mentions, &probe, INVOKE_TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_policy_file_is_an_init_error_and_the_process_exits() {
    let dir = temp_dir("init");
    // The file name does not say "policy": the message itself must.
    let missing = dir.path().join("missing.yaml").to_string_lossy().into_owned();
    let extra = vec![
        ("POLICY_FILE".to_owned(), missing),
        ("QUOTA_TABLE".to_owned(), "quota".to_owned()),
        ("SSM_PREFIX".to_owned(), SSM_PREFIX.to_owned()),
        // Set, so the policy is what fails (it is loaded before the key set is read).
        ("CONTEXT_KEY_PARAMETER".to_owned(), "/token-broker-rt/unused".to_owned()),
    ];
    expect_init_error(extra, &["policy", "missing.yaml"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_quota_table_setting_is_an_init_error_and_the_process_exits() {
    let dir = temp_dir("init");
    let extra = vec![
        ("POLICY_FILE".to_owned(), write_file(&dir, "policy.yaml", POLICY)),
        ("SSM_PREFIX".to_owned(), SSM_PREFIX.to_owned()),
    ];
    expect_init_error(extra, &["QUOTA_TABLE"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_context_key_parameter_is_an_init_error_and_the_process_exits() {
    let dir = temp_dir("init");
    let extra = vec![
        ("POLICY_FILE".to_owned(), write_file(&dir, "policy.yaml", POLICY)),
        ("QUOTA_TABLE".to_owned(), "quota".to_owned()),
        ("SSM_PREFIX".to_owned(), SSM_PREFIX.to_owned()),
    ];
    expect_init_error(extra, &["CONTEXT_KEY_PARAMETER", "required"]).await;
}

/// `CONTEXT_KEY_PARAMETER` names a parameter that does not exist in SSM (moto): the function cannot verify any
/// context, so it does not start, and the error names the variable and the parameter.
#[tokio::test(flavor = "multi_thread")]
async fn an_absent_context_key_parameter_is_an_init_error_and_the_process_exits() {
    let endpoint = moto::endpoint();
    let dir = temp_dir("init");
    let absent = format!("/token-broker-rt/{}", unique("no-such-key"));
    // Asked here first: moto loads its SSM backend on its first call, which can take longer than the function's SSM
    // budget (much longer under emulation, as in the release check); the function must find the parameter missing,
    // not time out.
    let sdk = moto::sdk_config_at(&endpoint, REGION).await;
    let read = aws_sdk_ssm::Client::new(&sdk).get_parameter().name(&absent).send().await;
    assert!(read.is_err(), "{absent} exists in moto");
    let extra = [
        ("POLICY_FILE", write_file(&dir, "policy.yaml", POLICY)),
        ("QUOTA_TABLE", "quota".to_owned()),
        ("SSM_PREFIX", SSM_PREFIX.to_owned()),
        ("CONTEXT_KEY_PARAMETER", absent.clone()),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_SESSION_TOKEN", "testing".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec();
    expect_init_error(extra, &["CONTEXT_KEY_PARAMETER", &absent, "does not exist"]).await;
}
