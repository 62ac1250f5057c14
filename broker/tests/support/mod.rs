//! Shared harness for the broker's acceptance tests: the real handler, the Cognito stand-in over real HTTP on
//! loopback, in-memory quota and credential stores, and captured EMF lines.
#![allow(dead_code)] // each test binary uses a subset

pub mod fleet;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use http::{HeaderMap, Method};
use lambda_runtime::{Context, LambdaEvent};
use secrecy::SecretString;
use serde_json::Value;
use tb_broker::{
    build, handle, App, CacheConfig, ClientCredentials, Config, Deps, MemoryCredentialSource, MemoryQuotaStore,
    QuotaStore, UpstreamEndpoint,
};
use tb_devkit::cognito::{ClientFlow, CognitoStandin, PreTokenGeneration, StandinClient, StandinConfig};
use tb_shared::clock::Clock;
use tb_shared::context::{sign, ApiBinding, AuthMethod, CallerContext, KeyRingConfig, KeySet, MemoryKeySource};
use tb_shared::env::Env;
use tb_shared::ids::CallerId;
use tb_shared::telemetry::{CaptureWriter, MetricsSink};

/// The policy every test runs under. Each caller exists for one kind of scenario.
pub const POLICY: &str = r#"
version: 1
settings:
  hash_caller_ids: HASH
callers:
  - id: order-svc
    identities: [{ type: san_uri, value: "spiffe://test/order-svc" }]
    cognito_client: orders
    allowed_scopes: [api/read, api/write]
    default_scopes: [api/read]
    quotas: [{ per: minute, limit: 1000 }]
    max_token_lifetime_seconds: 3600
  - id: other-svc
    identities: [{ type: san_uri, value: "spiffe://test/other-svc" }]
    cognito_client: others
    allowed_scopes: [api/admin]
    default_scopes: [api/admin]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
  - id: reuse-svc
    identities: [{ type: san_uri, value: "spiffe://test/reuse-svc" }]
    cognito_client: reusers
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
    token_reuse: true
  - id: nodefault-svc
    identities: [{ type: san_uri, value: "spiffe://test/nodefault-svc" }]
    cognito_client: orders
    allowed_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
  - id: disabled-svc
    enabled: false
    identities: [{ type: san_uri, value: "spiffe://test/disabled-svc" }]
    cognito_client: orders
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
  - id: limited-svc
    identities: [{ type: san_uri, value: "spiffe://test/limited-svc" }]
    cognito_client: limited
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: [{ per: day, limit: 3 }]
    max_token_lifetime_seconds: 3600
  - id: short-svc
    identities: [{ type: san_uri, value: "spiffe://test/short-svc" }]
    cognito_client: shortlived
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: [{ per: day, limit: 10 }]
    max_token_lifetime_seconds: 600
  - id: once-svc
    identities: [{ type: san_uri, value: "spiffe://test/once-svc" }]
    cognito_client: once
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: [{ per: day, limit: 1 }]
    max_token_lifetime_seconds: 3600
  - id: reuse-short-svc
    identities: [{ type: san_uri, value: "spiffe://test/reuse-short-svc" }]
    cognito_client: reusers
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 600
    token_reuse: true
  - id: bound-svc
    identities: [{ type: san_uri, value: "spiffe://test/bound-svc" }]
    cognito_client: bound
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
    token_reuse: true
    bind_token_to_certificate: true
  - id: bound-twin-svc
    identities: [{ type: san_uri, value: "spiffe://test/bound-twin-svc" }]
    cognito_client: bound
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
    token_reuse: true
  - id: dual-svc
    identities:
      - { type: san_uri, value: "spiffe://test/dual-svc" }
      - { type: jwt, issuer: "https://idp.test.example", subject: dual-svc }
    cognito_client: orders
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
    token_reuse: true
  - id: fleet-svc
    identities: [{ type: san_uri, value: "spiffe://test/fleet-svc" }]
    cognito_client: fleet
    allowed_scopes: [api/read, api/write]
    default_scopes: [api/read]
    quotas: [{ per: day, limit: 1000 }]
    max_token_lifetime_seconds: 3600
    token_reuse: true
    fleet_token_reuse: true
  - id: fleet-twin-svc
    identities: [{ type: san_uri, value: "spiffe://test/fleet-twin-svc" }]
    cognito_client: fleet
    allowed_scopes: [api/read, api/write]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
    token_reuse: true
    fleet_token_reuse: true
  - id: fleet-bound-svc
    identities: [{ type: san_uri, value: "spiffe://test/fleet-bound-svc" }]
    cognito_client: fleet
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
    token_reuse: true
    fleet_token_reuse: true
    bind_token_to_certificate: true
  - id: hostile-svc
    identities: [{ type: san_uri, value: "spiffe://test/hostile-svc" }]
    cognito_client: hostile
    allowed_scopes: [api/read, api/write]
    default_scopes: [api/read]
    quotas: [{ per: day, limit: 1000 }]
    max_token_lifetime_seconds: 3600
