//! The context-key rotation of `docs/runbooks/rotate-context-key.md`, rehearsed: three authorizer and three broker
//! instances, each built by its own builder from the template's environment (so with the template's
//! `CONTEXT_KEYS_TTL_SECONDS`, `CONTEXT_KEYS_MAX_STALE_SECONDS` and `CONTEXT_MAC_TTL_SECONDS`), started at staggered
//! times so each holds its key set from a different moment, all reading one key source. Every ten simulated seconds
//! each authorizer allows a certificate caller and each broker grants on each authorizer's context, through the
//! Cognito stand-in. The key set is edited with brokerctl's own functions (`context_key::{added, promoted,
//! retired}`, the edits `brokerctl context-key add | promote | retire` write), each step taken as soon as brokerctl's
//! guard (`check_settled` with the command's default `--settle`) lets it.
//!
//! Time is a simulated clock both functions read, so the template's five-minute TTLs take no real time.

// Only the template reader of the alarm simulator is used here.
#[allow(dead_code, unused_imports)]
mod alarm_sim;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest as AuthorizerEvent;
use aws_lambda_events::encodings::Body;
use brokerctl::context_key::{self, Stored, DEFAULT_SETTLE};
use secrecy::SecretString;
use serde_json::Value;
use tb_authorizer::{MemoryJwksFetcher, MemoryObjectSource, Trust, TrustSources};
use tb_broker::{ClientCredentials, MemoryCredentialSource, MemoryQuotaStore};
use tb_devkit::cognito::{CognitoStandin, StandinClient, StandinConfig};
use tb_devkit::fixtures::{reporting_policy, REPORTING_DNS};
use tb_devkit::pki::TestCa;
use tb_shared::clock::Clock;
use tb_shared::context::{ApiBinding, KeySet, MemoryKeySource, KEY_MAC_KEY_ID};
use tb_shared::env::Env;
use tb_shared::telemetry::{CaptureWriter, MetricsSink};

const INSTANCES: usize = 3;
/// How often each authorizer-broker pair serves one grant.
const TICK: Duration = Duration::from_secs(10);
const GRANT: &str = "grant_type=client_credentials";

/// A clock both functions read and the test moves.
#[derive(Clone)]
struct SimClock(Arc<Mutex<SystemTime>>);

impl SimClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().expect("the clock lock")
    }
    fn advance(&self, d: Duration) {
        *self.0.lock().expect("the clock lock") += d;
    }
    fn clock(&self) -> Clock {
        let inner = self.0.clone();
        Clock::from_fn(move || *inner.lock().expect("the clock lock"))
    }
}

/// What one grant through an authorizer and a broker came to.
#[derive(Debug)]
struct Outcome {
    authorizer: usize,
    broker: usize,
    /// The key the authorizer signed with, when it allowed.
    signed_with: Option<String>,
    /// The broker's status and error code (`-` when granted); `None` when the authorizer did not allow.
    answer: Option<(i64, String)>,
}

impl Outcome {
    fn granted(&self) -> bool {
        self.signed_with.is_some() && matches!(&self.answer, Some((200, _)))
    }
}

struct World {
    clock: SimClock,
    keys: Arc<MemoryKeySource>,
    /// The set as last written, with when and as which version (what `brokerctl` reads from SSM).
    stored: Stored,
    authorizers: Vec<tb_authorizer::App>,
    brokers: Vec<tb_broker::App>,
    broker_emf: CaptureWriter,
    event: AuthorizerEvent,
    api: ApiBinding,
    standin: CognitoStandin,
    _policy: tempfile::NamedTempFile,
}

