//! The leak scan of the fleet token cache, in its own test binary: log capture is per thread, and tracing's interest
//! cache is shared by every test of a binary.
//!
//! Needs moto: `scripts/with-moto.sh cargo test -p tb-broker --test fleet_leak_scan`.

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use support::fleet::Fleet;
use support::{request, Harness};
use tb_broker::FleetCache;
use tb_shared::clock::Clock;

const BODY: &str = "grant_type=client_credentials";

/// Every fleet-cache path with the logs captured (down to debug): no token, secret or data key material appears in
/// a log line, an EMF line, an answer's error body or a `Debug` of the cache, and the table holds no token in clear.
#[tokio::test(flavor = "current_thread")]
async fn no_token_or_secret_in_logs_metrics_bodies_or_the_table() {
    let logs = tb_shared::telemetry::CaptureWriter::default();
    let _guard = tb_shared::telemetry::capture_default(logs.clone());
    let h = Harness::start().await;
    let f = Fleet::new().await;
    let mut replies = Vec::new();
    let a = h.instance(f.cache(|_| {})).await;
    replies.push(h.send_to(&a, request(Some("fleet-svc"), BODY)).await);
    replies.push(h.send_to(&h.instance(f.cache(|_| {})).await, request(Some("fleet-svc"), BODY)).await);
    let mut item = f.only_item().await;
    item.insert("sealed".into(), AttributeValue::B(vec![1, 2, 3].into()));
    f.put(item).await;
    replies.push(h.send_to(&h.instance(f.cache(|_| {})).await, request(Some("fleet-svc"), BODY)).await);
    h.standin.faults().fail_next(2, 503);
    replies.push(h.send_to(&h.instance(f.cache(|_| {})).await, request(Some("fleet-twin-svc"), BODY)).await);
    let down = FleetCache::from_sdk_configs(
        &tb_devkit::moto::sdk_config_at(&closed_endpoint(), tb_devkit::moto::REGION).await,
        &f.sdk,
        f.settings(),
        Clock::system(),
    );
    let debug = format!("{down:?}");
    replies.push(h.send_to(&h.instance(down).await, request(Some("fleet-twin-svc"), BODY)).await);

    let tokens: Vec<String> = replies.iter().map(|r| r.token().to_owned()).filter(|t| !t.is_empty()).collect();
    assert!(tokens.len() >= 4, "the scenario issued tokens");
    assert!(replies.iter().any(|r| r.status == 503), "and refused one");
    let captured = [
        ("logs", logs.contents()),
        ("metrics", h.emf.contents()),
        ("error bodies", replies.iter().filter(|r| r.status != 200).map(|r| r.body.clone()).collect()),
        ("the cache's Debug", debug),
        ("the table", format!("{:?}", f.items().await)),
    ];
    assert!(captured[0].1.contains("fleet_cache"), "the decision lines say what the cache did");
    for (where_, text) in &captured {
        for t in &tokens {
            assert!(!text.contains(t.as_str()), "a token in {where_}");
            let claims = t.split('.').nth(1).unwrap();
            assert!(!text.contains(claims), "a token's claims in {where_}");
        }
        for s in &h.secrets {
            assert!(!text.contains(s.as_str()), "a client secret in {where_}");
        }
    }
}

/// An endpoint on loopback where nothing listens.
fn closed_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}