issuers:
  - issuer: https://idp.test.example
    jwks_url: https://idp.test.example/jwks.json
    audiences: [token-broker]
    algorithms: [RS256]
    max_token_age_seconds: 300
"#;

/// App client name in the policy → (Cognito client id, scopes it may request at the stand-in).
pub const APP_CLIENTS: [(&str, &str, &[&str]); 9] = [
    ("orders", "orders-client", &["api/read", "api/write"]),
    ("others", "others-client", &["api/admin"]),
    ("reusers", "reusers-client", &["api/read"]),
    ("limited", "limited-client", &["api/read"]),
    ("shortlived", "shortlived-client", &["api/read"]),
    ("once", "once-client", &["api/read"]),
    ("hostile", "hostile-client", &["api/read", "api/write"]),
    ("bound", "bound-client", &["api/read"]),
    ("fleet", "fleet-client", &["api/read", "api/write"]),
];

/// Knobs a fault test turns.
#[derive(Clone)]
pub struct Options {
    pub attempt_timeout: Duration,
    pub breaker_threshold: u32,
    pub breaker_open: Duration,
    pub credentials_cache: CacheConfig,
    pub hash_caller_ids: bool,
    /// A quota store to use instead of the harness's in-memory one (whose counters then stay untouched).
    pub quota_store: Option<Arc<dyn QuotaStore>>,
    /// How the context-key ring refreshes, instead of the configuration's defaults.
    pub context_keys: Option<KeyRingConfig>,
    /// Run the project's pre-token-generation trigger (default claim prefix, the devkit's test key) in the stand-in.
    pub trigger: bool,
    /// App clients (policy names) that get their tokens from `GetClientToken` instead of `/oauth2/token`.
    pub client_token_apps: &'static [&'static str],
}

impl Default for Options {
    fn default() -> Self {
        Options {
            attempt_timeout: Duration::from_secs(5),
            breaker_threshold: 5,
            breaker_open: Duration::from_secs(30),
            credentials_cache: CacheConfig::default(),
            hash_caller_ids: false,
            quota_store: None,
            context_keys: None,
            trigger: false,
            client_token_apps: &[],
        }
    }
}

/// A running broker in front of a running stand-in.
pub struct Harness {
    pub standin: CognitoStandin,
    pub broker: App,
    pub quotas: Arc<MemoryQuotaStore>,
    /// The credential store behind the broker's cache.
    pub store: Arc<MemoryCredentialSource>,
    /// Every EMF line the broker wrote.
    pub emf: CaptureWriter,
    /// Every client secret ever configured (initial and rotated), for leak scans.
    pub secrets: Vec<String>,
    /// The context-key store the broker reads its MAC keys from (the devkit's test key).
    pub context_keys: Arc<MemoryKeySource>,
    /// The configuration the broker was built with, for more instances ([`Harness::instance`]).
    pub cfg: Config,
    _policy_file: tempfile::NamedTempFile,
}

