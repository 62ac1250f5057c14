//! The broker handler's own work per grant, warm, with in-memory quota and credential stores.
//!
//! - `grant/reuse_hit`: a caller with token reuse on, whose token is cached: context, policy, grammar, scopes, the
//!   reuse lookup, the response, the decision log line (JSON, to a sink) and the EMF line. No network: this is the
//!   "handler overhead, network excluded" figure with the < 50 µs target.
//! - `grant/denied_invalid_scope`: a refusal before any store or network (the cheapest full path).
//! - `grant/fresh_loopback`: reuse off, the full path including the quota charge, the credential cache and a real
//!   HTTP round trip over a pooled keep-alive connection to the Cognito stand-in on loopback, which also signs an
//!   RS256 JWT per request. Reported separately; it is dominated by the stand-in, not the handler.
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
            ClientCredentials {
                client_id: client.client_id.clone(),
                client_secret: SecretString::from(client.client_secret.clone()),
                token_url: standin.token_url().parse().unwrap(),
            },
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
        };
        (standin, build(&cfg, deps).unwrap())
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
    drop(standin);
}

criterion_group!(benches, grant);
criterion_main!(benches);