impl World {
    /// The instances, started 50 simulated seconds apart (authorizer 0, broker 0, authorizer 1, ...), all reading
    /// `initial` from one source.
    async fn start(initial: KeySet) -> World {
        let clock = SimClock(Arc::new(Mutex::new(SystemTime::now())));
        let keys = Arc::new(MemoryKeySource::new(initial.to_document()));
        let stored = Stored { keys: initial, version: 1, kms_key_id: None, last_modified: Some(clock.now()) };
        let policy = tb_devkit::fixtures::write_policy(&reporting_policy(1_000_000));
        let path = policy.path().to_str().expect("a UTF-8 temporary path").to_owned();
        let template = alarm_sim::Template::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml"),
            "tb-rotation",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let authorizer_env = template.function_env("AuthorizerFunction", &[("POLICY_FILE", &path)]).unwrap();
        let broker_env =
            // The fleet cache's table and key exist only once deployed; this stack's policy has no caller using them.
            template
                .function_env(
                    "BrokerFunction",
                    &[
                        ("POLICY_FILE", &path),
                        ("QUOTA_TABLE", "in-memory"),
                        ("TOKEN_CACHE_TABLE", ""),
                        ("TOKEN_CACHE_KMS_KEY", ""),
                    ],
                )
                .unwrap();
        let authorizer_cfg =
            tb_authorizer::Config::read(&Env::from_pairs(authorizer_env)).expect("authorizer settings");
        let broker_cfg = tb_broker::Config::read(&Env::from_pairs(broker_env)).expect("broker settings");

        let ca = TestCa::root("Rotation Root CA").expect("a CA");
        let now = clock.now();
        let day = Duration::from_secs(86_400);
        let cert = ca.issue_client().cn(REPORTING_DNS).san_dns(REPORTING_DNS).validity(now - day, now + day).build();
        let event = tb_devkit::events::authorizer_mtls_event(&cert.expect("a certificate").pem);
        let api = ApiBinding::from_method_arn(event.method_arn.as_deref().expect("a methodArn")).expect("an API");

        let client = StandinClient::with_random_secret("reporting-client-id", &["customer-api/read"]);
        let standin = CognitoStandin::start(StandinConfig::new(vec![client.clone()])).await.expect("the stand-in");
        let broker_emf = CaptureWriter::default();

        let (mut authorizers, mut brokers) = (Vec::new(), Vec::new());
        for _ in 0..INSTANCES {
            let deps = tb_authorizer::Deps {
                trust: Trust::Sources(TrustSources {
                    truststore: Arc::new(MemoryObjectSource::new(ca.cert_pem().as_bytes().to_vec())),
                    crls: None,
                }),
                jwks: Arc::new(MemoryJwksFetcher::default()),
                metrics: MetricsSink::to_writer("TokenBroker", std::io::sink()),
                clock: clock.clock(),
                context_keys: keys.clone(),
            };
            authorizers.push(tb_authorizer::build(&authorizer_cfg, deps).await.expect("the authorizer starts"));
            clock.advance(Duration::from_secs(50));

            let credentials = MemoryCredentialSource::new();
            credentials.insert(
                "reporting",
                ClientCredentials::token_endpoint(
                    client.client_id.clone(),
                    SecretString::from(client.client_secret.clone()),
                    standin.token_url().parse().expect("a URL"),
                ),
            );
            let deps = tb_broker::Deps {
                quotas: Arc::new(MemoryQuotaStore::new()),
                credentials: Arc::new(credentials),
                metrics: MetricsSink::to_writer("TokenBroker", broker_emf.clone()),
                clock: clock.clock(),
                context_keys: keys.clone(),
            };
            brokers.push(tb_broker::build(&broker_cfg, deps).await.expect("the broker starts"));
            clock.advance(Duration::from_secs(50));
        }
        World { clock, keys, stored, authorizers, brokers, broker_emf, event, api, standin, _policy: policy }
    }

    /// Writes `next` as the new version of the key set (what the command's `PutParameter` does).
    fn write(&mut self, next: KeySet) {
        self.keys.set(next.to_document());
        self.stored = Stored {
            keys: next,
            version: self.stored.version + 1,
            kms_key_id: None,
            last_modified: Some(self.clock.now()),
        };
    }

    /// Whether brokerctl would take `step` now, with its default `--settle`.
    fn settled(&self, step: &str) -> bool {
        context_key::check_settled(&self.stored, DEFAULT_SETTLE, self.clock.now(), step).is_ok()
    }