/// One answer, decoded.
#[derive(Debug)]
pub struct Reply {
    pub status: i64,
    pub headers: HeaderMap,
    pub body: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("<none>")
    }
    pub fn token(&self) -> &str {
        self.json["access_token"].as_str().unwrap_or("")
    }
    pub fn expires_in(&self) -> u64 {
        self.json["expires_in"].as_u64().unwrap_or(0)
    }
    /// Status and error code together, so a failing assertion shows both.
    pub fn outcome(&self) -> (i64, &str) {
        (self.status, self.json["error"].as_str().unwrap_or("-"))
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Harness {
        let clients: Vec<StandinClient> = APP_CLIENTS
            .iter()
            .map(|(app, id, scopes)| {
                let c = StandinClient::with_random_secret(*id, scopes);
                if opts.client_token_apps.contains(app) {
                    c.flow(ClientFlow::ClientTokenAuth)
                } else {
                    c
                }
            })
            .collect();
        let secrets: Vec<String> = clients.iter().map(|c| c.client_secret.clone()).collect();
        let mut standin_cfg = StandinConfig::new(clients.clone());
        if opts.trigger {
            standin_cfg.pre_token_generation = Some(PreTokenGeneration::caller_claims(
                tb_trigger::ClaimPrefix::default(),
                tb_devkit::fixtures::context_key_set(),
            ));
        }
        let standin = CognitoStandin::start(standin_cfg).await.unwrap();
        let store = Arc::new(MemoryCredentialSource::new());
        for ((app, _, _), c) in APP_CLIENTS.iter().zip(&clients) {
            let creds = if opts.client_token_apps.contains(app) {
                client_token_creds_for(&standin, &c.client_id, &c.client_secret)
            } else {
                creds_for(&standin, &c.client_id, &c.client_secret)
            };
            store.insert(app, creds);
        }
        let quotas = Arc::new(MemoryQuotaStore::new());
        let context_keys = tb_devkit::fixtures::context_keys();
        let emf = CaptureWriter::default();
        let doc = POLICY.replace("HASH", if opts.hash_caller_ids { "true" } else { "false" });
        let policy_file = tb_devkit::fixtures::write_policy(&doc);
        // Built the way the Lambda builds it: the same configuration reader and builder, other adapters.
        let mut cfg = Config::read(&Env::from_pairs([
            ("POLICY_FILE", policy_file.path().to_str().unwrap()),
            ("QUOTA_TABLE", "unused-in-memory"),
            ("SSM_PREFIX", "/unused/in-memory"),
            ("CALLER_HASH_KEY", "test-caller-hash-key-0123456789"),
            // The fleet callers need a fleet cache configured to load; the harness's own broker has none attached
            // (they reuse from memory only), the instances of `Harness::instance` get the one the test gives.
            ("TOKEN_CACHE_TABLE", "attached-by-the-test"),
            ("TOKEN_CACHE_KMS_KEY", "attached-by-the-test"),
        ]))
        .unwrap();
        cfg.upstream.attempt_timeout = opts.attempt_timeout;
        cfg.upstream.breaker_failure_threshold = opts.breaker_threshold;
        cfg.upstream.breaker_open_for = opts.breaker_open;
        cfg.credentials_cache = opts.credentials_cache.clone();
        if let Some(keys) = opts.context_keys {
            cfg.context_keys = keys;
        }
        let deps = Deps {
            quotas: opts.quota_store.clone().unwrap_or_else(|| quotas.clone()),
            credentials: store.clone(),
            metrics: MetricsSink::to_writer("TokenBrokerTest", emf.clone()),
            clock: Clock::system(),
            context_keys: context_keys.clone(),
        };
        let broker = build(&cfg, deps).await.unwrap();
        assert!(broker.upstream.use_aws_config(test_sdk_config()));
        Harness { standin, broker, quotas, store, emf, secrets, context_keys, cfg, _policy_file: policy_file }
    }

    /// Another broker instance (another warm Lambda) on the same stand-in, credentials, quota counters and metrics,
    /// with `fleet` as its fleet token cache: what K instances of the function share, and only that.
    pub async fn instance(&self, fleet: tb_broker::FleetCache) -> App {
        let deps = Deps {
            quotas: self.quotas.clone(),
            credentials: self.store.clone(),
            metrics: MetricsSink::to_writer("TokenBrokerTest", self.emf.clone()),
            clock: Clock::system(),
            context_keys: self.context_keys.clone(),
        };
        let mut app = build(&self.cfg, deps).await.unwrap();
        assert!(app.upstream.use_aws_config(test_sdk_config()));
        app.fleet = Some(fleet);
        app
    }

    /// A request sent to one instance, with a Lambda deadline 10 s away.
    pub async fn send_to(&self, app: &App, req: ApiGatewayProxyRequest) -> Reply {
        self.send_to_with_deadline(app, req, SystemTime::now() + Duration::from_secs(10)).await
    }

    pub async fn send_to_with_deadline(&self, app: &App, req: ApiGatewayProxyRequest, deadline: SystemTime) -> Reply {
        let mut ctx = Context::default();
        ctx.request_id = "lambda-req-1".into();
        ctx.deadline = deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        decode(handle(app, LambdaEvent::new(req, ctx)).await.unwrap())
    }

    /// A grant request from `caller` with `body`, through the real handler.
    pub async fn post(&self, caller: &str, body: &str) -> Reply {
        self.send(request(Some(caller), body)).await
    }

    /// Any proxy event, with a Lambda deadline 10 s away.
    pub async fn send(&self, req: ApiGatewayProxyRequest) -> Reply {
        self.send_with_deadline(req, SystemTime::now() + Duration::from_secs(10)).await
    }

    pub async fn send_with_deadline(&self, req: ApiGatewayProxyRequest, deadline: SystemTime) -> Reply {
        let mut ctx = Context::default();
        ctx.request_id = "lambda-req-1".into();
        ctx.deadline = deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        let resp = handle(&self.broker, LambdaEvent::new(req, ctx)).await.unwrap();
        decode(resp)
    }

    /// Rotates the secret of `app` at the stand-in; when `store_too`, the new secret is also put in the store (the
    /// operator did the rotation right). Returns the new secret.
    pub fn rotate(&mut self, app: &str, store_too: bool) -> String {
        let client_id = client_id_of(app);
        let secret = self.standin.rotate_secret(client_id).unwrap();
        self.secrets.push(secret.clone());
        if store_too {
            self.store.insert(app, creds_for(&self.standin, client_id, &secret));
        }
        secret
    }

    /// The count of `caller`'s first quota window now.
    pub fn charged(&self, caller: &str) -> u64 {
        let id = CallerId::try_from(caller).unwrap();
        let window = self.broker.policy.caller(&id).unwrap().quotas[0].clone();
        self.quotas.count(&id, &window, SystemTime::now())
    }

    /// How many times the credential store was read.
    pub fn store_reads(&self) -> usize {
        self.store.calls()
    }

    /// The captured EMF lines, parsed.
    pub fn emf_lines(&self) -> Vec<Value> {
        self.emf.contents().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Sum of one metric over every captured EMF line.
    pub fn metric_total(&self, name: &str) -> f64 {
        self.emf_lines().iter().filter_map(|l| l[name].as_f64()).sum()
    }
}

/// GetClientToken is signed with static test credentials, so these tests need none in the environment.
fn test_sdk_config() -> aws_config::SdkConfig {
    let test_credentials = aws_sdk_ssm::config::Credentials::new("test", "test", None, None, "broker-tests");
    tb_shared::aws::lambda_sdk_config()
        .into_builder()
        .credentials_provider(aws_sdk_ssm::config::SharedCredentialsProvider::new(test_credentials))
        .build()
}

pub fn client_id_of(app: &str) -> &'static str {
    APP_CLIENTS.iter().find(|(a, _, _)| *a == app).map(|(_, id, _)| *id).unwrap()
}

