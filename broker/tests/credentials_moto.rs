//! The SSM credential source, behind the cache, against moto's emulator. Run with
//! `scripts/with-moto.sh cargo test -p tb-broker --test credentials_moto`.

mod common_moto;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_ssm::types::ParameterType;
use common_moto::*;
use secrecy::ExposeSecret;
use tb_broker::{
    CacheConfig, CachedCredentials, ClientCredentials, CredentialError, CredentialSource, Credentials, SsmConfig,
    SsmCredentialSource,
};

const PREFIX: &str = "/token-broker/cognito";

/// A unique app-client name and its parameter holding `json`.
async fn put(ssm: &aws_sdk_ssm::Client, json: &str) -> String {
    let app = unique("app");
    put_at(ssm, &app, json, ParameterType::SecureString).await;
    app
}

async fn put_at(ssm: &aws_sdk_ssm::Client, app: &str, json: &str, kind: ParameterType) {
    ssm.put_parameter().name(format!("{PREFIX}/{app}")).value(json).r#type(kind).overwrite(true).send().await.unwrap();
}

fn json(secret: &str) -> String {
    format!(
        r#"{{"client_id":"abc123","client_secret":"{secret}","token_url":"https://auth.example.com/oauth2/token"}}"#
    )
}

struct Moto {
    ssm: aws_sdk_ssm::Client,
    source: SsmCredentialSource,
}

async fn moto() -> Moto {
    let sdk = sdk_config(&moto_endpoint()).await;
    let mut config = SsmConfig::new(PREFIX);
    config.operation_timeout = Duration::from_secs(10);
    Moto { ssm: aws_sdk_ssm::Client::new(&sdk), source: SsmCredentialSource::from_sdk_config(&sdk, config).unwrap() }
}

/// SSM through a switch: while `down` is set, reads go to a source aimed at a closed loopback port (a real SDK
/// connection failure, not a simulated error). Counts the reads that reach either.
struct Switchable {
    up: SsmCredentialSource,
    down_source: SsmCredentialSource,
    down: AtomicBool,
    calls: AtomicUsize,
    delay: Duration,
}

