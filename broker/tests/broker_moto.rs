//! The broker wired exactly as the Lambda wires it ([`tb_broker::bootstrap::build`]): quotas in DynamoDB and
//! credentials in SSM, both served by moto, and Cognito's token endpoint by the stand-in over real HTTP.
//!
//! Needs moto: `scripts/with-moto.sh cargo test -p token-broker-broker --test broker_moto`. Without
//! `TB_MOTO_ENDPOINT` the test fails and says so; it is never skipped. moto runs one request at a time there
//! (scripts/moto_server.py), which the quota count below relies on.

#[path = "common_moto/mod.rs"]
mod common_moto;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::types::AttributeValue;
use common_moto::{create_quota_table, moto_endpoint, sdk_config, unique};
use http::Method;
use lambda_runtime::{Context, LambdaEvent};
use tb_broker::config::BrokerConfig;
use tb_broker::quota::dynamo::{counter_key, COUNT_ATTR, KEY_ATTR};
use tb_broker::{bootstrap, handle};
use tb_devkit::cognito::{CognitoStandin, StandinClient, StandinConfig};
use tb_shared::context::{AuthMethod, CallerContext};
use tb_shared::ids::CallerId;
use tb_shared::telemetry::{CaptureWriter, MetricsSink};

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

fn event(body: &str) -> LambdaEvent<ApiGatewayProxyRequest> {
    let mut r = ApiGatewayProxyRequest::default();
    r.http_method = Method::POST;
    r.headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    r.body = Some(body.to_owned());
    r.request_context.request_id = Some("moto-req".into());
    r.request_context.authorizer.fields = CallerContext {
        caller_id: CallerId::try_from("reporting").unwrap(),
        auth_method: AuthMethod::Mtls,
        credential_fingerprint: "9f86d081884c7d65".into(),
        policy_version: "0123456789abcdef".into(),
    }
    .to_map();
    let mut ctx = Context::default();
    ctx.deadline =
        (SystemTime::now() + Duration::from_secs(10)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    LambdaEvent::new(r, ctx)
}

fn body_json(r: &aws_lambda_events::apigw::ApiGatewayProxyResponse) -> serde_json::Value {
    match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

/// GIVEN the broker built from configuration against DynamoDB and SSM in moto WHEN the reporting caller (3 grants
/// a day) asks four times THEN three tokens with no-store headers and the default scope, the DynamoDB counter at 3,
/// and the fourth answer 429 with Retry-After.
#[tokio::test]
async fn grants_through_dynamodb_quota_and_ssm_credentials() {
    let endpoint = moto_endpoint();
    let sdk = sdk_config(&endpoint).await;

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = create_quota_table(&ddb, "broker-quota").await;

    let client = StandinClient::with_random_secret("reporting-client", &["customer-api/read"]);
    let standin = CognitoStandin::start(StandinConfig::new(vec![client.clone()])).await.unwrap();
    let prefix = format!("/{}", unique("tb"));
    let value = serde_json::json!({
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "token_url": standin.token_url(),
    });
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(format!("{prefix}/reporting"))
        .value(value.to_string())
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();

    let policy_path = std::env::temp_dir().join(format!("{}.yaml", unique("broker-policy")));
    std::fs::write(&policy_path, POLICY).unwrap();
    let env = [
        ("POLICY_FILE", policy_path.to_string_lossy().into_owned()),
        ("QUOTA_TABLE", table.clone()),
        ("SSM_PREFIX", prefix),
        ("UPSTREAM_TIMEOUT_MS", "3000".into()),
    ];
    let cfg = BrokerConfig::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let emf = CaptureWriter::default();
    let broker = Arc::new(bootstrap::build(&cfg, &sdk, MetricsSink::to_writer("T", emf.clone())).unwrap());
    std::fs::remove_file(&policy_path).unwrap();

    for _ in 0..3 {
        let r = handle(event("grant_type=client_credentials"), broker.clone()).await.unwrap();
        let json = body_json(&r);
        assert_eq!(r.status_code, 200, "{json}");
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(r.headers.get("pragma").unwrap(), "no-cache");
        assert_eq!(json["scope"], "customer-api/read");
        let claims = standin.verify_access_token(json["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims.client_id, "reporting-client");
    }
    let r = handle(event("grant_type=client_credentials"), broker.clone()).await.unwrap();
    assert_eq!(r.status_code, 429, "{}", body_json(&r));
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(standin.token_requests(), 3);

    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let key = counter_key(&CallerId::try_from("reporting").unwrap(), Duration::from_secs(86_400), now - now % 86_400);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(KEY_ATTR, AttributeValue::S(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the day's counter item");
    assert_eq!(item[COUNT_ATTR].as_n().unwrap(), "3");
}
