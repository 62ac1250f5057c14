//! Helpers for the tests that run against moto's AWS API emulator (`scripts/with-moto.sh`).
#![allow(dead_code)] // each test binary uses a subset

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use tb_broker::quota::dynamo::{KEY_ATTR, TTL_ATTR};

/// The emulator's endpoint. These tests are never skipped: without moto they fail and say how to run them.
pub fn moto_endpoint() -> String {
    match std::env::var("TB_MOTO_ENDPOINT") {
        Ok(e) if !e.is_empty() => {
            assert!(e.starts_with("http://127.0.0.1:"), "tests reach only loopback, got TB_MOTO_ENDPOINT={e}");
            e
        }
        _ => panic!(
            "TB_MOTO_ENDPOINT is not set: run these tests through the emulator script, e.g.\n  \
             scripts/with-moto.sh cargo test -p token-broker-broker --test <this test>"
        ),
    }
}

/// An SDK config aimed at `endpoint` with fake credentials (moto accepts any), so nothing looks for real ones.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_in(endpoint, "us-east-1").await
}

/// [`sdk_config`] in `region`: moto keeps each region's tables and parameters apart, so a test that shares them
/// with a function binary uses the function's region.
pub async fn sdk_config_in(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// A name no other test (or earlier run against the same emulator) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// An endpoint on loopback where nothing listens: connections are refused at once.
pub fn closed_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// An endpoint on loopback that accepts connections and never answers (a black hole): only timeouts end a call.
/// The listener lives as long as the returned guard.
pub fn silent_endpoint() -> (String, std::net::TcpListener) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (format!("http://127.0.0.1:{port}"), l)
}

/// A fixed moment in the current UTC day, 10 s into a minute, so no window rolls over during a test and the TTLs
/// computed from it lie in the future. In the day's last three minutes it steps back two, so that a test adding a
/// minute to it stays in the same day.
pub fn fixed_now() -> SystemTime {
    let mut secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    if secs % 86_400 >= 86_400 - 180 {
        secs -= 120;
    }
    UNIX_EPOCH + Duration::from_secs(secs - secs % 60 + 10)
}

/// A fresh quota table laid out as docs/quota-table.md describes (hash key only, TTL enabled on the TTL attribute),
/// under a name starting with `prefix` that no other test uses.
pub async fn create_quota_table(client: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
    let name = unique(prefix);
    let key = AttributeDefinition::builder().attribute_name(KEY_ATTR).attribute_type(ScalarAttributeType::S).build();
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(key.unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name(KEY_ATTR).key_type(KeyType::Hash).build().unwrap())
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let ttl = TimeToLiveSpecification::builder().attribute_name(TTL_ATTR).enabled(true).build().unwrap();
    client.update_time_to_live().table_name(&name).time_to_live_specification(ttl).send().await.unwrap();
    name
}
