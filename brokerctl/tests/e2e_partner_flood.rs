//! End-to-end: the partner domain under a flood. The partner domain is public, so anyone can send it requests
//! without credentials, and every request the stage lets through costs an authorizer invocation. Its stage has a
//! throttle of its own: a flood of credential-less and bad-JWT requests is cut to 429 by that throttle, and the
//! certificate callers on the mTLS domain, whose stage has its own bucket, keep getting tokens meanwhile. The
//! optional WAF per-IP rule blocks one address's flood before the stage sees it.
//!
//! Both stages get the same small limits here, so a single shared bucket (the arrangement this guards against)
//! would be drained by the flood and the certificate callers would get 429 too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokerctl::devstack::{GatewayStats, IpRateLimit};
use e2e_common::{client, start, token_request, Mode};

#[macro_use]
mod e2e_common;

/// Each stage's rate (requests/s) and burst in the flood tests.
const RATE: f64 = 2.0;
const BURST: u32 = 10;
/// Concurrent flooding connections.
const FLOODERS: usize = 16;
/// Certificate-caller requests sent while the flood runs.
const PROBES: usize = 8;

/// What the flood's requests got.
#[derive(Default)]
struct FloodTally {
    sent: AtomicU64,
    unauthorized: AtomicU64,
    throttled: AtomicU64,
    other: AtomicU64,
}

