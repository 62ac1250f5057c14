//! `brokerctl cognito rotate-secret` end to end: SSM on moto (`scripts/with-moto.sh`; these tests fail, never skip,
//! without it), the user-pool API, the token endpoint and `GetClientToken` on the Cognito stand-in, driven through
//! the real AWS SDK. On a pool that runs the project's pre-token-generation trigger (the stand-in running
//! `tb_trigger::customize` with the test context key set, which moto's SSM holds for the command), the proving grants
//! pass only with `--context-key-parameter`.
//!
//! The broker's side is modelled with the broker's own parts: `SsmCredentialSource` reads the parameter, and a
//! `CachedCredentials` with a short TTL plays a warm broker that keeps serving what it read until its cache turns
//! over. Interruptions are the command's hidden `--stop-after` flag, not a raced kill.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider::operation::add_user_pool_client_secret::AddUserPoolClientSecretError;
use aws_sdk_cognitoidentityprovider::operation::delete_user_pool_client_secret::DeleteUserPoolClientSecretError;
use aws_sdk_cognitoidentityprovider::operation::list_user_pool_client_secrets::ListUserPoolClientSecretsError;
use brokerctl::cognito::{self, rotate::pending_name, Grant};
use brokerctl::secret::{self, PutOptions};
use secrecy::{ExposeSecret, SecretString};
use tb_broker::{
    CacheConfig, CachedCredentials, ClientCredentials, CredentialSource, Credentials, SsmCredentialSource,
};
use tb_devkit::cognito::{ClientFlow, CognitoStandin, PreTokenGeneration, StandinClient, StandinConfig};
use tb_devkit::{fixtures, moto};
use tb_shared::context::claims::{self, CallerClaims};
use tb_shared::context::{AuthMethod, KeySet};

const CLIENT_ID: &str = "orders0client0id0000000001";
const FIRST_SECRET: &str = "firstsecret0000000000000000000000000000000000000001";
const APP: &str = "orders";

/// The app client's upstream mode, as its credentials JSON in SSM says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The hosted `/oauth2/token`.
    Hosted,
    /// `GetClientToken` (an `ALLOW_CLIENT_TOKEN_AUTH` app client).
    ClientToken,
}

const MODES: [Mode; 2] = [Mode::Hosted, Mode::ClientToken];

struct World {
    standin: CognitoStandin,
    ssm: aws_sdk_ssm::Client,
    cognito: aws_sdk_cognitoidentityprovider::Client,
    http: reqwest::Client,
    prefix: String,
    mode: Mode,
}

impl World {
    /// A stand-in with one app client and its credentials in SSM, written as `secret put` writes them (no secret id
    /// recorded unless `record` is given).
    async fn new(record: Option<&str>) -> Self {
        Self::start(Mode::Hosted, None, record).await
    }

    /// A pool that runs the project's trigger with the test context key set, which is also stored in SSM under
    /// [`World::key_parameter`]; the app client in `mode`.
    async fn with_trigger(mode: Mode) -> Self {
        let trigger = PreTokenGeneration::caller_claims(Default::default(), fixtures::context_key_set());
        let w = Self::start(mode, Some(trigger), None).await;
        w.put_keys(&fixtures::context_key_set()).await;
        w
    }

    async fn start(mode: Mode, trigger: Option<PreTokenGeneration>, record: Option<&str>) -> Self {
        let client = StandinClient::new(CLIENT_ID, FIRST_SECRET, &["api/read"]);
        let client = match mode {
            Mode::Hosted => client,
            Mode::ClientToken => client.flow(ClientFlow::ClientTokenAuth),
        };
        let config = StandinConfig { pre_token_generation: trigger, ..StandinConfig::new(vec![client]) };
        let standin = CognitoStandin::start(config).await.unwrap();
        let sdk = moto::sdk_config().await;
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        let cognito = cognito::client(&sdk, Some(&standin.base_url()));
        let prefix = format!("/{}", moto::unique("tb-rotate"));
        let w = World { standin, ssm, cognito, http: cognito::http_client().unwrap(), prefix, mode };
        let value = SecretString::from(w.value(FIRST_SECRET));
        let opts = PutOptions { kms_key_id: None, overwrite: false, description: secret::description(record) };
        secret::put(&w.ssm, &w.name(), &value, &opts).await.unwrap();
        w
    }

    fn name(&self) -> String {
        format!("{}/{APP}", self.prefix)
    }

