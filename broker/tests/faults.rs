//! Fault tests: the quota store, the credential store and Cognito being down, slow or wrong. The broker must fail
//! closed, quickly, with the right status, and without calling what it should not call.

mod support;

use std::time::{Duration, Instant, SystemTime};

use support::*;
use tb_broker::metric_names as names;
use tb_broker::CacheConfig;
use tb_devkit::cognito::ThrottleStyle;

const GRANT: &str = "grant_type=client_credentials";

// ---------------------------------------------------------------- quota store

/// GIVEN the quota store is down THEN 503 temporarily_unavailable with Retry-After, and neither a credential read
/// nor an upstream call.
#[tokio::test]
async fn quota_store_down_is_503_without_any_upstream_call() {
    let h = Harness::start().await;
    h.quotas.set_unavailable(true);
    let r = h.post("order-svc", GRANT).await;
    assert_error(&r, 503, "temporarily_unavailable");
    assert!(retry_after(&r) >= 1);
    assert_eq!(h.standin.token_requests(), 0);
    assert_eq!(h.store_reads(), 0);

    h.quotas.set_unavailable(false);
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);
}

// ---------------------------------------------------------------- credential store

/// GIVEN credentials were read once and the store then goes down WHEN the TTL has passed THEN the cached value is
/// still served (within the stale bound) and tokens are still issued.
#[tokio::test]
async fn credential_store_down_with_a_cached_value_still_serves() {
    let cache = CacheConfig {
        ttl: Duration::from_millis(50),
        max_stale: Duration::from_secs(600),
        retry_after_failure: Duration::from_millis(10),
        ..CacheConfig::default()
    };
    let h = Harness::with(Options { credentials_cache: cache, ..Options::default() }).await;
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);
    h.store.set_unavailable(true);
    tokio::time::sleep(Duration::from_millis(120)).await; // past the TTL: the next read must go to the store
    let reads_before = h.store_reads();
    let r = h.post("order-svc", GRANT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(h.store_reads() > reads_before, "the store was asked and failed; the stale value served");
    assert_eq!(h.standin.token_requests(), 2);
}

/// GIVEN the credential store is down and nothing is cached THEN 503 with Retry-After, no upstream call, and the
/// quota charge is given back.
#[tokio::test]
async fn credential_store_down_and_cold_is_503() {
    let h = Harness::start().await;
    h.store.set_unavailable(true);
    let r = h.post("limited-svc", GRANT).await;
    assert_error(&r, 503, "temporarily_unavailable");
    assert!(retry_after(&r) >= 1);
    assert_eq!(h.standin.token_requests(), 0);
    let caller = tb_shared::ids::CallerId::try_from("limited-svc").unwrap();
    let day = h.broker.policy.caller(&caller).unwrap().quotas[0].clone();
    assert_eq!(h.quotas.count(&caller, &day, SystemTime::now()), 0);
}

/// GIVEN the credential store has no parameter for the caller's app client (an operator error) THEN 502, not 503:
/// retrying will not help.
#[tokio::test]
async fn missing_credentials_are_a_502() {
    let h = Harness::start().await;
    h.store.remove("orders");
    assert_error(&h.post("order-svc", GRANT).await, 502, "server_error");
    assert_eq!(h.standin.token_requests(), 0);
}

// ---------------------------------------------------------------- Cognito slow

/// GIVEN Cognito answers after 5 s and one attempt may take 300 ms THEN 503 with Retry-After, long before the
/// Lambda's deadline, after exactly the attempt and its one retry.
#[tokio::test]
async fn cognito_slower_than_the_timeout_is_503_before_the_deadline() {
    let h = Harness::with(Options { attempt_timeout: Duration::from_millis(300), ..Options::default() }).await;
    h.standin.faults().set_delay(Duration::from_secs(5));
    let deadline = SystemTime::now() + Duration::from_secs(3);
    let started = Instant::now();
    let r = h.send_with_deadline(request(Some("order-svc"), GRANT), deadline).await;
    let took = started.elapsed();
    assert_error(&r, 503, "temporarily_unavailable");
    assert!(retry_after(&r) >= 1);
    assert!(SystemTime::now() < deadline, "answered after the deadline ({took:?})");
    assert_eq!(h.standin.token_requests(), 2, "one attempt and one retry");
}

/// GIVEN a generous attempt timeout but a Lambda with only 1.5 s left THEN the call is cut to the remaining time and
/// the answer comes before the deadline.
#[tokio::test]
async fn upstream_timeout_is_cut_to_the_lambda_deadline() {
    let h = Harness::with(Options { attempt_timeout: Duration::from_secs(30), ..Options::default() }).await;
    h.standin.faults().set_delay(Duration::from_secs(10));
    let deadline = SystemTime::now() + Duration::from_millis(1500);
    let r = h.send_with_deadline(request(Some("order-svc"), GRANT), deadline).await;
    assert_error(&r, 503, "temporarily_unavailable");
    assert!(SystemTime::now() < deadline, "answered after the deadline");
    assert_eq!(h.standin.token_requests(), 1, "no time was left for a retry");
}

/// GIVEN a Lambda whose deadline has already passed THEN nothing is sent upstream at all.
#[tokio::test]
async fn no_upstream_call_without_time_left() {
    let h = Harness::start().await;
    let r = h.send_with_deadline(request(Some("order-svc"), GRANT), SystemTime::now()).await;
    assert_error(&r, 503, "temporarily_unavailable");
    assert_eq!(h.standin.token_requests(), 0);
}

// ---------------------------------------------------------------- Cognito errors, retry, breaker

