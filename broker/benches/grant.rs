//! The broker handler's own work per grant, warm, with in-memory quota and credential stores.
//!
//! - `grant/reuse_hit`: a caller with token reuse on, whose token is cached: context, policy, grammar, scopes, the
//!   reuse lookup, the response, the decision log line (JSON, to a sink) and the EMF line. No network: this is the
//!   "handler overhead, network excluded" figure with the < 50 µs target.
//! - `grant/denied_invalid_scope`: a refusal before any store or network (the cheapest full path).
//! - `grant/fresh_loopback`: reuse off, the full path including the quota charge, the credential cache and a real
//!   HTTP round trip over a pooled keep-alive connection to the Cognito stand-in on loopback, which also signs an
//!   RS256 JWT per request. Reported separately; it is dominated by the stand-in, not the handler.
//! - `context/check`: what checking the authorizer's context MAC adds to every request (part of every figure
//!   above): the key set from the warm key ring and `tb_shared::context::verify` on the event's context (base64
//!   decoding, HMAC-SHA256 over the contract fields, API id, stage and expiry, the constant-time comparison).
//! - `context/forged_refused`: a whole invocation whose context carries no MAC: refused (500) before the policy,
//!   the body, the quota or the network, with its error log line and three EMF lines.
//!
//! Run: `cargo bench -p tb-broker --bench grant`

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use criterion::{criterion_group, criterion_main, Criterion};
use lambda_runtime::LambdaEvent;
use secrecy::SecretString;
use tb_broker::{build, handle, ClientCredentials, Config, Deps, MemoryCredentialSource, MemoryQuotaStore};
use tb_devkit::cognito::{CognitoStandin, StandinClient, StandinConfig};
use tb_devkit::events::{lambda_event, ProxyRequestBuilder};
use tb_shared::clock::Clock;
use tb_shared::context::{verify, ApiBinding, CallerContext, KeyRing, KeyRingConfig};
use tb_shared::env::Env;
use tb_shared::telemetry::MetricsSink;

const POLICY: &str = r#"
version: 1
callers:
  - id: bench-reuse
    identities: [{ type: san_uri, value: "spiffe://bench/reuse" }]
    cognito_client: bench
    allowed_scopes: [api/read, api/write]
    default_scopes: [api/read]
    quotas: [{ per: minute, limit: 1000000000 }, { per: day, limit: 1000000000 }]
    max_token_lifetime_seconds: 3600
    token_reuse: true
  - id: bench-fresh
    identities: [{ type: san_uri, value: "spiffe://bench/fresh" }]
    cognito_client: bench
    allowed_scopes: [api/read, api/write]
    default_scopes: [api/read]
    quotas: [{ per: minute, limit: 1000000000 }, { per: day, limit: 1000000000 }]
    max_token_lifetime_seconds: 3600
"#;

/// The proxy event API Gateway hands the broker after the authorizer allowed `caller`, with an hour to run.
fn event(caller: &str, body: &str) -> LambdaEvent<ApiGatewayProxyRequest> {
    let request = ProxyRequestBuilder::new(caller, body).request_id("bench-request").build();
    lambda_event(request, SystemTime::now() + Duration::from_secs(3600))
}

fn grant(c: &mut Criterion) {
    // Production-shaped logging: the JSON subscriber at info, written to a sink instead of stdout.
    tracing_subscriber::fmt().json().flatten_event(true).with_current_span(true).with_writer(std::io::sink).init();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (standin, broker) = rt.block_on(async {
        let client = StandinClient::with_random_secret("bench-client", &["api/read", "api/write"]);
        let standin = CognitoStandin::start(StandinConfig::new(vec![client.clone()])).await.unwrap();
        let source = MemoryCredentialSource::new();
        source.insert(
            "bench",
            ClientCredentials::token_endpoint(
                client.client_id.clone(),
                SecretString::from(client.client_secret.clone()),
                standin.token_url().parse().unwrap(),
            ),
        );
        // Built as the Lambda builds it (its configuration defaults), with in-memory stores.
        let policy = tb_devkit::fixtures::write_policy(POLICY);
        let cfg = Config::read(&Env::from_pairs([
            ("POLICY_FILE", policy.path().to_str().unwrap()),
            ("QUOTA_TABLE", "unused-in-memory"),
            ("SSM_PREFIX", "/unused/in-memory"),
        ]))
        .unwrap();
        let deps = Deps {
            quotas: Arc::new(MemoryQuotaStore::new()),
            credentials: Arc::new(source),
            metrics: MetricsSink::to_writer("Bench", std::io::sink()),
            clock: Clock::system(),
            context_keys: tb_devkit::fixtures::context_keys(),
        };
        (standin, build(&cfg, deps).await.unwrap())
    });

    let body = "grant_type=client_credentials&scope=api%2Fread+api%2Fwrite";
    // Warm: connection pool, credential cache, reuse cache.
    for caller in ["bench-reuse", "bench-fresh"] {
        let r = rt.block_on(handle(&broker, event(caller, body))).unwrap();
        assert_eq!(r.status_code, 200);
    }

    let mut g = c.benchmark_group("grant");
    g.bench_function("reuse_hit", |b| {
        b.iter_batched(
            || event("bench-reuse", body),
            |ev| {
                let r = rt.block_on(handle(&broker, ev)).unwrap();
                assert_eq!(r.status_code, 200);
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("denied_invalid_scope", |b| {
        b.iter_batched(
            || event("bench-reuse", "grant_type=client_credentials&scope=api%2Fadmin"),
            |ev| {
                let r = rt.block_on(handle(&broker, ev)).unwrap();
                assert_eq!(r.status_code, 400);
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.sample_size(30).measurement_time(Duration::from_secs(10));
    g.bench_function("fresh_loopback", |b| {
        b.iter_batched(
            || event("bench-fresh", body),
            |ev| {
                let r = rt.block_on(handle(&broker, ev)).unwrap();
                assert_eq!(r.status_code, 200);
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("context");
    let ring = rt
        .block_on(KeyRing::load(tb_devkit::fixtures::context_keys(), KeyRingConfig::default(), Clock::system()))
        .unwrap();
    let signed = ProxyRequestBuilder::new("bench-reuse", body).build();
    let fields = signed.request_context.authorizer.fields.clone();
    let caller = CallerContext::from_map(&fields).unwrap();
    let api = ApiBinding {
        api_id: signed.request_context.apiid.clone().unwrap(),
        stage: signed.request_context.stage.clone().unwrap(),
    };
    // Timed inside one task, as the handler runs it: no `block_on` per iteration in the figure.
    g.bench_function("check", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    let keys = ring.current().await.unwrap();
                    verify(&fields, &caller, &api, &keys, SystemTime::now()).unwrap();
                }
                started.elapsed()
            })
        })
    });
    g.bench_function("forged_refused", |b| {
        b.iter_batched(
            || {
                let request = ProxyRequestBuilder::new("bench-reuse", body).unsigned().build();
                lambda_event(request, SystemTime::now() + Duration::from_secs(3600))
            },
            |ev| {
                let r = rt.block_on(handle(&broker, ev)).unwrap();
                assert_eq!(r.status_code, 500);
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
    drop(standin);
}

criterion_group!(benches, grant);
criterion_main!(benches);
