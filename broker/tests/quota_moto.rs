//! The DynamoDB quota store against moto's emulator. Run with
//! `scripts/with-moto.sh cargo test -p tb-broker --test quota_moto`.

mod common_moto;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use common_moto::*;
use tb_broker::quota_table::{counter_key, COUNT_ATTR, KEY_ATTR, TTL_ATTR};
use tb_broker::{Charge, ChargedCounter, DynamoQuotaConfig, DynamoQuotaStore, QuotaError, QuotaOutcome, QuotaStore};
use tb_shared::ids::CallerId;
use tb_shared::policy::QuotaWindow;

fn window(name: &str, secs: u64, limit: u64) -> QuotaWindow {
    QuotaWindow { name: name.into(), length: Duration::from_secs(secs), limit }
}

fn caller(s: &str) -> CallerId {
    CallerId::try_from(s).unwrap()
}

struct Fixture {
    client: Client,
    table: String,
    store: DynamoQuotaStore,
}

/// A store on a new table. The operation timeout is generous: moto serves one request at a time, and the concurrency
/// tests queue 50 of them on a shared 2-core machine.
async fn fixture() -> Fixture {
    let sdk = sdk_config(&moto_endpoint()).await;
    let client = Client::new(&sdk);
    let table = create_quota_table(&client, "quota").await;
    let mut config = DynamoQuotaConfig::new(table.clone());
    config.operation_timeout = Duration::from_secs(20);
    Fixture { client, table, store: DynamoQuotaStore::from_sdk_config(&sdk, config) }
}

impl Fixture {
    /// (count, ttl) of `who`'s counter for window `w` at `now`.
    async fn counter(&self, who: &CallerId, w: &QuotaWindow, now: std::time::SystemTime) -> Option<(u64, u64)> {
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let start = secs - secs % w.length.as_secs();
        read(&self.client, &self.table, &counter_key(who, w.length, start)).await
    }
}

/// Reads a counter item back: (count, ttl), or None when the item does not exist.
async fn read(client: &Client, table: &str, key: &str) -> Option<(u64, u64)> {
    let out = client
        .get_item()
        .table_name(table)
        .key(KEY_ATTR, aws_sdk_dynamodb::types::AttributeValue::S(key.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = out.item()?;
    let n = |a: &str| item.get(a).and_then(|v| v.as_n().ok()).map(|n| n.parse::<u64>().unwrap());
    Some((n(COUNT_ATTR).expect("counter attribute"), n(TTL_ATTR).expect("TTL attribute")))
}

fn granted(o: QuotaOutcome) -> Charge {
    match o {
        QuotaOutcome::Granted(c) => c,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// Fires 50 charges at once, all at `now`, and counts the answers. The caller reads the counters at the same `now`:
/// a second `fixed_now()` could fall in the next minute while 50 charges queue through single-threaded moto.
async fn fifty_at_once(f: &Fixture, who: &CallerId, windows: &[QuotaWindow], now: SystemTime) -> (usize, usize) {
    let store = Arc::new(f.store.clone());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, who, windows) = (store.clone(), who.clone(), windows.to_vec());
            tokio::spawn(async move { store.try_charge(&who, &windows, now).await })
        })
        .collect();
    let (mut grants, mut refusals) = (0, 0);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            QuotaOutcome::Granted(_) => grants += 1,
            QuotaOutcome::Exhausted { retry_after, window } => {
                assert!(retry_after >= Duration::from_secs(1), "Retry-After must be positive");
                assert_eq!(window, "day");
                refusals += 1;
            }
        }
    }
    (grants, refusals)
}

// Atomicity caveat: moto's default threaded server does NOT make conditional writes atomic (measured: 4 grants out
// of 50 for a limit of 3 in some rounds). scripts/with-moto.sh serves moto one request at a time, which is what makes
// these two tests meaningful against the emulator; DynamoDB itself evaluates the condition atomically.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_charges_grant_exactly_three_a_day() {
    let f = fixture().await;
    let who = caller("three-a-day");
    let day = [window("day", 86_400, 3)];
    let now = fixed_now();
    assert_eq!(fifty_at_once(&f, &who, &day, now).await, (3, 47));
    assert_eq!(f.counter(&who, &day[0], now).await.map(|c| c.0), Some(3));
}

// Same caveat as above: relies on moto serving one request at a time (scripts/with-moto.sh).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_multi_window_charges_grant_exactly_three() {
    let f = fixture().await;
    let who = caller("three-a-day-multi");
    let windows = [window("minute", 60, 100), window("day", 86_400, 3)];
    let now = fixed_now();
    assert_eq!(fifty_at_once(&f, &who, &windows, now).await, (3, 47));
    assert_eq!(f.counter(&who, &windows[0], now).await.map(|c| c.0), Some(3), "refusals charged the minute");
    assert_eq!(f.counter(&who, &windows[1], now).await.map(|c| c.0), Some(3));
}