pub fn creds_for(standin: &CognitoStandin, client_id: &str, secret: &str) -> ClientCredentials {
    ClientCredentials::token_endpoint(
        client_id.to_owned(),
        SecretString::from(secret.to_owned()),
        standin.token_url().parse().unwrap(),
    )
}

/// Credentials for the stand-in's `GetClientToken` API (the AWS SDK pointed at the stand-in).
pub fn client_token_creds_for(standin: &CognitoStandin, client_id: &str, secret: &str) -> ClientCredentials {
    ClientCredentials {
        client_id: client_id.to_owned(),
        client_secret: SecretString::from(secret.to_owned()),
        upstream: UpstreamEndpoint::GetClientToken {
            region: "eu-west-1".into(),
            endpoint_url: Some(format!("{}/", standin.base_url().trim_end_matches('/')).parse().unwrap()),
        },
    }
}

/// The API id and stage every [`request`] comes through.
pub const API_ID: &str = "h4rn3ss0ap";
pub const STAGE: &str = "v1";

/// The API binding of [`API_ID`] and [`STAGE`].
pub fn api() -> ApiBinding {
    ApiBinding { api_id: API_ID.into(), stage: STAGE.into() }
}

/// Replaces the MAC entries of `req`'s context with a MAC made by `keys` for `api`, valid `ttl` from `now`: what the
/// authorizer writes for the contract fields the context holds now.
pub fn sign_context(req: &mut ApiGatewayProxyRequest, keys: &KeySet, api: &ApiBinding, now: SystemTime, ttl: Duration) {
    let fields = &mut req.request_context.authorizer.fields;
    let ctx = CallerContext::from_map(fields).expect("a readable context to sign");
    for (k, v) in sign(&ctx, api, keys, now, ttl) {
        fields.insert(k.to_owned(), Value::String(v));
    }
}

/// The proxy event API Gateway builds for `POST /oauth2/token` after the authorizer allowed `caller`, its context
/// signed with the devkit's test key for [`API_ID`] and [`STAGE`] (or, with `None`, an event with no authorizer
/// context at all).
pub fn request(caller: Option<&str>, body: &str) -> ApiGatewayProxyRequest {
    request_with_fingerprint(caller, body, "9f86d081884c7d65")
}