    fn value(&self, secret: &str) -> String {
        match self.mode {
            Mode::Hosted => format!(
                r#"{{"client_id":"{CLIENT_ID}","client_secret":"{secret}","token_url":"{}"}}"#,
                self.standin.token_url()
            ),
            Mode::ClientToken => format!(
                r#"{{"client_id":"{CLIENT_ID}","client_secret":"{secret}","upstream":"get_client_token","region":"{}","endpoint_url":"{}"}}"#,
                moto::REGION,
                self.standin.base_url()
            ),
        }
    }

    /// The SSM SecureString of the context key set, as the stack's ContextKeyParameterName names it.
    fn key_parameter(&self) -> String {
        format!("{}/context-key", self.prefix)
    }

    /// Writes `keys` to [`World::key_parameter`], as `brokerctl context-key` does.
    async fn put_keys(&self, keys: &KeySet) {
        let opts = PutOptions { kms_key_id: None, overwrite: true, description: "context key set".into() };
        secret::put(&self.ssm, &self.key_parameter(), &keys.to_document(), &opts).await.unwrap();
    }

    /// Records in SSM that the parameter holds the app client's first secret, as a finished rotation leaves it.
    async fn record_first(&self) {
        let first = self.secret_ids()[0].clone();
        let opts = PutOptions { kms_key_id: None, overwrite: true, description: secret::description(Some(&first)) };
        secret::put(&self.ssm, &self.name(), &SecretString::from(self.value(FIRST_SECRET)), &opts).await.unwrap();
    }

    fn source(&self) -> SsmCredentialSource {
        SsmCredentialSource::with_client(self.ssm.clone(), &self.prefix).unwrap()
    }

    /// What the broker reads from SSM now.
    async fn stored(&self) -> ClientCredentials {
        self.source().get(APP).await.unwrap()
    }

    async fn grant(&self, creds: &ClientCredentials) -> Grant {
        cognito::grant(&self.http, creds, None).await
    }

    /// A grant with caller claims signed with the test key set, as the broker's requests carry them.
    async fn grant_with_claims(&self, creds: &ClientCredentials) -> Grant {
        let claims = cognito::ProvingClaims::new(None, None, fixtures::context_key_set(), "test").unwrap();
        cognito::grant(&self.http, creds, Some(&claims)).await
    }

    fn secret_ids(&self) -> Vec<String> {
        self.standin.client_secret_ids(CLIENT_ID).unwrap()
    }

    async fn recorded(&self) -> Option<String> {
        let info = secret::info(&self.ssm, &self.name()).await.unwrap().unwrap();
        info.description.as_deref().and_then(secret::recorded_secret_id)
    }

    async fn version(&self) -> i64 {
        secret::info(&self.ssm, &self.name()).await.unwrap().unwrap().version
    }

    async fn pending_exists(&self) -> bool {
        secret::get(&self.ssm, &pending_name(&self.name())).await.unwrap().is_some()
    }