async fn certificate_callers_get_tokens_while_the_partner_domain_is_flooded(mode: Mode) {
    let s = start(mode, "flood", |o| {
        o.gateway.stage_rate = RATE;
        o.gateway.stage_burst = BURST;
        o.gateway.partner_rate = RATE;
        o.gateway.partner_burst = BURST;
    })
    .await;
    // Bad JWTs of two kinds: one the partner's key signed but that expired, and one that is not a JWT at all.
    let expired = s
        .state()
        .partner_token_with(
            brokerctl::devstack::state::PARTNER_SUBJECT,
            Duration::from_secs(600),
            Duration::from_secs(120),
        )
        .unwrap();
    let bearers: Arc<[Option<String>]> = Arc::from(vec![None, Some(expired), Some("not-a-jwt".to_owned())]);

    let tally = Arc::new(FloodTally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut flooders = Vec::new();
    for i in 0..FLOODERS {
        // One client (and so one keep-alive connection pool) per flooder, as separate attackers would have.
        let (c, url) = (client(&s, None), s.partner_url());
        let (tally, stop, bearers) = (tally.clone(), stop.clone(), bearers.clone());
        flooders.push(tokio::spawn(async move {
            let mut n = i;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let (status, _) = token_request(&c, &url, None, bearers[n % bearers.len()].as_deref()).await;
                n += 1;
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let counter = match status {
                    401 => &tally.unauthorized,
                    429 => &tally.throttled,
                    _ => &tally.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // The partner bucket is empty once the flood has sent well over its burst; probe the mTLS domain from then on.
    while tally.throttled.load(Ordering::Relaxed) < u64::from(BURST) * 5 {
        assert!(started.elapsed() < Duration::from_secs(30), "the flood never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent_before_probes = tally.sent.load(Ordering::Relaxed);
    let orders = client(&s, Some("order-processing"));
    let mut probes = Vec::new();
    for _ in 0..PROBES {
        let (status, body) = token_request(&orders, &s.mtls_url(), None, None).await;
        probes.push((status, body["access_token"].is_string()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent_during_probes = tally.sent.load(Ordering::Relaxed) - sent_before_probes;
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();

    assert!(probes.iter().all(|&(st, token)| st == 200 && token), "certificate callers during the flood: {probes:?}");
    assert!(
        sent_during_probes >= u64::from(BURST) * 5,
        "the flood went quiet while the certificate callers were asking ({sent_during_probes} requests then)"
    );

    let (sent, unauthorized, throttled, other) = (
        tally.sent.load(Ordering::Relaxed),
        tally.unauthorized.load(Ordering::Relaxed),
        tally.throttled.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    assert_eq!(other, 0, "every flood request is a 401 or a 429");
    // The partner stage's throttle really applies: no more reached the authorizer than its bucket holds plus what
    // it refilled in the time the flood ran (one token of slack for the refill in flight).
    let admitted_at_most = f64::from(BURST) + RATE * elapsed + 1.0;
    assert!(
        (unauthorized as f64) <= admitted_at_most,
        "{unauthorized} flood requests reached the authorizer in {elapsed:.1} s; the partner stage admits at most \
         {admitted_at_most:.0}"
    );
    assert!(throttled >= sent / 2, "only {throttled} of {sent} flood requests were throttled");

    let st = s.stats();
    assert_eq!(GatewayStats::get(&st.partner_stage_throttled), throttled);
    assert_eq!(GatewayStats::get(&st.mtls_stage_throttled), 0, "the flood took the mTLS stage's tokens");
    assert_eq!(GatewayStats::get(&st.stage_throttled), throttled);
    assert_eq!(GatewayStats::get(&st.authorizer_calls), unauthorized + PROBES as u64);
    assert_eq!(GatewayStats::get(&st.broker_calls), PROBES as u64, "only the certificate callers reached the broker");
}

/// Each stage's throttle counts only its own domain's requests: with the mTLS stage's bucket emptied, the partner
/// still gets its token; and the converse.
async fn each_domains_throttle_is_its_own(mode: Mode) {
    let s = start(mode, "stages", |o| {
        o.gateway.stage_rate = 0.01;
        o.gateway.stage_burst = 2;
        o.gateway.partner_rate = 0.01;
        o.gateway.partner_burst = 2;
    })
    .await;
    let orders = client(&s, Some("order-processing"));
    let partner = client(&s, None);
    let jwt = s.state().partner_token().unwrap();
    let mtls: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(token_request(&orders, &s.mtls_url(), None, None).await.0);
        }
        v
    };
    assert_eq!(mtls, [200, 200, 429]);
    let mut partner_statuses = Vec::new();
    for _ in 0..3 {
        partner_statuses.push(token_request(&partner, &s.partner_url(), None, Some(&jwt)).await.0);
    }
    assert_eq!(partner_statuses, [200, 200, 429], "the mTLS domain's requests used the partner stage's tokens");
    let st = s.stats();
    assert_eq!((GatewayStats::get(&st.mtls_stage_throttled), GatewayStats::get(&st.partner_stage_throttled)), (1, 1));
}

both!(certificate_callers_get_tokens_while_the_partner_domain_is_flooded, each_domains_throttle_is_its_own);

/// With the WAF rule on, one address's requests past the limit get `WAF_FILTERED` 403 before the stage throttle or
/// the authorizer sees them; the mTLS domain, which the web ACL does not cover, still serves that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waf_rule_blocks_one_address_past_its_limit_on_the_partner_domain_only() {
    const LIMIT: u32 = 10;
    let s = start(Mode::Embedded, "waf", |o| {
        o.gateway.partner_ip_rate_limit = Some(IpRateLimit::new(LIMIT, Duration::from_secs(300)).unwrap());
    })
    .await;
    let c = client(&s, None);
    let mut statuses = Vec::new();
    let mut last = serde_json::Value::Null;
    for _ in 0..LIMIT + 5 {
        let (status, body) = token_request(&c, &s.partner_url(), None, None).await;
        statuses.push(status);
        last = body;
    }
    let expected: Vec<u16> = [401].repeat(LIMIT as usize).into_iter().chain([403; 5]).collect();
    assert_eq!(statuses, expected);
    assert_eq!(last["error"], "unauthorized_client", "{last}");
    assert!(last["request_id"].as_str().is_some_and(|r| r.len() == 36), "{last}");
    let st = s.stats();
    assert_eq!(GatewayStats::get(&st.waf_filtered), 5);
    assert_eq!(GatewayStats::get(&st.authorizer_calls), u64::from(LIMIT), "a blocked request reached the authorizer");
    assert_eq!(GatewayStats::get(&st.stage_throttled), 0);

    let (status, body) = token_request(&client(&s, Some("order-processing")), &s.mtls_url(), None, None).await;
    assert_eq!(status, 200, "the web ACL covers the partner stage only: {body}");
}

/// Without the rule (the template's default) the partner domain blocks no address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_waf_rule_no_address_is_blocked() {
    let s = start(Mode::Embedded, "nowaf", |_| {}).await;
    let c = client(&s, None);
    for i in 0..IpRateLimit::MIN_LIMIT + 5 {
        let (status, body) = token_request(&c, &s.partner_url(), None, None).await;
        assert_eq!(status, 401, "request {i}: {body}");
    }
    assert_eq!(GatewayStats::get(&s.stats().waf_filtered), 0);
}
