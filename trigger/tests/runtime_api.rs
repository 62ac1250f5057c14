//! Lambda runtime test: the real `trigger` binary runs under the Runtime API emulator of `tb_devkit::runtime_api`
//! with the environment Lambda gives it and the context-MAC key set as an SSM SecureString in moto (as
//! `CONTEXT_KEY_PARAMETER` names it), and answers Cognito's pre-token-generation events: claims for verified
//! metadata, an invocation error (which makes Cognito fail the token) for metadata that does not verify, user
//! tokens unchanged. A misconfigured environment or an absent key set is reported through `/runtime/init/error` and
//! the process exits: never a hang.
//!
//! Run through the emulator script (never skipped: without moto these tests fail and say so):
//! `scripts/with-moto.sh cargo test -p tb-trigger --test runtime_api`.
//!
//! The binary is `$TB_LAMBDA_BIN_DIR/trigger` when that is set (the release build, or the arm64 `bootstrap` of the
//! deployment zip under `TB_LAMBDA_RUNNER` in `scripts/release-check.sh`); else this package's debug build
//! (`tb_devkit::runtime_api::function_binary`).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use tb_devkit::fixtures::{context_key_set, CONTEXT_KEY_ID};
use tb_devkit::moto::{self, unique};
use tb_devkit::runtime_api::{assert_init_error, function_binary, lambda_env, FunctionProcess, Outcome, RuntimeApi};
use tb_shared::context::claims::{sign, CLAIMS_TTL, META_MAC};
use tb_shared::context::{AuthMethod, CallerClaims, CallerContext};
use tb_shared::ids::CallerId;

/// Cold start and one invocation, even of a debug build on a busy 2-core machine or an arm64 build under qemu,
/// take well under this.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The region `lambda_env` gives the function; the test's own SDK client uses the same one in moto.
const REGION: &str = "eu-west-1";
const CLIENT: &str = "rt4trigger0client000000001";
const THUMB: &str = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";

fn function_bin() -> PathBuf {
    function_binary("trigger", env!("CARGO_BIN_EXE_trigger"))
}

/// Fake credentials and moto's endpoint, as the execution role and the emulator give them.
fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}

fn signed_metadata(client: &str) -> std::collections::BTreeMap<String, String> {
    let claims = CallerClaims {
        context: CallerContext {
            caller_id: CallerId::try_from("order-processing").unwrap(),
            auth_method: AuthMethod::Mtls,
            credential_fingerprint: THUMB.into(),
            policy_version: "9a8b7c6d5e4f3a2b".into(),
        },
        cert_thumbprint: Some(THUMB.into()),
    };
    sign(&claims, client, &context_key_set(), SystemTime::now(), CLAIMS_TTL)
}

fn event(source: &str, metadata: Value) -> Value {
    json!({
        "version": "3",
        "triggerSource": source,
        "region": REGION,
        "userPoolId": "eu-west-1_Ab12Cd34E",
        "userName": "ClientCredentials",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": CLIENT},
        "request": {"userAttributes": {}, "groupConfiguration": null, "scopes": ["orders/read"], "clientMetadata": metadata},
        "response": {"claimsAndScopeOverrideDetails": null}
    })
}

