//! Helpers for the tests that run against moto's AWS API emulator (`scripts/with-moto.sh`).
#![allow(dead_code)] // each test binary uses a subset

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use tb_broker::quota_table::{KEY_ATTR, TTL_ATTR};
pub use tb_devkit::moto::unique;

/// The emulator's endpoint. These tests are never skipped: without moto they fail and say how to run them.
pub fn moto_endpoint() -> String {
    tb_devkit::moto::endpoint()
}

/// An SDK config aimed at `endpoint` with fake credentials (moto accepts any), so nothing looks for real ones.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_in(endpoint, tb_devkit::moto::REGION).await
}

/// [`sdk_config`] in `region`: moto keeps each region's tables and parameters apart, so a test that shares them
/// with a function binary uses the function's region.
pub async fn sdk_config_in(endpoint: &str, region: &str) -> SdkConfig {
    tb_devkit::moto::sdk_config_at(endpoint, region).await
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
    assert_quota_layout_matches_the_broker();
    let name = unique(prefix);
    tb_devkit::moto::create_quota_table_with(client, &name).await;
    name
}

/// devkit lays the quota table out without depending on the broker: its attribute names must be the broker's.
pub fn assert_quota_layout_matches_the_broker() {
    assert_eq!(tb_devkit::moto::QUOTA_KEY_ATTR, KEY_ATTR, "the quota table's partition key");
    assert_eq!(tb_devkit::moto::QUOTA_TTL_ATTR, TTL_ATTR, "the quota table's TTL attribute");
}
