//! The contract between the two functions, end to end through the real handlers: the authorizer's Allow, carried in
//! the proxy event exactly as API Gateway copies it (`requestContext.authorizer`), is what the broker grants on, and
//! a token comes back from the Cognito stand-in over real HTTP.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::{ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayProxyRequest};
use lambda_runtime::{Context, LambdaEvent};
use secrecy::SecretString;
use serde_json::{json, Value};
use tb_authorizer::decision::{Authorizer, DecisionCacheConfig};
use tb_authorizer::handler::{handle_request, App};
use tb_authorizer::mtls::{CertVerifier, MtlsConfig};
use tb_broker::credential_refresh::CredentialProvider;
use tb_broker::credentials::{CacheConfig, CachedCredentials, ClientCredentials, MemoryCredentialSource};
use tb_broker::quota::MemoryQuotaStore;
use tb_broker::reuse::TokenReuse;
use tb_broker::upstream::{Upstream, UpstreamSettings};
use tb_broker::Broker;
use tb_devkit::cognito::{CognitoStandin, StandinClient, StandinConfig};
use tb_devkit::pki::TestCa;
use tb_shared::policy::Policy;
use tb_shared::sources::MemoryObjectSource;
use tb_shared::telemetry::{CallerIdHasher, CaptureWriter, MetricsSink};

const POLICY: &str = r#"
version: 1
callers:
  - id: reporting
    identities: [{ type: san_dns, value: reporting.svc.example.internal }]
    cognito_client: reporting
    allowed_scopes: [customer-api/read]
    default_scopes: [customer-api/read]
    quotas: [{ per: day, limit: 3 }]
    max_token_lifetime_seconds: 3600
"#;

const AUTH_EVENT: &str = include_str!("../../authorizer/tests/fixtures/request-mtls.json");

#[tokio::test]
async fn authorizer_allow_carries_the_caller_to_the_broker_which_grants() {
    // GIVEN both functions built from one policy, a trusted CA, a Cognito stand-in and embedded stores
    let policy = Arc::new(Policy::from_bytes("chain.yaml", POLICY.as_bytes()).unwrap());
    let ca = TestCa::root("Chain Root CA").unwrap();
    let now = SystemTime::now();
    let cert = ca
        .issue_client()
        .cn("reporting")
        .san_dns("reporting.svc.example.internal")
        .validity(now - Duration::from_secs(60), now + Duration::from_secs(3600))
        .build()
        .unwrap();
    let verifier = CertVerifier::new(
        Arc::new(MemoryObjectSource::new(ca.cert_pem().as_bytes().to_vec())),
        None,
        MtlsConfig { refresh_interval: Duration::from_secs(60), require_crl: false },
    );
    verifier.refresh().await.unwrap();
    let metrics = CaptureWriter::default();
    let authorizer = App {
        authorizer: Authorizer::new(policy.clone(), Some(Arc::new(verifier)), None, DecisionCacheConfig::default()),
        metrics: MetricsSink::to_writer("TokenBroker", metrics.clone()),
        hasher: CallerIdHasher::plain(),
    };

    let client = StandinClient::with_random_secret("reporting-client-id", &["customer-api/read"]);
    let standin = CognitoStandin::start(StandinConfig::new(vec![client.clone()])).await.unwrap();
    let source = MemoryCredentialSource::new();
    source.insert(
        "reporting",
        ClientCredentials {
            client_id: client.client_id.clone(),
            client_secret: SecretString::from(client.client_secret.clone()),
            token_url: standin.token_url().parse().unwrap(),
        },
    );
    let credentials: Arc<dyn CredentialProvider> = Arc::new(CachedCredentials::new(source, CacheConfig::default()));
    let broker = Arc::new(Broker {
        policy: policy.clone(),
        quotas: Arc::new(MemoryQuotaStore::new()),
        credentials,
        upstream: Upstream::new(UpstreamSettings {
            connect_timeout: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(2),
            breaker_failure_threshold: 5,
            breaker_open_for: Duration::from_secs(30),
        })
        .unwrap(),
        reuse: TokenReuse::new(),
        metrics: MetricsSink::to_writer("TokenBroker", metrics.clone()),
        hasher: CallerIdHasher::plain(),
    });

    // WHEN the authorizer decides on the caller's certificate
    let auth_event: ApiGatewayCustomAuthorizerRequestTypeRequest =
        serde_json::from_str(&AUTH_EVENT.replace("__PEM__", &cert.pem.replace('\n', "\\n"))).unwrap();
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
    let reply = tb_broker::handle(LambdaEvent::new(proxy, Context::default()), broker).await.unwrap();

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
