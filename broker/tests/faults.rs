//! Fault tests: the quota store, the credential store and Cognito being down, slow or wrong. The broker must fail
//! closed, quickly, with the right status, and without calling what it should not call.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use support::*;
use tb_broker::metric_names as names;
use tb_broker::{
    CacheConfig, Charge, DynamoQuotaConfig, DynamoQuotaStore, MemoryQuotaStore, QuotaError, QuotaOutcome, QuotaStore,
};
use tb_devkit::cognito::ThrottleStyle;
use tb_shared::ids::CallerId;
use tb_shared::policy::QuotaWindow;

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

/// GIVEN Cognito's secret changed but the store still holds the old one THEN the one refetch reads the refused secret
/// again, so Cognito is not asked a second time: 502 server_error, the alarm metric, and the charge kept (asking
/// again would fail the same way, so the attempt counts).
#[tokio::test]
async fn still_refused_after_refetch_is_502_with_alarm() {
    let mut h = Harness::start().await;
    h.rotate("limited", false);
    let r = h.post("limited-svc", GRANT).await;
    assert_error(&r, 502, "server_error");
    assert_eq!(h.store_reads(), 2, "the first read and exactly one refetch");
    assert_eq!(h.standin.token_requests(), 1, "the refetched secret is the refused one: not sent again");
    assert_eq!(h.metric_total(names::INVALID_CLIENT_ALARM), 1.0);
    assert_eq!(h.charged("limited-svc"), 1, "a refused secret is not refunded");
}

/// GIVEN the store holds a secret Cognito refuses and a caller allowed one grant a day WHEN it asks 100 times THEN
/// the first answer is a 502 that keeps its charge and the other 99 are 429: one Cognito call and two store reads in
/// all, however often the caller retries.
#[tokio::test]
async fn refused_secret_is_metered_so_retries_hit_the_quota() {
    let mut h = Harness::start().await;
    h.rotate("once", false);
    let mut statuses = BTreeMap::new();
    for _ in 0..100 {
        *statuses.entry(h.post("once-svc", GRANT).await.status).or_insert(0) += 1;
    }
    assert_eq!(statuses, BTreeMap::from([(429, 99), (502, 1)]));
    assert_eq!(h.standin.token_requests(), 1);
    assert_eq!(h.store_reads(), 2);
    assert_eq!(h.charged("once-svc"), 1);
}

/// GIVEN the store holds a secret Cognito refuses and a caller with plenty of quota WHEN it asks 100 times THEN every
/// answer is a 502 but the refused secret is held back for `retry_after_failure`: one Cognito call and two store
/// reads in all, and every attempt is charged. WHEN the operator then fixes the store THEN the broker picks the new
/// secret up once the hold has passed, with one more store read.
#[tokio::test]
async fn refused_secret_is_held_back_then_a_fixed_store_is_picked_up() {
    let hold = Duration::from_millis(1500);
    let cache = CacheConfig { retry_after_failure: hold, ..CacheConfig::default() };
    let mut h = Harness::with(Options { credentials_cache: cache, ..Options::default() }).await;
    let right = h.rotate("orders", false);
    let started = Instant::now();
    for _ in 0..100 {
        assert_error(&h.post("order-svc", GRANT).await, 502, "server_error");
    }
    assert!(
        started.elapsed() < hold,
        "the loop outlived the hold ({:?}); the counts below assume it",
        started.elapsed()
    );
    assert_eq!(h.standin.token_requests(), 1, "the refused secret is not sent again while held");
    assert_eq!(h.store_reads(), 2, "the first read and one refetch, not one per request");
    assert_eq!(h.metric_total(names::INVALID_CLIENT_ALARM), 100.0);
    assert_eq!(h.charged("order-svc"), 100, "refused attempts are not refunded");

    h.store.insert("orders", creds_for(&h.standin, client_id_of("orders"), &right));
    tokio::time::sleep(hold + Duration::from_millis(200)).await;
    let r = h.post("order-svc", GRANT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.store_reads(), 3);
    assert_eq!(h.standin.token_requests(), 3, "the held secret tried once more, then the fixed one");
    assert_eq!(h.post("order-svc", GRANT).await.status, 200);
    assert_eq!(h.store_reads(), 3);
}

/// GIVEN a missing credentials parameter (an operator error) THEN each attempt keeps its charge and the store is not
/// read again on every request.
#[tokio::test]
async fn missing_credentials_are_metered_and_not_reread_per_request() {
    let h = Harness::start().await;
    h.store.remove("limited");
    for _ in 0..3 {
        assert_error(&h.post("limited-svc", GRANT).await, 502, "server_error");
    }
    assert_error(&h.post("limited-svc", GRANT).await, 429, "temporarily_unavailable");
    assert_eq!(h.charged("limited-svc"), 3);
    assert_eq!(h.store_reads(), 1, "the missing parameter is remembered for retry_after_failure");
    assert_eq!(h.standin.token_requests(), 0);
}

// ---------------------------------------------------------------- the refund and the deadline

/// Charges in memory and refunds through DynamoDB at an endpoint that accepts connections and never answers.
struct SilentRefunds {
    charges: MemoryQuotaStore,
    refunds: DynamoQuotaStore,
}

#[async_trait]
impl QuotaStore for SilentRefunds {
    async fn try_charge(
        &self,
        caller: &CallerId,
        windows: &[QuotaWindow],
        now: SystemTime,
    ) -> Result<QuotaOutcome, QuotaError> {
        self.charges.try_charge(caller, windows, now).await
    }
    async fn refund(&self, charge: &Charge) -> Result<(), QuotaError> {
        self.refunds.refund(charge).await
    }
}

/// GIVEN a Lambda with 3.6 s left, Cognito slower than that, and a quota table that stops answering after the
/// charge THEN the refund gets only the time left before the deadline: the 503 comes back before it (the charge
/// stays, the safe direction).
#[tokio::test]
async fn refund_is_cut_to_the_lambda_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let sdk = tb_devkit::moto::sdk_config_at(&endpoint, tb_devkit::moto::REGION).await;
    let store = Arc::new(SilentRefunds {
        charges: MemoryQuotaStore::new(),
        refunds: DynamoQuotaStore::from_sdk_config(&sdk, DynamoQuotaConfig::new("quota")),
    });
    let h = Harness::with(Options { quota_store: Some(store.clone()), ..Options::default() }).await;
    h.standin.faults().set_delay(Duration::from_secs(10));
    let deadline = SystemTime::now() + Duration::from_millis(3600);
    let started = Instant::now();
    let r = h.send_with_deadline(request(Some("limited-svc"), GRANT), deadline).await;
    let took = started.elapsed();
    assert_error(&r, 503, "temporarily_unavailable");
    assert!(SystemTime::now() < deadline, "answered after the deadline ({took:?})");
    assert_eq!(h.standin.token_requests(), 1);
    let who = CallerId::try_from("limited-svc").unwrap();
    let day = h.broker.policy.caller(&who).unwrap().quotas[0].clone();
    assert_eq!(store.charges.count(&who, &day, SystemTime::now()), 1, "the lost refund over-counts");
    drop(listener);
}