#[tokio::test]
async fn a_full_minute_charges_nothing_to_the_day() {
    let f = fixture().await;
    let who = caller("two-a-minute");
    let windows = [window("minute", 60, 2), window("day", 86_400, 3)];
    let now = fixed_now(); // hh:mm:10
    granted(f.store.try_charge(&who, &windows, now).await.unwrap());
    granted(f.store.try_charge(&who, &windows, now).await.unwrap());
    let out = f.store.try_charge(&who, &windows, now).await.unwrap();
    assert_eq!(out, QuotaOutcome::Exhausted { retry_after: Duration::from_secs(50), window: "minute".into() });
    assert_eq!(f.counter(&who, &windows[0], now).await.map(|c| c.0), Some(2));
    assert_eq!(f.counter(&who, &windows[1], now).await.map(|c| c.0), Some(2), "the day must not have been charged");

    // The next minute has room; the day takes its third and last grant, then the day is what refuses.
    let later = now + Duration::from_secs(60);
    granted(f.store.try_charge(&who, &windows, later).await.unwrap());
    let out = f.store.try_charge(&who, &windows, later).await.unwrap();
    let QuotaOutcome::Exhausted { retry_after, window } = out else { panic!("expected exhausted, got {out:?}") };
    assert_eq!(window, "day");
    let secs = later.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(retry_after, Duration::from_secs(86_400 - secs % 86_400));
    assert_eq!(
        f.counter(&who, &windows[0], later).await.map(|c| c.0),
        Some(1),
        "the minute must not have been charged"
    );
    assert_eq!(f.counter(&who, &windows[1], later).await.map(|c| c.0), Some(3));
}

#[tokio::test]
async fn retry_after_waits_for_every_full_window() {
    let f = fixture().await;
    let who = caller("one-a-minute-one-an-hour");
    let windows = [window("minute", 60, 1), window("hour", 3_600, 1)];
    let now = fixed_now();
    granted(f.store.try_charge(&who, &windows, now).await.unwrap());
    let out = f.store.try_charge(&who, &windows, now).await.unwrap();
    // Both are full: coming back when the minute resets would still be refused by the hour.
    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(
        out,
        QuotaOutcome::Exhausted { retry_after: Duration::from_secs(3_600 - secs % 3_600), window: "hour".into() }
    );
}

#[tokio::test]
async fn refund_gives_the_count_back_and_never_below_zero() {
    let f = fixture().await;
    let who = caller("refunded");
    let windows = [window("minute", 60, 1), window("day", 86_400, 3)];
    let now = fixed_now();
    let charge = granted(f.store.try_charge(&who, &windows, now).await.unwrap());
    assert_eq!(charge.counters.len(), 2);
    assert!(matches!(f.store.try_charge(&who, &windows, now).await.unwrap(), QuotaOutcome::Exhausted { .. }));

    f.store.refund(&charge).await.unwrap();
    assert_eq!(f.counter(&who, &windows[0], now).await.map(|c| c.0), Some(0));
    assert_eq!(f.counter(&who, &windows[1], now).await.map(|c| c.0), Some(0));
    f.store.refund(&charge).await.unwrap();
    assert_eq!(f.counter(&who, &windows[1], now).await.map(|c| c.0), Some(0), "a double refund must not go negative");
    granted(f.store.try_charge(&who, &windows, now).await.unwrap());

    // Single-window charges are refunded the same way.
    let day = [window("day", 86_400, 1)];
    let other = caller("refunded-single");
    let charge = granted(f.store.try_charge(&other, &day, now).await.unwrap());
    f.store.refund(&charge).await.unwrap();
    granted(f.store.try_charge(&other, &day, now).await.unwrap());
}

#[tokio::test]
async fn counters_carry_a_ttl_just_past_their_window() {
    let f = fixture().await;
    let who = caller("ttl");
    let windows = [window("minute", 60, 5), window("hour", 3_600, 5), window("day", 86_400, 5)];
    let now = fixed_now();
    granted(f.store.try_charge(&who, &windows, now).await.unwrap());
    granted(f.store.try_charge(&who, &windows, now).await.unwrap());
    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let margin = DynamoQuotaConfig::new("t").ttl_margin.as_secs();
    for w in &windows {
        let len = w.length.as_secs();
        let end = secs - secs % len + len;
        let (count, ttl) = f.counter(&who, w, now).await.expect("counter item");
        assert_eq!(count, 2);
        assert_eq!(ttl, end + margin, "TTL of the {} counter", w.name);
        assert!(ttl > secs, "a TTL in the past would let DynamoDB delete a live counter");
    }
}

#[tokio::test]
async fn closed_endpoint_is_unavailable_quickly() {
    let sdk = sdk_config(&closed_endpoint()).await;
    let mut config = DynamoQuotaConfig::new("quota");
    config.operation_timeout = Duration::from_secs(1);
    let store = DynamoQuotaStore::from_sdk_config(&sdk, config);
    let who = caller("nobody-home");
    for windows in [vec![window("day", 86_400, 3)], vec![window("minute", 60, 2), window("day", 86_400, 3)]] {
        let started = Instant::now();
        let err = store.try_charge(&who, &windows, fixed_now()).await.unwrap_err();
        assert!(matches!(err, QuotaError::Unavailable(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    }
    let counters =
        vec![ChargedCounter { window: "day".into(), window_start: 0, window_length: Duration::from_secs(86_400) }];
    let started = Instant::now();
    let err = store.refund(&Charge { caller: who, counters }).await.unwrap_err();
    assert!(matches!(err, QuotaError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn silent_endpoint_is_unavailable_within_the_operation_timeout() {
    let (endpoint, _listener) = silent_endpoint();
    let sdk = sdk_config(&endpoint).await;
    let mut config = DynamoQuotaConfig::new("quota");
    config.operation_timeout = Duration::from_secs(1);
    let store = DynamoQuotaStore::from_sdk_config(&sdk, config);
    let started = Instant::now();
    let err = store.try_charge(&caller("black-hole"), &[window("day", 86_400, 3)], fixed_now()).await.unwrap_err();
    assert!(matches!(err, QuotaError::Unavailable(_)), "{err:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the operation timeout did not bound the call: {took:?}");
}
