//! The broker wired exactly as the Lambda wires it ([`tb_broker::build`] with [`tb_broker::Deps::from_aws`]): quotas
//! in DynamoDB, credentials and the context-MAC key set in SSM, all served by moto, and Cognito's token endpoint by
//! the stand-in over real HTTP.
//!
//! Needs moto: `scripts/with-moto.sh cargo test -p tb-broker --test broker_moto`. Without
//! `TB_MOTO_ENDPOINT` the test fails and says so; it is never skipped. moto runs one request at a time there
//! (scripts/moto_server.py), which the quota count below relies on.

#[path = "common_moto/mod.rs"]
mod common_moto;

use std::time::{Duration, SystemTime};

use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::types::AttributeValue;
use common_moto::{create_quota_table, unique};
use secrecy::ExposeSecret as _;
use tb_broker::quota_table::{counter_key, COUNT_ATTR, KEY_ATTR};
use tb_broker::{build, handle, Config, Deps};
use tb_devkit::cognito::{CognitoStandin, StandinClient, StandinConfig};
use tb_devkit::events::{lambda_event, ProxyRequestBuilder};
use tb_devkit::fixtures::{context_key_set, reporting_policy, write_policy, REPORTING_CALLER, REPORTING_SCOPE};
use tb_devkit::moto;
use tb_shared::env::Env;
use tb_shared::ids::CallerId;
use tb_shared::telemetry::{CaptureWriter, MetricsSink};

/// The authorised token request of the reporting caller, as a Lambda invocation with 10 s left.
fn event(body: &str) -> lambda_runtime::LambdaEvent<aws_lambda_events::apigw::ApiGatewayProxyRequest> {
    let request = ProxyRequestBuilder::new(REPORTING_CALLER, body).request_id("moto-req").build();
    lambda_event(request, SystemTime::now() + Duration::from_secs(10))
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
    let sdk = moto::sdk_config().await;

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
    moto::put_secure_string(&sdk, &format!("{prefix}/{REPORTING_CALLER}"), &value.to_string()).await;

    // The key set the authorizer signs with (the devkit's test key, which the events' MACs are made with).
    let key_parameter = format!("/{}", unique("tb-context-key"));
    moto::put_secure_string(&sdk, &key_parameter, context_key_set().to_document().expose_secret()).await;

    let policy = write_policy(&reporting_policy(3));
    let env = [
        ("POLICY_FILE", policy.path().to_string_lossy().into_owned()),
        ("QUOTA_TABLE", table.clone()),
        ("SSM_PREFIX", prefix),
        ("UPSTREAM_TIMEOUT_MS", "3000".into()),
        ("CONTEXT_KEY_PARAMETER", key_parameter),
    ];
    let cfg = Config::read(&Env::from_pairs(env)).unwrap();
    let emf = CaptureWriter::default();
    let deps = Deps { metrics: MetricsSink::to_writer("T", emf.clone()), ..Deps::from_aws(&cfg, &sdk).unwrap() };
    let broker = build(&cfg, deps).await.unwrap();
    drop(policy);

    for _ in 0..3 {
        let r = handle(&broker, event("grant_type=client_credentials")).await.unwrap();
        let json = body_json(&r);
        assert_eq!(r.status_code, 200, "{json}");
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(r.headers.get("pragma").unwrap(), "no-cache");
        assert_eq!(json["scope"], REPORTING_SCOPE);
        let claims = standin.verify_access_token(json["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims.client_id, "reporting-client");
    }
    // A context without the authorizer's MAC: refused before the quota is looked at.
    let forged = ProxyRequestBuilder::new(REPORTING_CALLER, "grant_type=client_credentials").unsigned().build();
    let r = handle(&broker, lambda_event(forged, SystemTime::now() + Duration::from_secs(10))).await.unwrap();
    assert_eq!(r.status_code, 500, "{}", body_json(&r));
    let r = handle(&broker, event("grant_type=client_credentials")).await.unwrap();
    assert_eq!(r.status_code, 429, "{}", body_json(&r));
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(standin.token_requests(), 3);

    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let key =
        counter_key(&CallerId::try_from(REPORTING_CALLER).unwrap(), Duration::from_secs(86_400), now - now % 86_400);
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

/// devkit creates the quota table for every moto test without depending on the broker; its layout must be the
/// broker's (runs without moto).
#[test]
fn devkit_lays_the_quota_table_out_as_the_broker_reads_it() {
    common_moto::assert_quota_layout_matches_the_broker();
}

/// GIVEN the Lambda's adapters WHEN `CONTEXT_KEY_PARAMETER` is unset, names no parameter, or names a parameter that
/// is not a key-set document THEN the broker does not start, and the error names the variable and never the value.
#[tokio::test]
async fn the_broker_does_not_start_without_its_context_keys() {
    let sdk = moto::sdk_config().await;
    let policy = write_policy(&reporting_policy(3));
    let base = [
        ("POLICY_FILE", policy.path().to_string_lossy().into_owned()),
        ("QUOTA_TABLE", "unused".to_owned()),
        ("SSM_PREFIX", "/unused".to_owned()),
    ];
    let cfg = Config::read(&Env::from_pairs(base.clone())).unwrap();
    let err = Deps::from_aws(&cfg, &sdk).err().expect("refused without the variable").to_string();
    assert!(err.contains("CONTEXT_KEY_PARAMETER") && err.contains("required"), "{err}");

    let absent = format!("/{}", unique("tb-no-such-key"));
    let not_a_key_set = format!("/{}", unique("tb-bad-key"));
    let secret_looking = "c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1uZXZlci1hcHBlYXI=";
    moto::put_secure_string(&sdk, &not_a_key_set, &format!(r#"{{"keys":"{secret_looking}"}}"#)).await;
    for (parameter, expected) in [(absent, "does not exist"), (not_a_key_set, "not a key-set document")] {
        let mut env = base.to_vec();
        env.push(("CONTEXT_KEY_PARAMETER", parameter.clone()));
        let cfg = Config::read(&Env::from_pairs(env)).unwrap();
        let deps = Deps::from_aws(&cfg, &sdk).unwrap();
        let err = build(&cfg, deps).await.err().expect("refused without a key set").to_string();
        assert!(err.starts_with("CONTEXT_KEY_PARAMETER: "), "{err}");
        assert!(err.contains(expected), "{parameter}: {err}");
        assert!(!err.contains(secret_looking), "{err}");
    }
}