impl Switchable {
    async fn new(up: SsmCredentialSource, delay: Duration) -> Self {
        let mut config = SsmConfig::new(PREFIX);
        config.operation_timeout = Duration::from_secs(1);
        let down_source = SsmCredentialSource::from_sdk_config(&sdk_config(&closed_endpoint()).await, config).unwrap();
        Self { up, down_source, down: AtomicBool::new(false), calls: AtomicUsize::new(0), delay }
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CredentialSource for Switchable {
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Holds the call open so that concurrent misses really overlap it.
        tokio::time::sleep(self.delay).await;
        if self.down.load(Ordering::SeqCst) {
            self.down_source.get(app_client).await
        } else {
            self.up.get(app_client).await
        }
    }
}

#[tokio::test]
async fn secure_string_is_read_decrypted() {
    let m = moto().await;
    let app = put(&m.ssm, &json("moto-secret-1")).await;
    let c = m.source.get(&app).await.unwrap();
    assert_eq!(c.client_id, "abc123");
    assert_eq!(c.client_secret.expose_secret(), "moto-secret-1");
    assert_eq!(c.upstream.to_string(), "https://auth.example.com/oauth2/token");
    let shown = format!("{c:?}");
    assert!(!shown.contains("moto-secret-1"), "Debug shows the secret: {shown}");
}

#[tokio::test]
async fn domain_prefix_and_region_form_builds_the_cognito_url() {
    let m = moto().await;
    let app =
        put(&m.ssm, r#"{"client_id":"abc","client_secret":"x","domain_prefix":"my-pool","region":"ap-southeast-2"}"#)
            .await;
    let c = m.source.get(&app).await.unwrap();
    assert_eq!(c.upstream.to_string(), "https://my-pool.auth.ap-southeast-2.amazoncognito.com/oauth2/token");
}

#[tokio::test]
async fn malformed_value_is_refused_without_the_secret() {
    let m = moto().await;
    for bad in [
        r#"{"client_id":"abc","client_secret":"leaky-secret-value""#.to_owned(),
        r#"{"client_id":"abc","client_secret":"leaky-secret-value","token_url":"http://auth.example.com/t"}"#
            .to_owned(),
        r#"{"client_id":"abc","client_secret":"leaky-secret-value","tokenurl":"https://auth.example.com/t"}"#
            .to_owned(),
        r#"{"client_id":"abc","client_secret":12345678,"token_url":"https://auth.example.com/t"}"#.to_owned(),
    ] {
        let app = put(&m.ssm, &bad).await;
        let err = m.source.get(&app).await.unwrap_err();
        assert!(matches!(err, CredentialError::Malformed(_)), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("leaky-secret-value") && !shown.contains("12345678"), "{shown}");
    }
}

#[tokio::test]
async fn missing_parameter_is_not_found_and_bad_names_never_reach_ssm() {
    let m = moto().await;
    assert_eq!(m.source.get(&unique("absent")).await.unwrap_err(), CredentialError::NotFound);
    // A name that would walk out of the prefix has no credentials.
    for name in ["../other", "a/b", "", ".."] {
        assert_eq!(m.source.get(name).await.unwrap_err(), CredentialError::NotFound, "{name}");
    }
}

#[tokio::test]
async fn plain_string_parameter_is_refused() {
    let m = moto().await;
    let app = unique("plain");
    put_at(&m.ssm, &app, &json("plain-text-secret"), ParameterType::String).await;
    assert!(matches!(m.source.get(&app).await, Err(CredentialError::Malformed(_))));
}

#[tokio::test]
async fn bad_prefix_is_refused_at_construction() {
    let sdk = sdk_config(&closed_endpoint()).await;
    for p in ["token-broker", "/token-broker/", "/", "/a//b", "/a b"] {
        assert!(SsmCredentialSource::from_sdk_config(&sdk, SsmConfig::new(p)).is_err(), "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_cold_gets_make_one_ssm_call() {
    let m = moto().await;
    let app = put(&m.ssm, &json("single-flight")).await;
    let cache = Arc::new(CachedCredentials::new(
        Switchable::new(m.source, Duration::from_millis(200)).await,
        CacheConfig::default(),
    ));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (cache, app) = (cache.clone(), app.clone());
            tokio::spawn(async move { cache.get(&app).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().client_secret.expose_secret(), "single-flight");
    }
    assert_eq!(cache.source().calls(), 1);
}

#[tokio::test]
async fn ssm_down_with_an_expired_cached_value_serves_it_within_max_stale() {
    let m = moto().await;
    let app = put(&m.ssm, &json("stale-but-good")).await;
    let config = CacheConfig {
        ttl: Duration::from_millis(200),
        max_stale: Duration::from_secs(3),
        retry_after_failure: Duration::from_millis(100),
        max_entries: 10,
    };
    let cache = CachedCredentials::new(Switchable::new(m.source, Duration::ZERO).await, config);
    cache.get(&app).await.unwrap();
    cache.source().down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await; // TTL expired
    let c = cache.get(&app).await.unwrap();
    assert_eq!(c.client_secret.expose_secret(), "stale-but-good");
    assert_eq!(cache.source().calls(), 2, "SSM must have been tried after the TTL");
    // After ttl + max_stale the stale value is no longer good enough.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert!(matches!(cache.get(&app).await, Err(CredentialError::Unavailable(_))));
}

#[tokio::test]
async fn ssm_down_and_cold_is_unavailable_quickly() {
    let sdk = sdk_config(&closed_endpoint()).await;
    let mut config = SsmConfig::new(PREFIX);
    config.operation_timeout = Duration::from_secs(1);
    let cache =
        CachedCredentials::new(SsmCredentialSource::from_sdk_config(&sdk, config).unwrap(), CacheConfig::default());
    let started = Instant::now();
    assert!(matches!(cache.get("orders").await, Err(CredentialError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn ssm_silent_is_unavailable_within_the_operation_timeout() {
    let (endpoint, _listener) = silent_endpoint();
    let mut config = SsmConfig::new(PREFIX);
    config.operation_timeout = Duration::from_secs(1);
    let source = SsmCredentialSource::from_sdk_config(&sdk_config(&endpoint).await, config).unwrap();
    let started = Instant::now();
    assert!(matches!(source.get("orders").await, Err(CredentialError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_after_rotation_returns_the_new_secret_with_one_call() {
    let m = moto().await;
    let app = put(&m.ssm, &json("before-rotation")).await;
    let ssm = m.ssm.clone();
    let cache = Arc::new(CachedCredentials::new(
        Switchable::new(m.source, Duration::from_millis(100)).await,
        CacheConfig::default(),
    ));
    let old = cache.get(&app).await.unwrap();
    put_at(&ssm, &app, &json("after-rotation"), ParameterType::SecureString).await;
    assert_eq!(cache.get(&app).await.unwrap().client_secret.expose_secret(), "before-rotation", "cached");

    // Ten requests were refused by Cognito with the old secret at once: one refetch serves them all.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (cache, app, old) = (cache.clone(), app.clone(), old.clone());
            tokio::spawn(async move { cache.refresh_rejected(&app, &old).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().client_secret.expose_secret(), "after-rotation");
    }
    assert_eq!(cache.source().calls(), 2, "one cold read, one refresh");
    assert_eq!(cache.get(&app).await.unwrap().client_secret.expose_secret(), "after-rotation");
}