/// GIVEN one Cognito 5xx (or one throttle, in either shape) THEN the single jittered retry gets the token.
#[tokio::test]
async fn one_transient_failure_is_retried_once() {
    let h = Harness::start().await;
    h.standin.faults().fail_next(1, 500);
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);
    assert_eq!(h.standin.token_requests(), 2);

    h.standin.faults().throttle_next(1, ThrottleStyle::CognitoBadRequest);
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);
    h.standin.faults().throttle_next(1, ThrottleStyle::TooManyRequests);
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);
    assert_eq!(h.standin.token_requests(), 6);
}

/// GIVEN Cognito keeps throttling THEN 503 (not 502: Cognito is busy, nothing is misconfigured).
#[tokio::test]
async fn persistent_throttling_is_503() {
    let h = Harness::start().await;
    h.standin.faults().throttle_all(ThrottleStyle::CognitoBadRequest);
    assert_error(&h.post("order-svc", GRANT).await, 503, "temporarily_unavailable");
    assert_eq!(h.standin.token_requests(), 2);
}

/// GIVEN a breaker that opens after 3 failed attempts WHEN Cognito answers 5xx to everything THEN after the run of
/// failures later requests fail fast with no upstream call; WHEN Cognito recovers and the open period passes THEN
/// one probe closes the breaker and tokens flow again.
#[tokio::test]
async fn run_of_5xx_opens_the_breaker_and_it_closes_after_recovery() {
    // Long enough that five requests, jittered retries included, fit inside it on a loaded machine.
    let open_for = Duration::from_millis(2000);
    let h = Harness::with(Options { breaker_threshold: 3, breaker_open: open_for, ..Options::default() }).await;
    h.standin.faults().fail_all(503);

    assert_error(&h.post("order-svc", GRANT).await, 503, "temporarily_unavailable"); // attempts 1, 2
    assert_eq!(h.standin.token_requests(), 2);
    assert_error(&h.post("order-svc", GRANT).await, 503, "temporarily_unavailable"); // attempt 3 opens it
    assert_eq!(h.standin.token_requests(), 3);
    assert!(h.broker.upstream.breaker_open());

    for _ in 0..5 {
        let r = h.post("order-svc", GRANT).await;
        assert_error(&r, 503, "temporarily_unavailable");
        assert!(retry_after(&r) >= 1);
    }
    assert_eq!(h.standin.token_requests(), 3, "an open breaker makes no upstream call");

    h.standin.faults().clear();
    tokio::time::sleep(open_for + Duration::from_millis(100)).await;
    assert_eq!(h.post("order-svc", GRANT).await.status, 200, "the half-open probe succeeds");
    assert!(!h.broker.upstream.breaker_open());
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);
    assert_eq!(h.standin.token_requests(), 5);
}

/// GIVEN the breaker is open and Cognito is still down WHEN the probe fails THEN the breaker opens again.
#[tokio::test]
async fn failed_probe_reopens_the_breaker() {
    // Long enough that the retried probe (up to 120 ms of jitter) and the next request fit inside it.
    let open_for = Duration::from_millis(1500);
    let h = Harness::with(Options { breaker_threshold: 1, breaker_open: open_for, ..Options::default() }).await;
    h.standin.faults().fail_all(500);
    assert_error(&h.post("order-svc", GRANT).await, 503, "temporarily_unavailable");
    assert_eq!(h.standin.token_requests(), 1);
    tokio::time::sleep(open_for + Duration::from_millis(100)).await;
    assert_error(&h.post("order-svc", GRANT).await, 503, "temporarily_unavailable"); // the probe
    assert_eq!(h.standin.token_requests(), 2);
    assert_error(&h.post("order-svc", GRANT).await, 503, "temporarily_unavailable");
    assert_eq!(h.standin.token_requests(), 2, "open again after the failed probe");
}

// ---------------------------------------------------------------- rotated secret

/// GIVEN the operator rotated the app client's secret (Cognito and the store both have the new one) while the broker
/// still caches the old one THEN Cognito's invalid_client makes exactly one store read and the retry succeeds.
#[tokio::test]
async fn rotated_secret_causes_exactly_one_refetch() {
    let mut h = Harness::start().await;
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);
    assert_eq!(h.store_reads(), 1);
    h.rotate("orders", true);
    let r = h.post("order-svc", GRANT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.store_reads(), 2, "exactly one refetch");
    assert_eq!(h.standin.token_requests(), 3, "first grant, refused attempt, retried attempt");
    assert_eq!(h.metric_total(names::CREDENTIAL_REFRESHES), 1.0);
    assert_eq!(h.metric_total(names::INVALID_CLIENT_ALARM), 0.0);
    // And the new secret is cached from now on.
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);
    assert_eq!(h.store_reads(), 2);
}

/// GIVEN Cognito's secret changed but the store still holds the old one THEN after one refetch Cognito still refuses:
/// 502 server_error, the alarm metric, and no second refetch.
#[tokio::test]
async fn still_refused_after_refetch_is_502_with_alarm() {
    let mut h = Harness::start().await;
    h.rotate("limited", false);
    let r = h.post("limited-svc", GRANT).await;
    assert_error(&r, 502, "server_error");
    assert_eq!(h.store_reads(), 2, "the first read and exactly one refetch");
    assert_eq!(h.standin.token_requests(), 2);
    assert_eq!(h.metric_total(names::INVALID_CLIENT_ALARM), 1.0);
    let caller = tb_shared::ids::CallerId::try_from("limited-svc").unwrap();
    let day = h.broker.policy.caller(&caller).unwrap().quotas[0].clone();
    assert_eq!(h.quotas.count(&caller, &day, SystemTime::now()), 0, "refunded");
}
