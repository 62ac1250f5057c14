//! The contract between the two functions, end to end through the real handlers: the authorizer's Allow, carried in
//! the proxy event exactly as API Gateway copies it (`requestContext.authorizer`), is what the broker grants on, and
//! a token comes back from the Cognito stand-in over real HTTP.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{Context, LambdaEvent};
use secrecy::SecretString;
use serde_json::{json, Value};
use tb_authorizer::{handle_request, MemoryJwksFetcher, MemoryObjectSource, Trust, TrustSources};
use tb_broker::{ClientCredentials, MemoryCredentialSource, MemoryQuotaStore};
use tb_devkit::cognito::{CognitoStandin, StandinClient, StandinConfig};
use tb_devkit::fixtures::{reporting_policy, write_policy};
use tb_devkit::pki::TestCa;
use tb_shared::clock::Clock;
use tb_shared::env::Env;
use tb_shared::telemetry::{CaptureWriter, MetricsSink};

#[tokio::test]
async fn authorizer_allow_carries_the_caller_to_the_broker_which_grants() {
    // GIVEN both functions built from one policy, a trusted CA, a Cognito stand-in and embedded stores
    let policy = write_policy(&reporting_policy(3));
    let policy_path = policy.path().to_str().unwrap();
    let ca = TestCa::root("Chain Root CA").unwrap();
    let now = SystemTime::now();
    let cert = ca
        .issue_client()
        .cn("reporting")
        .san_dns("reporting.svc.example.internal")
        .validity(now - Duration::from_secs(60), now + Duration::from_secs(3600))
        .build()
        .unwrap();
    let metrics = CaptureWriter::default();
    // Both functions built by their own builders from one set of variables, as the template sets them.
    let authorizer_cfg = tb_authorizer::Config::read(&Env::from_pairs([("POLICY_FILE", policy_path)])).unwrap();
    let authorizer_deps = tb_authorizer::Deps {
        trust: Trust::Sources(TrustSources {
            truststore: Arc::new(MemoryObjectSource::new(ca.cert_pem().as_bytes().to_vec())),
            crls: None,
        }),
        jwks: Arc::new(MemoryJwksFetcher::default()),
        metrics: MetricsSink::to_writer("TokenBroker", metrics.clone()),
        clock: Clock::system(),
        context_keys: tb_devkit::fixtures::context_keys(),
    };
    let authorizer = tb_authorizer::build(&authorizer_cfg, authorizer_deps).await.unwrap();

    let client = StandinClient::with_random_secret("reporting-client-id", &["customer-api/read"]);
    let standin = CognitoStandin::start(StandinConfig::new(vec![client.clone()])).await.unwrap();
    let source = MemoryCredentialSource::new();
    source.insert(
        "reporting",
        ClientCredentials::token_endpoint(
            client.client_id.clone(),
            SecretString::from(client.client_secret.clone()),
            standin.token_url().parse().unwrap(),
        ),
    );
    let broker_cfg = tb_broker::Config::read(&Env::from_pairs([
        ("POLICY_FILE", policy_path),
        ("QUOTA_TABLE", "unused-in-memory"),
        ("SSM_PREFIX", "/unused/in-memory"),
    ]))
    .unwrap();
    let broker_deps = tb_broker::Deps {
        quotas: Arc::new(MemoryQuotaStore::new()),
        credentials: Arc::new(source),
        metrics: MetricsSink::to_writer("TokenBroker", metrics.clone()),
        clock: Clock::system(),
        context_keys: tb_devkit::fixtures::context_keys(),
    };
    let broker = tb_broker::build(&broker_cfg, broker_deps).await.unwrap();

    // WHEN the authorizer decides on the caller's certificate
    let auth_event = tb_devkit::events::authorizer_mtls_event(&cert.pem);
    let answer = serde_json::to_value(handle_request(&authorizer, &auth_event, now).await.unwrap()).unwrap();
    assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Allow");

    // AND API Gateway copies principalId and the context into the proxy event (as JSON, the way it really travels)
    let mut authorizer_fields = answer["context"].as_object().unwrap().clone();
    authorizer_fields.insert("principalId".into(), answer["principalId"].clone());
    authorizer_fields.insert("integrationLatency".into(), json!(7));
    let proxy: ApiGatewayProxyRequest = serde_json::from_value(json!({
        "resource": "/oauth2/token", "path": "/oauth2/token", "httpMethod": "POST",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "multiValueHeaders": {"Content-Type": ["application/x-www-form-urlencoded"]},
        "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": null, "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "x1y2z3", "stage": "prod", "requestId": "chain-1",
            "identity": {"sourceIp": "203.0.113.7"}, "resourcePath": "/oauth2/token", "httpMethod": "POST",
            "apiId": "a1b2c3d4e5", "domainName": "tokens.example.internal",
            "authorizer": Value::Object(authorizer_fields)
        },
        "body": "grant_type=client_credentials", "isBase64Encoded": false
    }))
    .unwrap();
    let reply = tb_broker::handle(&broker, LambdaEvent::new(proxy, Context::default())).await.unwrap();

    // THEN the broker grants the caller's default scope with a token issued for its app client
    assert_eq!(reply.status_code, 200, "{:?}", reply.body);
    let body: Value = match reply.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => serde_json::from_str(&t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    assert_eq!(body["scope"], "customer-api/read");
    assert_eq!(body["token_type"], "Bearer");
    let claims = standin.verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.client_id, "reporting-client-id");
    assert_eq!(standin.token_requests(), 1);
}