async fn invoke(api: &RuntimeApi, function: &FunctionProcess, event: &Value) -> Outcome {
    match api.invoke(event, INVOKE_TIMEOUT).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("invocation failed: {e}\n--- function output ---\n{}", function.output()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_answered_with_claims_or_refused_through_the_runtime_api() {
    let endpoint = moto::endpoint();
    let sdk = moto::sdk_config_at(&endpoint, REGION).await;
    let key_parameter = format!("/token-broker-rt/{}", unique("trigger-context-key"));
    let key_document = context_key_set().to_document();
    moto::put_secure_string(&sdk, &key_parameter, key_document.expose_secret()).await;

    let api = RuntimeApi::start().await.unwrap();
    let mut env = lambda_env(&api, "token-broker-trigger");
    env.extend([
        ("CONTEXT_KEY_PARAMETER".to_owned(), key_parameter),
        ("AWS_OPERATION_TIMEOUT_MS".to_owned(), "4000".to_owned()),
        ("LOG_LEVEL".to_owned(), "info".to_owned()),
    ]);
    env.extend(aws_env(&endpoint));
    let mut function = FunctionProcess::spawn(&function_bin(), &env).unwrap();

    // Verified metadata: the claims, cnf included, in the event handed back.
    let metadata = signed_metadata(CLIENT);
    let verified = invoke(&api, &function, &event("TokenGeneration_ClientCredentials", json!(metadata))).await;
    let Outcome::Response(out) = verified else { panic!("expected claims, got {verified:?}\n{}", function.output()) };
    let claims = &out["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"];
    assert_eq!(claims["tb:callerId"], "order-processing", "{out}");
    assert_eq!(claims["tb:authMethod"], "mtls");
    assert_eq!(claims["cnf"], json!({"x5t#S256": THUMB}));
    assert_eq!(out["callerContext"]["clientId"], CLIENT, "the rest of the event comes back");

    // Metadata signed for another app client: an invocation error, so Cognito issues nothing.
    let misdirected = signed_metadata("another-app-client");
    let refused = invoke(&api, &function, &event("TokenGeneration_ClientCredentials", json!(misdirected))).await;
    assert_eq!(
        refused,
        Outcome::Error {
            error_type: "CallerClaimsRefused".into(),
            error_message: "caller claims refused: mac_mismatch".into()
        }
    );

    // A token request that did not come through the broker: no metadata at all.
    let bare = invoke(&api, &function, &event("TokenGeneration_ClientCredentials", Value::Null)).await;
    assert!(
        matches!(&bare, Outcome::Error { error_message, .. } if error_message.ends_with("metadata_missing")),
        "{bare:?}"
    );

    // A user's token passes unchanged.
    let user = event("TokenGeneration_Authentication", json!({"note": "not ours"}));
    assert_eq!(invoke(&api, &function, &user).await, Outcome::Response(user.clone()));

    assert!(function.try_exit_status().is_none(), "a warm function keeps running:\n{}", function.output());
    assert_eq!(api.init_error(Duration::ZERO).await, None);
    let logs = function.output();
    assert!(logs.contains("\"outcome\":\"claims_added\""), "{logs}");
    assert!(logs.contains("\"reason\":\"mac_mismatch\""), "{logs}");
    assert!(logs.contains("\"ClaimsRefused\""), "the EMF lines are written:\n{logs}");
    for value in [&metadata[META_MAC], &misdirected[META_MAC], &THUMB.to_owned()] {
        assert!(!logs.contains(value.as_str()), "a MAC or thumbprint was logged:\n{logs}");
    }
    let key = serde_json::from_str::<Value>(key_document.expose_secret()).unwrap()["keys"][CONTEXT_KEY_ID]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!logs.contains(&key), "the context key must never be logged");
    function.kill();
}

async fn expect_init_error(extra: Vec<(String, String)>, mentions: &[&str]) {
    let probe = event("TokenGeneration_ClientCredentials", Value::Null);
    assert_init_error(&function_bin(), "token-broker-trigger", extra, mentions, &probe, INVOKE_TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_context_key_parameter_setting_is_an_init_error_and_the_process_exits() {
    expect_init_error(Vec::new(), &["CONTEXT_KEY_PARAMETER", "required"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reserved_claim_prefix_is_an_init_error_and_the_process_exits() {
    let extra = vec![
        ("CLAIM_PREFIX".to_owned(), "cognito:".to_owned()),
        ("CONTEXT_KEY_PARAMETER".to_owned(), "/token-broker-rt/unused".to_owned()),
    ];
    expect_init_error(extra, &["CLAIM_PREFIX", "reserved"]).await;
}

/// `CONTEXT_KEY_PARAMETER` names a parameter that does not exist in SSM (moto): nothing could be verified, so the
/// function does not start, and the error names the variable and the parameter.
#[tokio::test(flavor = "multi_thread")]
async fn an_absent_context_key_parameter_is_an_init_error_and_the_process_exits() {
    let endpoint = moto::endpoint();
    let absent = format!("/token-broker-rt/{}", unique("no-such-trigger-key"));
    // Asked here first: moto loads its SSM backend on its first call, which can take longer than the function's SSM
    // budget (much longer under emulation); the function must find the parameter missing, not time out.
    let sdk = moto::sdk_config_at(&endpoint, REGION).await;
    let read = aws_sdk_ssm::Client::new(&sdk).get_parameter().name(&absent).send().await;
    assert!(read.is_err(), "{absent} exists in moto");
    let mut extra = vec![("CONTEXT_KEY_PARAMETER".to_owned(), absent.clone())];
    extra.extend(aws_env(&endpoint));
    expect_init_error(extra, &["CONTEXT_KEY_PARAMETER", &absent, "does not exist"]).await;
}