    /// One grant: authorizer `a` decides on the certificate, API Gateway copies its context into the proxy event
    /// for this API and stage, broker `b` handles it.
    async fn grant(&self, a: usize, b: usize) -> Outcome {
        let now = self.clock.now();
        let answer = match tb_authorizer::handle_request(&self.authorizers[a], &self.event, now).await {
            Ok(r) => serde_json::to_value(r).expect("an answer serialises"),
            Err(_) => return Outcome { authorizer: a, broker: b, signed_with: None, answer: None },
        };
        if answer["policyDocument"]["Statement"][0]["Effect"] != "Allow" {
            return Outcome { authorizer: a, broker: b, signed_with: None, answer: None };
        }
        let context = answer["context"].as_object().expect("an Allow carries a context").clone();
        let signed_with = context.get(KEY_MAC_KEY_ID).and_then(Value::as_str).map(str::to_owned);
        let mut proxy = tb_devkit::events::ProxyRequestBuilder::new("reporting", GRANT).unsigned().build();
        proxy.request_context.apiid = Some(self.api.api_id.clone());
        proxy.request_context.stage = Some(self.api.stage.clone());
        let fields = &mut proxy.request_context.authorizer.fields;
        fields.clear();
        fields.extend(context);
        fields.insert("principalId".into(), answer["principalId"].clone());
        fields.insert("integrationLatency".into(), Value::from(9));
        let event = tb_devkit::events::lambda_event(proxy, SystemTime::now() + Duration::from_secs(10));
        let reply = tb_broker::handle(&self.brokers[b], event).await.expect("the broker answers");
        let error = match &reply.body {
            Some(Body::Text(t)) => {
                serde_json::from_str::<Value>(t).ok().and_then(|v| v["error"].as_str().map(str::to_owned))
            }
            _ => None,
        };
        Outcome {
            authorizer: a,
            broker: b,
            signed_with,
            answer: Some((reply.status_code, error.unwrap_or("-".into()))),
        }
    }

    /// One tick: every authorizer-broker pair serves one grant, then the clock moves on.
    async fn tick(&self) -> Vec<Outcome> {
        let mut out = Vec::new();
        for a in 0..INSTANCES {
            for b in 0..INSTANCES {
                out.push(self.grant(a, b).await);
            }
        }
        self.clock.advance(TICK);
        out
    }

    /// Ticks until brokerctl's guard lets `step` go, collecting every outcome; answers how long that took.
    async fn until_settled(&self, step: &str, log: &mut Vec<Outcome>) -> Duration {
        let start = self.clock.now();
        while !self.settled(step) {
            log.extend(self.tick().await);
        }
        self.clock.now().duration_since(start).unwrap_or_default()
    }

    async fn ticks_for(&self, d: Duration, log: &mut Vec<Outcome>) {
        let end = self.clock.now() + d;
        while self.clock.now() < end {
            log.extend(self.tick().await);
        }
    }
}

fn failures(log: &[Outcome]) -> Vec<&Outcome> {
    log.iter().filter(|o| !o.granted()).collect()
}

fn signers(log: &[Outcome]) -> std::collections::BTreeSet<String> {
    log.iter().filter_map(|o| o.signed_with.clone()).collect()
}