    /// Runs the binary: `cognito rotate-secret` for this app client with `extra` flags. It runs off the test's
    /// runtime, which serves the stand-in the binary talks to.
    async fn rotate(&self, extra: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_brokerctl"));
        cmd.args(["cognito", "rotate-secret", "--prefix", &self.prefix, "--client", APP])
            .args(["--user-pool-id", &self.standin.pool_id(), "--region", moto::REGION])
            .args(["--endpoint", &moto::endpoint(), "--cognito-endpoint", &self.standin.base_url()])
            .args(["--verify-timeout", "1s"])
            .args(extra);
        tokio::task::spawn_blocking(move || cmd.output().expect("brokerctl runs")).await.unwrap()
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The run printed none of `secrets`.
fn assert_silent(o: &Output, secrets: &[&str]) {
    let shown = text(o);
    for s in secrets {
        assert!(!shown.contains(s), "a secret was printed:\n{shown}");
    }
}

/// A warm broker: the broker's own cache (TTL 1 s) over the broker's SSM source, asked for a token every 50 ms
/// until stopped; counts grants issued and refused. A refusal is what a caller would see as a failed grant.
fn warm_broker(w: &World, stop: Arc<AtomicBool>) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let config = CacheConfig { ttl: Duration::from_secs(1), ..CacheConfig::default() };
    let cache = CachedCredentials::new(w.source(), config);
    let http = w.http.clone();
    let (ok, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (ok2, refused2) = (ok.clone(), refused.clone());
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let creds = cache.get(APP).await.expect("the broker reads its credentials");
            match cognito::grant(&http, &creds, None).await {
                Grant::Issued => ok2.fetch_add(1, Ordering::SeqCst),
                other => {
                    eprintln!("warm broker grant: {other:?}");
                    refused2.fetch_add(1, Ordering::SeqCst)
                }
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (task, ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_interrupted_twice_completes_and_grants_never_fail() {
    let w = World::new(None).await;
    let first_id = w.secret_ids()[0].clone();
    let old = w.stored().await;
    assert_eq!(w.grant(&old).await, Grant::Issued, "before");

    let stop = Arc::new(AtomicBool::new(false));
    let (broker, ok, refused) = warm_broker(&w, stop.clone());

    // Interrupted after the new secret was added to Cognito: SSM still holds the old one, which still works.
    let out = w.rotate(&["--wait", "2s", "--stop-after", "add"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_silent(&out, &[FIRST_SECRET]);
    assert_eq!(w.secret_ids().len(), 2);
    assert_eq!(w.recorded().await.as_deref(), Some(first_id.as_str()), "adopted the only secret");
    assert!(w.pending_exists().await, "the new value is staged, not lost");
    assert_eq!(w.stored().await.client_secret.expose_secret(), FIRST_SECRET);
    assert_eq!(w.grant(&w.stored().await).await, Grant::Issued, "during: after add");

    // Resumed, interrupted after the SSM write: both the new value and a broker's cached old value work.
    let out = w.rotate(&["--wait", "2s", "--stop-after", "write"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(w.standin.api_calls("AddUserPoolClientSecret"), 1, "no second add");
    let new = w.stored().await;
    let new_secret = new.client_secret.expose_secret().to_owned();
    assert_ne!(new_secret, FIRST_SECRET);
    assert_silent(&out, &[FIRST_SECRET, &new_secret]);
    let ids = w.secret_ids();
    assert_eq!(ids.len(), 2);
    let new_id = ids.iter().find(|i| **i != first_id).unwrap().clone();
    assert_eq!(w.recorded().await.as_deref(), Some(new_id.as_str()));
    assert!(w.pending_exists().await, "the staged copy goes in the next step");
    assert_eq!(w.grant(&new).await, Grant::Issued, "during: the new secret");
    assert_eq!(w.grant(&old).await, Grant::Issued, "during: the old secret until it is deleted");

    // Resumed to the end: waits out the rest of --wait, then deletes the old secret.
    let out = w.rotate(&["--wait", "2s"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_silent(&out, &[FIRST_SECRET, &new_secret]);
    assert!(text(&out).contains(&format!("{first_id} is deleted")), "{}", text(&out));
    assert_eq!(w.secret_ids(), vec![new_id.clone()]);
    assert_eq!(w.recorded().await.as_deref(), Some(new_id.as_str()));
    assert!(!w.pending_exists().await);
    assert_eq!(w.grant(&w.stored().await).await, Grant::Issued, "after: the new secret");
    assert_eq!(w.grant(&old).await, Grant::Refused, "after: the old secret is gone");
    assert_eq!(w.standin.api_calls("AddUserPoolClientSecret"), 1);
    assert_eq!(w.standin.api_calls("DeleteUserPoolClientSecret"), 1);

    // The warm broker got a token every time, before, during and after.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    broker.await.unwrap();
    assert_eq!(refused.load(Ordering::SeqCst), 0, "a warm broker's grant failed");
    assert!(ok.load(Ordering::SeqCst) > 10, "the warm broker kept asking");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interruption_after_staging_resumes_with_the_staged_secret() {
    let w = World::new(None).await;
    let out = w.rotate(&["--wait", "0s", "--stop-after", "stage"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(w.secret_ids().len(), 1, "not in Cognito yet");
    let staged = secret::get(&w.ssm, &pending_name(&w.name())).await.unwrap().unwrap();
    let staged = secret::validate(&staged).await.unwrap();

    let out = w.rotate(&["--wait", "0s"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let now = w.stored().await;
    assert_eq!(now.client_secret.expose_secret(), staged.client_secret.expose_secret(), "the staged value is used");
    assert_silent(&out, &[FIRST_SECRET, now.client_secret.expose_secret()]);
    assert_eq!(w.secret_ids().len(), 1);
    assert_eq!(w.grant(&now).await, Grant::Issued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let w = World::new(None).await;
    let version = w.version().await;
    let out = w.rotate(&["--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("plan (dry run"), "{shown}");
    assert!(shown.contains("wait 6m"), "the default wait is 6 minutes: {shown}");
    assert!(shown.contains("delete the old secret"), "{shown}");
    assert_silent(&out, &[FIRST_SECRET]);
    assert_eq!(w.version().await, version);
    assert_eq!(w.recorded().await, None);
    assert!(!w.pending_exists().await);
    assert_eq!(w.secret_ids().len(), 1);
    assert_eq!(w.standin.api_calls("AddUserPoolClientSecret"), 0);
    assert_eq!(w.standin.api_calls("DeleteUserPoolClientSecret"), 0);

    // Mid-rotation, the dry run shows what is left.
    assert_eq!(w.rotate(&["--stop-after", "write"]).await.status.code(), Some(0));
    let version = w.version().await;
    let out = w.rotate(&["--dry-run", "--wait", "1h"]).await;
    let shown = text(&out);
    assert!(!shown.contains("add the staged secret"), "{shown}");
    assert!(shown.contains("delete the old secret"), "{shown}");
    assert_eq!(w.version().await, version);
    assert_eq!(w.secret_ids().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_it_did_not_make_are_refused_without_changes() {
    // Two secrets and SSM does not record which one it holds.
    let w = World::new(None).await;
    let other = SecretString::from("anothersecret000000000000000000000000".to_owned());
    cognito::add_secret(&w.cognito, &w.standin.pool_id(), CLIENT_ID, &other).await.unwrap();
    let version = w.version().await;
    let out = w.rotate(&["--wait", "0s"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("does not record which one"), "{}", text(&out));
    assert_eq!((w.version().await, w.secret_ids().len()), (version, 2));

    // SSM records its secret, and a newer one was added by someone else: its value is unknown, so it is not used,
    // and the secret SSM holds is not deleted.
    let w = World::new(None).await;
    let first = w.secret_ids()[0].clone();
    let w = {
        let opts = PutOptions { kms_key_id: None, overwrite: true, description: secret::description(Some(&first)) };
        secret::put(&w.ssm, &w.name(), &SecretString::from(w.value(FIRST_SECRET)), &opts).await.unwrap();
        w
    };
    cognito::add_secret(&w.cognito, &w.standin.pool_id(), CLIENT_ID, &other).await.unwrap();
    let out = w.rotate(&["--wait", "0s"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not added by this command"), "{}", text(&out));
    assert_eq!(w.secret_ids().len(), 2);
    assert_eq!(w.grant(&w.stored().await).await, Grant::Issued);

    // SSM holds a secret Cognito refuses: rotating would not help.
    let w = World::new(None).await;
    w.standin.set_secret(CLIENT_ID, "replacedsecret00000000000000000000000");
    let out = w.rotate(&["--wait", "0s"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("refuses the credentials"), "{}", text(&out));
    assert_eq!(w.recorded().await, None);
    assert_eq!(w.standin.api_calls("AddUserPoolClientSecret"), 0);
}

#[tokio::test]
async fn the_standin_answers_the_user_pool_api_as_cognito_does() {
    let w = World::new(None).await;
    let pool = w.standin.pool_id();
    let c = &w.cognito;

    let listed = cognito::list_secrets(c, &pool, CLIENT_ID).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].id.starts_with(&format!("{CLIENT_ID}--")) && listed[0].created.is_some());

    // A generated secret is returned once; a custom one is not returned.
    let out = c.add_user_pool_client_secret().user_pool_id(&pool).client_id(CLIENT_ID).send().await.unwrap();
    let d = out.client_secret_descriptor().unwrap();
    let generated = d.client_secret_value().unwrap().to_owned();
    assert!(!format!("{d:?}").contains(&generated), "the SDK redacts the value in Debug");
    let second = d.client_secret_id().unwrap().to_owned();
    let creds = |s: &str| {
        ClientCredentials::token_endpoint(
            CLIENT_ID,
            SecretString::from(s.to_owned()),
            w.standin.token_url().parse().unwrap(),
        )
    };
    assert_eq!(w.grant(&creds(&generated)).await, Grant::Issued);
    assert_eq!(w.grant(&creds(FIRST_SECRET)).await, Grant::Issued);
    let listed = cognito::list_secrets(c, &pool, CLIENT_ID).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![listed[0].id.as_str(), &second]);

    let third = c.add_user_pool_client_secret().user_pool_id(&pool).client_id(CLIENT_ID).send().await.unwrap_err();
    assert!(matches!(third.into_service_error(), AddUserPoolClientSecretError::LimitExceededException(_)));
    let bad = c
        .add_user_pool_client_secret()
        .user_pool_id(&pool)
        .client_id(CLIENT_ID)
        .client_secret("short")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(bad.into_service_error(), AddUserPoolClientSecretError::InvalidParameterException(_)));

    let unknown_pool = c.list_user_pool_client_secrets().user_pool_id("us-east-1_nope").client_id(CLIENT_ID).send();
    let e = unknown_pool.await.unwrap_err().into_service_error();
    assert!(matches!(e, ListUserPoolClientSecretsError::ResourceNotFoundException(_)), "{e:?}");
    let unknown_client = c.list_user_pool_client_secrets().user_pool_id(&pool).client_id("nosuchclient").send();
    let e = unknown_client.await.unwrap_err().into_service_error();
    assert!(matches!(e, ListUserPoolClientSecretsError::ResourceNotFoundException(_)), "{e:?}");

    let del = |id: String| {
        c.delete_user_pool_client_secret().user_pool_id(&pool).client_id(CLIENT_ID).client_secret_id(id).send()
    };
    let e = del(format!("{CLIENT_ID}--1")).await.unwrap_err().into_service_error();
    assert!(matches!(e, DeleteUserPoolClientSecretError::ResourceNotFoundException(_)), "{e:?}");
    del(listed[0].id.clone()).await.unwrap();
    assert_eq!(w.grant(&creds(FIRST_SECRET)).await, Grant::Refused, "a deleted secret stops working");
    assert_eq!(w.grant(&creds(&generated)).await, Grant::Issued);
    let e = del(second.clone()).await.unwrap_err().into_service_error();
    assert!(matches!(e, DeleteUserPoolClientSecretError::InvalidParameterException(_)), "{e:?}");
    assert_eq!(w.secret_ids(), vec![second]);
}

/// Key material a run must never print: the test key in every encoding a document or a log could hold it in.
fn key_material() -> Vec<String> {
    use base64::Engine as _;
    let key = fixtures::CONTEXT_KEY_BYTES;
    vec![
        base64::engine::general_purpose::STANDARD.encode(key),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
        String::from_utf8_lossy(&key).into_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_context_key_parameter_a_pool_with_the_trigger_rotates_in_either_mode() {
    for mode in MODES {
        let w = World::with_trigger(mode).await;
        let old = w.stored().await;
        assert!(matches!(w.grant(&old).await, Grant::TriggerRefused(_)), "{mode:?}: the trigger is on");
        let first_id = w.secret_ids()[0].clone();

        let out = w.rotate(&["--wait", "0s", "--context-key-parameter", &w.key_parameter()]).await;
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(0), "{mode:?}: {shown}");
        assert!(shown.contains(&format!("{first_id} is deleted")), "{mode:?}: {shown}");
        assert!(shown.contains("with caller claims signed with the key set in"), "{mode:?}: {shown}");
        let new = w.stored().await;
        let new_secret = new.client_secret.expose_secret().to_owned();
        assert_ne!(new_secret, FIRST_SECRET);
        assert_silent(&out, &[FIRST_SECRET, &new_secret]);
        assert_silent(&out, &key_material().iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!shown.contains(claims::META_MAC), "{mode:?}: no metadata is printed: {shown}");
        assert_eq!(w.secret_ids().len(), 1, "{mode:?}");
        assert!(!w.pending_exists().await, "{mode:?}");
        // The checks passed the trigger: the current secret, the staged one and the written one each got a token.
        assert!(w.standin.tokens_issued() >= 3, "{mode:?}: {} tokens", w.standin.tokens_issued());
        assert_eq!(w.grant_with_claims(&new).await, Grant::Issued, "{mode:?}: the new secret");
        assert_eq!(w.grant_with_claims(&old).await, Grant::Refused, "{mode:?}: the old secret is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proving_claims_name_the_caller_and_the_policy_version_and_bind_nothing() {
    // The trigger here checks the metadata as the project's trigger does (the same verify, the same key set) and
    // records what it verified.
    let seen: Arc<std::sync::Mutex<Vec<CallerClaims>>> = Arc::default();
    let record = seen.clone();
    let trigger = PreTokenGeneration::from_fn(move |event| {
        let metadata: std::collections::HashMap<String, String> =
            serde_json::from_value(event["request"]["clientMetadata"].clone()).map_err(|_| "metadata_missing")?;
        let client = event["callerContext"]["clientId"].as_str().unwrap_or_default();
        let verified = claims::verify(&metadata, client, &fixtures::context_key_set(), std::time::SystemTime::now())
            .map_err(|e| e.reason().to_owned())?;
        record.lock().unwrap().push(verified);
        Ok(event)
    });
    let w = World::start(Mode::ClientToken, Some(trigger), None).await;
    w.put_keys(&fixtures::context_key_set()).await;
    let caller = fixtures::reporting_caller(10).replace("cognito_client: reporting", &format!("cognito_client: {APP}"));
    let policy = fixtures::write_policy(&fixtures::policy_yaml(&[&caller]));
    let version = tb_shared::policy::Policy::load(policy.path()).unwrap().version;

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_brokerctl"));
    cmd.args(["cognito", "rotate-secret", "--prefix", &w.prefix, "--caller", fixtures::REPORTING_CALLER])
        .arg("--policy")
        .arg(policy.path())
        .args(["--user-pool-id", &w.standin.pool_id(), "--region", moto::REGION])
        .args(["--endpoint", &moto::endpoint(), "--cognito-endpoint", &w.standin.base_url()])
        .args(["--verify-timeout", "1s", "--wait", "0s", "--context-key-parameter", &w.key_parameter()]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 3, "every check carried claims: {}", seen.len());
    for c in seen.iter() {
        assert_eq!(c.context.caller_id.as_str(), fixtures::REPORTING_CALLER);
        assert_eq!(c.context.auth_method, AuthMethod::Jwt);
        assert_eq!(c.context.credential_fingerprint, "brokerctl-rotate-secret");
        assert!(!claims::is_thumbprint(&c.context.credential_fingerprint));
        assert_eq!(c.context.policy_version, version);
        assert_eq!(c.cert_thumbprint, None, "a proving grant's token is never bound");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_a_pool_with_the_trigger_stops_with_a_hint_and_changes_nothing() {
    for mode in MODES {
        // The first rotation (nothing recorded) and a later one (the parameter records its secret) both stop at the
        // first check, before any secret is staged or added.
        for recorded in [false, true] {
            let w = World::with_trigger(mode).await;
            if recorded {
                w.record_first().await;
            }
            let (version, record) = (w.version().await, w.recorded().await);
            let out = w.rotate(&["--wait", "0s"]).await;
            let shown = text(&out);
            assert_eq!(out.status.code(), Some(2), "{mode:?} {recorded}: {shown}");
            assert!(shown.contains("runs a pre-token-generation trigger"), "{mode:?} {recorded}: {shown}");
            assert!(shown.contains("--context-key-parameter"), "{mode:?} {recorded}: {shown}");
            assert!(shown.contains("metadata_missing"), "the trigger's reason is shown: {shown}");
            assert_silent(&out, &[FIRST_SECRET]);
            assert_eq!((w.version().await, w.recorded().await), (version, record), "{mode:?} {recorded}");
            assert!(!w.pending_exists().await, "{mode:?} {recorded}: nothing staged");
            assert_eq!(w.secret_ids().len(), 1, "{mode:?} {recorded}");
            assert_eq!(w.standin.api_calls("AddUserPoolClientSecret"), 0, "{mode:?} {recorded}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_the_trigger_does_not_hold_stops_the_run_with_the_triggers_reason() {
    let w = World::with_trigger(Mode::Hosted).await;
    w.put_keys(&KeySet::single("other-1", vec![7u8; 32]).unwrap()).await;
    let version = w.version().await;
    let out = w.rotate(&["--wait", "0s", "--context-key-parameter", &w.key_parameter()]).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("although it carried caller claims signed with the key set in"), "{shown}");
    assert!(shown.contains("CONTEXT_KEY_PARAMETER") && shown.contains("mac_unknown_key"), "{shown}");
    assert_eq!(w.version().await, version);
    assert_eq!(w.standin.api_calls("AddUserPoolClientSecret"), 0);

    // A parameter that does not exist is refused before anything is read from Cognito.
    let missing = format!("{}/no-such-key", w.prefix);
    let out = w.rotate(&["--wait", "0s", "--context-key-parameter", &missing]).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains(&missing) && shown.contains("ContextKeyParameterName"), "{shown}");
    assert_eq!(w.standin.api_calls("ListUserPoolClientSecrets"), 1, "only the first run listed the secrets");
}

#[test]
fn help_explains_the_wait_and_resuming() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_brokerctl")).args(["cognito", "rotate-secret", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out);
    for needle in [
        "65m",
        "CREDENTIALS_TTL_SECONDS",
        "Resumable",
        "--dry-run",
        "Exit codes",
        "[default: 6m]",
        "--context-key-parameter",
        "pre-token-generation trigger",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    assert!(!help.contains("stop-after"), "the test-only flag is hidden");
}