/// The variables the template passes to both functions are read by the same rules: one map through both
/// configurations is accepted or refused alike, naming the same variable. (The authorizer once took a hash key of any
/// length, an empty `CALLER_HASH_KEY` as a key, and a default policy path.)
#[test]
fn both_functions_read_the_shared_variables_alike() {
    let base = [("POLICY_FILE", "/var/task/policy.yaml"), ("QUOTA_TABLE", "q"), ("SSM_PREFIX", "/tb/cognito")];
    let read = |extra: &[(&'static str, &'static str)]| {
        let mut vars: Vec<(&str, &str)> = base.to_vec();
        vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        vars.extend_from_slice(extra);
        // What both read from the shared variables: the hash key, and the context-MAC key set's parameter and refresh.
        let a = tb_authorizer::Config::read(&Env::from_pairs(vars.clone()))
            .map(|c| format!("{:?} {:?} {:?}", c.caller_hash_key, c.context_key_parameter, c.context_keys));
        let b = tb_broker::Config::read(&Env::from_pairs(vars))
            .map(|c| format!("{:?} {:?} {:?}", c.caller_hash_key, c.context_key_parameter, c.context_keys));
        (a.map_err(|e| e.var), b.map_err(|e| e.var))
    };
    type Case<'a> = (&'a [(&'a str, &'a str)], Result<(), &'a str>);
    let cases: &[Case] = &[
        (&[], Ok(())),
        (&[("CALLER_HASH_KEY", "")], Ok(())),
        (&[("CALLER_HASH_KEY", "  ")], Err("CALLER_HASH_KEY")),
        (&[("CALLER_HASH_KEY", "fifteen-bytes!!")], Err("CALLER_HASH_KEY")),
        (&[("CALLER_HASH_KEY", "sixteen-bytes!!!")], Ok(())),
        (&[("POLICY_FILE", "")], Err("POLICY_FILE")),
        (&[("POLICY_FILE", "   ")], Err("POLICY_FILE")),
        (&[("METRICS_NAMESPACE", "")], Ok(())),
        (&[("METRICS_NAMESPACE", "a:b")], Err("METRICS_NAMESPACE")),
        (&[("METRICS_NAMESPACE", "Team Tokens")], Ok(())),
        (&[("CONTEXT_KEY_PARAMETER", "/token-broker/prod/context-key")], Ok(())),
        (&[("CONTEXT_KEY_PARAMETER", "arn:aws:ssm:eu-west-1:123456789012:parameter/tb/ck")], Ok(())),
        (&[("CONTEXT_KEY_PARAMETER", "/token broker/key")], Err("CONTEXT_KEY_PARAMETER")),
        (&[("CONTEXT_KEYS_TTL_SECONDS", "10")], Ok(())),
        (&[("CONTEXT_KEYS_TTL_SECONDS", "9")], Err("CONTEXT_KEYS_TTL_SECONDS")),
        (&[("CONTEXT_KEYS_MAX_STALE_SECONDS", "0")], Ok(())),
        (&[("CONTEXT_KEYS_MAX_STALE_SECONDS", "86401")], Err("CONTEXT_KEYS_MAX_STALE_SECONDS")),
    ];
    for (extra, expected) in cases {
        let (a, b) = read(extra);
        assert_eq!(a.is_ok(), b.is_ok(), "{extra:?}: authorizer {a:?}, broker {b:?}");
        match expected {
            Ok(()) => assert!(a.is_ok(), "{extra:?}: {a:?}"),
            Err(var) => {
                assert_eq!(a.clone().unwrap_err(), *var, "{extra:?}");
                assert_eq!(b.clone().unwrap_err(), *var, "{extra:?}");
            }
        }
        if let (Ok(ka), Ok(kb)) = (&a, &b) {
            assert_eq!(ka, kb, "{extra:?}: the two functions read the shared variables differently");
        }
    }
}

/// A policy that hashes caller ids in logs stops both functions at build time when no key is configured, rather
/// than logging ids in clear.
#[tokio::test]
async fn both_builders_refuse_a_hashing_policy_without_a_key() {
    let yaml = reporting_policy(3).replace("version: 1\n", "version: 1\nsettings:\n  hash_caller_ids: true\n");
    let policy = write_policy(&yaml);
    let path = policy.path().to_str().unwrap();
    let cfg = tb_authorizer::Config::read(&Env::from_pairs([("POLICY_FILE", path)])).unwrap();
    let deps = tb_authorizer::Deps {
        trust: Trust::Ignored,
        jwks: Arc::new(MemoryJwksFetcher::default()),
        metrics: MetricsSink::to_writer("T", std::io::sink()),
        clock: Clock::system(),
        context_keys: tb_devkit::fixtures::context_keys(),
    };
    let err = tb_authorizer::build(&cfg, deps).await.unwrap_err();
    assert!(matches!(err, tb_authorizer::InitError::MissingHashKey), "{err}");

    let env = [("POLICY_FILE", path), ("QUOTA_TABLE", "q"), ("SSM_PREFIX", "/tb/cognito")];
    let cfg = tb_broker::Config::read(&Env::from_pairs(env)).unwrap();
    let deps = tb_broker::Deps {
        quotas: Arc::new(MemoryQuotaStore::new()),
        credentials: Arc::new(MemoryCredentialSource::new()),
        metrics: MetricsSink::to_writer("T", std::io::sink()),
        clock: Clock::system(),
        context_keys: tb_devkit::fixtures::context_keys(),
    };
    let err = tb_broker::build(&cfg, deps).await.err().expect("refused");
    assert!(matches!(err, tb_broker::InitError::MissingHashKey), "{err}");
}