/// [`request`] with the context's `credentialFingerprint` set to `fingerprint` (for an mTLS caller, the
/// certificate's `x5t#S256` thumbprint).
pub fn request_with_fingerprint(caller: Option<&str>, body: &str, fingerprint: &str) -> ApiGatewayProxyRequest {
    request_as(caller, body, AuthMethod::Mtls, fingerprint)
}

/// [`request`] from a caller that authenticated with `method` and the credential `fingerprint`.
pub fn request_as(caller: Option<&str>, body: &str, method: AuthMethod, fingerprint: &str) -> ApiGatewayProxyRequest {
    let mut r = ApiGatewayProxyRequest::default();
    r.http_method = Method::POST;
    r.path = Some("/oauth2/token".into());
    r.resource = Some("/oauth2/token".into());
    r.headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    r.body = Some(body.to_owned());
    r.request_context.request_id = Some("apigw-req-1".into());
    r.request_context.http_method = Method::POST;
    r.request_context.apiid = Some(API_ID.into());
    r.request_context.stage = Some(STAGE.into());
    if let Some(c) = caller {
        let ctx = CallerContext {
            caller_id: CallerId::try_from(c).unwrap(),
            auth_method: method,
            credential_fingerprint: fingerprint.into(),
            policy_version: "0123456789abcdef".into(),
        };
        r.request_context.authorizer.fields = ctx.to_map();
        let keys = tb_devkit::fixtures::context_key_set();
        sign_context(&mut r, &keys, &api(), SystemTime::now(), Duration::from_secs(300));
    }
    r
}

fn decode(resp: ApiGatewayProxyResponse) -> Reply {
    let body = match resp.body {
        Some(Body::Text(t)) => t,
        Some(Body::Binary(b)) => String::from_utf8(b).unwrap(),
        Some(Body::Empty) | None => String::new(),
        Some(_) => panic!("unexpected body kind"),
    };
    assert!(!resp.is_base64_encoded);
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    Reply { status: resp.status_code, headers: resp.headers, body, json }
}

/// The `Authorization: Basic …` value a client secret would produce, for leak scans.
pub fn basic_value(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)))
}

/// Asserts the headers every answer must carry.
pub fn assert_no_store(r: &Reply) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    assert_eq!(r.header("pragma"), Some("no-cache"), "{r:?}");
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"), "{r:?}");
}

/// Asserts an RFC 6749 §5.2 error with exact status and code, the request id, and no-store headers.
pub fn assert_error(r: &Reply, status: i64, code: &str) {
    assert_eq!(r.outcome(), (status, code), "{}", r.body);
    assert_eq!(r.json["request_id"], "apigw-req-1", "{}", r.body);
    assert!(r.json["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{}", r.body);
    assert!(r.json.get("access_token").is_none());
    assert_no_store(r);
}

/// `Retry-After` as whole seconds; panics when absent.
pub fn retry_after(r: &Reply) -> u64 {
    r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no Retry-After: {r:?}"))
}

/// One raw HTTP answer a [`CannedUpstream`] gives: status line code, extra header lines, body.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Canned {
    pub fn json(status: u16, body: &str) -> Canned {
        Canned {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// A token endpoint that answers whatever it is told to, byte for byte, over real HTTP on loopback: what a broken
/// or hostile server in Cognito's place could send. Counts the requests it reads.
pub struct CannedUpstream {
    addr: std::net::SocketAddr,
    answer: Arc<std::sync::Mutex<Canned>>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CannedUpstream {
    pub async fn start() -> CannedUpstream {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(std::sync::Mutex::new(Canned::json(500, "{}")));
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, n) = (answer.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (a, n) = (a.clone(), n.clone());
                tokio::spawn(async move {
                    // Read the head and a Content-Length body; the request's content does not matter here.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let canned = a.lock().unwrap().clone();
                    let mut out = format!("HTTP/1.1 {} Canned\r\n", canned.status);
                    for (k, v) in &canned.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", canned.body.len()));
                    let mut bytes = out.into_bytes();
                    bytes.extend_from_slice(&canned.body);
                    let _ = sock.write_all(&bytes).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        CannedUpstream { addr, answer, requests, task }
    }

    /// What every request gets from now on.
    pub fn answer(&self, canned: Canned) {
        *self.answer.lock().unwrap() = canned;
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/oauth2/token", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CannedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