/// GIVEN one key, signing, WHEN the runbook's rotation runs (add; wait until brokerctl lets promote; promote; wait
/// until it lets retire; retire) THEN every grant through every authorizer-broker pair succeeds at every step, the
/// new key takes over signing, and after the retire no context is signed with the old key.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_by_the_runbook_refuses_no_grant() {
    let mut world = World::start(context_key::initial("old").unwrap()).await;
    let mut log = Vec::new();

    world.ticks_for(Duration::from_secs(120), &mut log).await;
    assert_eq!(signers(&log), ["old".to_owned()].into());

    world.write(context_key::added(&world.stored.keys, "new").unwrap());
    assert!(!world.settled("promote"), "promote is refused right after the add");
    let waited = world.until_settled("promote", &mut log).await;
    assert!(waited >= Duration::from_secs(300), "the guard waits at least CONTEXT_KEYS_TTL_SECONDS: {waited:?}");
    assert_eq!(signers(&log), ["old".to_owned()].into(), "an added key does not sign");

    let before_promote = log.len();
    world.write(context_key::promoted(&world.stored.keys, "new").unwrap());
    assert!(!world.settled("retire"), "retire is refused right after the promote");
    world.until_settled("retire", &mut log).await;
    let between = &log[before_promote..];
    assert_eq!(signers(between), ["new".to_owned(), "old".to_owned()].into(), "instances switch one by one");
    // By the time the guard lets retire go, every authorizer has signed with the new key for a while.
    let last_minute = &between[between.len() - 6 * INSTANCES * INSTANCES..];
    assert_eq!(signers(last_minute), ["new".to_owned()].into());

    let before_retire = log.len();
    world.write(context_key::retired(&world.stored.keys, "old").unwrap());
    world.ticks_for(DEFAULT_SETTLE, &mut log).await;
    assert_eq!(signers(&log[before_retire..]), ["new".to_owned()].into());
    assert_eq!(world.stored.keys.ids().collect::<Vec<_>>(), ["new"]);

    let failed = failures(&log);
    assert!(failed.is_empty(), "{} of {} grants failed, first: {:?}", failed.len(), log.len(), failed.first());
    assert!(log.len() > 1000, "grants flowed throughout: {}", log.len());
    assert_eq!(world.standin.token_requests(), log.len() as u64, "each grant was a Cognito token");
    assert!(!world.broker_emf.contents().contains("ForgedAuthorizerContext"), "no context was refused");
}

/// The waits matter: retiring the old key right after the promote (what `--settle 0s` would do, and brokerctl's
/// guard refuses) makes brokers that have reloaded refuse the contexts of authorizers that still sign with the old
/// key: real callers get 500 until every authorizer has reloaded.
#[tokio::test(flavor = "multi_thread")]
async fn retiring_before_the_authorizers_switched_would_refuse_grants() {
    let mut world = World::start(context_key::initial("old").unwrap()).await;
    let mut log = Vec::new();
    world.write(context_key::added(&world.stored.keys, "new").unwrap());
    world.until_settled("promote", &mut log).await;
    world.write(context_key::promoted(&world.stored.keys, "new").unwrap());
    log.extend(world.tick().await);
    assert!(failures(&log).is_empty(), "up to the promote, nothing fails");

    assert!(!world.settled("retire"), "brokerctl refuses this retire");
    let err = context_key::check_settled(&world.stored, DEFAULT_SETTLE, world.clock.now(), "retire").unwrap_err();
    assert!(err.to_string().contains("wait"), "{err}");
    let before = log.len();
    world.write(context_key::retired(&world.stored.keys, "old").unwrap());
    world.ticks_for(Duration::from_secs(300 + 60), &mut log).await;

    let after = &log[before..];
    let failed = failures(after);
    assert!(!failed.is_empty(), "an early retire refuses grants");
    for f in &failed {
        assert_eq!(f.signed_with.as_deref(), Some("old"), "refused: contexts signed with the retired key: {f:?}");
        assert_eq!(f.answer, Some((500, "server_error".to_owned())), "{f:?}");
    }
    let refused_by: std::collections::BTreeSet<usize> = failed.iter().map(|f| f.broker).collect();
    let signed_by: std::collections::BTreeSet<usize> = failed.iter().map(|f| f.authorizer).collect();
    eprintln!(
        "early retire: {} of {} grants refused (brokers {refused_by:?}, authorizers {signed_by:?})",
        failed.len(),
        after.len()
    );
    assert!(world.broker_emf.contents().contains("unknown_key"), "counted as ForgedAuthorizerContext, unknown_key");
    // Once every authorizer has reloaded, grants flow again.
    let tail = &after[after.len() - INSTANCES * INSTANCES..];
    assert!(failures(tail).is_empty(), "{tail:?}");
}
