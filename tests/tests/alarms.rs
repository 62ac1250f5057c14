//! Every alarm of the deployment template that reads a metric the functions write, shown firing in the failure it
//! is for and staying quiet under ordinary traffic, from the EMF lines the real handlers print.
//!
//! Each scenario builds the functions as the template deploys them (`alarm_world`), drives them, and evaluates the
//! template's own alarms (`alarm_sim`, resolved from `infra/template.yaml`) on what they wrote. A scenario is one
//! alarm period, repeated: "fires" means the alarm goes to ALARM if the situation persists for `DatapointsToAlarm`
//! periods; "quiet" means it does not, however long it lasts. Each asserts the exact set of alarms that fire.
//! `cargo test -p tb-tests --test alarms -- --nocapture` prints each alarm's verdict with its datapoint.

mod alarm_sim;
mod alarm_world;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use alarm_sim::{evaluate_all, parse_lines, AlarmSet, Datapoint, Evaluation};
use alarm_world::*;
use tb_devkit::cognito::ThrottleStyle;
use tb_devkit::events::ProxyRequestBuilder;
use tb_shared::context::{KeySet, KEY_CALLER_ID};
use tb_shared::telemetry::CaptureWriter;

const GRANT: &str = "grant_type=client_credentials";

/// The template's alarms the evaluator decides, each with the scenario below that makes it fire. A new alarm on an
/// EMF metric fails `every_alarm_of_the_template_is_simulated_or_listed` until it is added here with a scenario.
const SIMULATED: &[(&str, &str)] = &[
    ("UpstreamErrorsAlarm", "cognito_failing_raises_upstream_errors"),
    ("UpstreamInvalidClientAlarm", "cognito_refusing_the_brokers_secret_raises_upstream_invalid_client"),
    ("AuthorizerErrorsAlarm", "an_unreadable_truststore_raises_authorizer_errors_and_trust_refresh_failures"),
    ("TrustRefreshFailuresAlarm", "an_unreadable_truststore_raises_authorizer_errors_and_trust_refresh_failures"),
    ("CrlNextUpdateWarningAlarm", "a_crl_near_its_next_update_warns_then_pages"),
    ("CrlNextUpdatePageAlarm", "a_crl_near_its_next_update_warns_then_pages"),
    ("TruststoreExpiryAlarm", "a_ca_certificate_near_its_end_raises_truststore_expiry"),
    ("JwksFetchFailuresAlarm", "a_failing_partner_jwks_endpoint_raises_jwks_fetch_failures"),
    ("QuotaDenialsAlarm", "a_caller_past_its_quota_raises_quota_denials_at_the_threshold"),
    ("MissingAuthorizerContextAlarm", "a_request_without_authorizer_context_raises_missing_authorizer_context"),
    ("TokenLifetimeAlarm", "an_over_long_cognito_token_raises_token_lifetime"),
    ("ForgedContextAlarm", "a_forged_caller_context_raises_forged_context"),
    ("FleetCacheDamagedAlarm", "a_damaged_fleet_cache_item_raises_fleet_cache_damaged"),
    ("FleetCacheUnavailableAlarm", "a_failing_fleet_cache_raises_fleet_cache_unavailable"),
];

/// The template's other alarms, and why no EMF line can decide them.
const NOT_SIMULATED: &[(&str, &str)] = &[
    ("Api5xxAlarm", "metric math over API Gateway's own 5XXError of both stages (AWS/ApiGateway)"),
    (
        "BrokerFunctionErrorsAlarm",
        "Lambda's own Errors metric of the broker (AWS/Lambda): init errors, panics, timeouts",
    ),
    (
        "CrlGaugeMissingAlarm",
        "metric math: Lambda's Invocations (AWS/Lambda) against the SampleCount of the CRL gauge over an hour; it \
         fires on a gauge that is absent, which needs Lambda's own count of invocations",
    ),
    (
        "MtlsUnauthorizedRateAlarm",
        "metric math over MtlsRequests and MtlsUnauthorized, which metric filters derive from API Gateway's access \
         log, not from a function's line",
    ),
    ("ThrottlesAlarm", "metric math over the access-log metric GatewayThrottles and Lambda's Throttles (AWS/Lambda)"),
];

fn alarms() -> AlarmSet {
    template_as(STACK).alarms().unwrap_or_else(|e| panic!("{e}"))
}

/// Every datapoint the captures hold (each capture holds EMF lines only).
fn points(captures: &[&CaptureWriter]) -> Vec<Datapoint> {
    captures.iter().flat_map(|c| parse_lines(&c.contents()).unwrap_or_else(|e| panic!("{e}"))).collect()
}

/// Evaluates every simulated alarm on the captures, prints each verdict, and checks that exactly `firing` fire.
fn verdicts(scenario: &str, set: &AlarmSet, captures: &[&CaptureWriter], firing: &[&str]) -> Vec<Evaluation> {
    for name in firing {
        assert!(set.alarm(name).is_some(), "{scenario}: {name} is not a simulated alarm");
    }
    let evals = evaluate_all(&set.simulated, &points(captures));
    let fired: BTreeSet<&str> = evals.iter().filter(|e| e.fires).map(|e| e.alarm.as_str()).collect();
    let names: Vec<&str> = fired.iter().copied().collect();
    eprintln!(
        "\n[{scenario}] fires: {}; the other {} stay quiet",
        if names.is_empty() { "none".to_owned() } else { names.join(", ") },
        evals.len() - names.len()
    );
    for e in &evals {
        eprintln!("    {e}");
    }
    let expected: BTreeSet<&str> = firing.iter().copied().collect();
    assert_eq!(fired, expected, "{scenario}: the alarms that fire");
    evals
}

fn verdict<'a>(evals: &'a [Evaluation], alarm: &str) -> &'a Evaluation {
    evals.iter().find(|e| e.alarm == alarm).unwrap_or_else(|| panic!("no verdict for {alarm}"))
}

#[test]
fn every_alarm_of_the_template_is_simulated_or_listed() {
    let template = template_as(STACK);
    let set = alarms();
    let all: BTreeSet<String> = template.alarm_names().into_iter().collect();
    assert!(all.len() >= 16, "the template's alarms were not all found: {all:?}");
    let simulated: BTreeSet<String> = set.simulated.iter().map(|a| a.name.clone()).collect();
    let listed: BTreeSet<String> = SIMULATED.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(simulated, listed, "simulated alarms (left) against those this test has a scenario for (right)");
    let others: BTreeSet<String> = set.not_simulated.iter().map(|(n, _)| n.clone()).collect();
    let listed_others: BTreeSet<String> = NOT_SIMULATED.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(others, listed_others, "alarms the evaluator cannot decide (left) against those listed with a reason");
    assert!(simulated.is_disjoint(&others));
    let union: BTreeSet<String> = simulated.union(&others).cloned().collect();
    assert_eq!(union, all, "simulated + listed = every alarm of the template");
    for (name, what) in &set.not_simulated {
        eprintln!("[not simulated] {name}: reads {what}");
    }
    // Every simulated alarm reads its function's {Service, Stack} series of this stack.
    for a in &set.simulated {
        let keys: Vec<&str> = a.dimensions.keys().map(String::as_str).collect();
        assert_eq!(keys, ["Service", "Stack"], "{}", a.name);
        assert_eq!(a.dimensions["Stack"], STACK, "{}", a.name);
        assert!(["authorizer", "broker"].contains(&a.dimensions["Service"].as_str()), "{}", a.name);
        assert_eq!(a.namespace, "TokenBroker", "{}", a.name);
    }
}

/// Ordinary traffic, all counted into one period of every alarm (the strictest reading for a count): callers
/// without credentials, with malformed headers, untrusted or expired certificates, forged or expired tokens, next to
/// good certificate and partner callers, and the broker granting, refusing scopes and client ids, and a caller
/// reaching its quota twice. Nobody is paged; the gauges are there and healthy (quiet because the material is fine,
/// not because nothing was reported).
#[tokio::test(flavor = "multi_thread")]
async fn ordinary_traffic_pages_nobody() {
    let set = alarms();
    let authz = Authz::start(AuthzSetup::healthy()).await;
    let forger = tb_devkit::jwt::PartnerKey::ec_p256("acme-1").unwrap();
    let c = &authz.certs;
    use Answer::*;
    // 380 requests without usable credentials, most of them a flood of anonymous ones.
    authz.send_n(300, &anonymous(), Unauthorized).await;
    authz.send_n(10, &authorization("Basic Zm9vOmJhcg=="), Unauthorized).await;
    authz.send_n(10, &authorization("Bearer two tokens"), Unauthorized).await;
    authz.send_n(20, &mtls(&c.untrusted), Unauthorized).await;
    authz.send_n(10, &mtls(&c.expired), Unauthorized).await;
    for _ in 0..15 {
        let forged = forger.token(&tb_devkit::jwt::standard_claims(ISSUER, PARTNER_SUBJECT, "token-broker")).unwrap();
        assert_eq!(authz.send(&bearer(&forged)).await, Unauthorized);
    }
    for _ in 0..10 {
        assert_eq!(authz.send(&bearer(&authz.expired_token())).await, Unauthorized);
    }
    authz.send_n(5, &bearer("not.a.jwt"), Unauthorized).await;
    // And the callers that belong.
    authz.send_n(20, &mtls(&c.good), Allow).await;
    authz.send_n(5, &mtls(&c.stranger), Deny).await;
    for _ in 0..20 {
        assert_eq!(authz.send(&bearer(&authz.partner_token())).await, Allow);
    }

    let broker = Broker::start(BrokerSetup::default()).await;
    broker.post_n(20, "reporting", GRANT, (200, "-")).await;
    broker
        .post_n(5, "reporting", "grant_type=client_credentials&scope=customer-api%2Fwrite", (400, "invalid_scope"))
        .await;
    broker.post_n(5, "reporting", "grant_type=client_credentials&client_id=batch", (401, "invalid_client")).await;
    broker.post_n(3, "batch", GRANT, (200, "-")).await;
    broker.post_n(2, "batch", GRANT, (429, "temporarily_unavailable")).await;
    broker.post_n(5, "partner-acme", GRANT, (200, "-")).await;

    let evals = verdicts("ordinary traffic", &set, &[&authz.emf, &broker.emf], &[]);
    // The refusals were seen, on their own series, and none of them is an error of the service.
    let unauthorized =
        points(&[&authz.emf]).into_iter().filter(|p| p.metric == "Unauthorized" && p.dimensions.len() == 2).count();
    assert_eq!(unauthorized, 380);
    assert_eq!(verdict(&evals, "AuthorizerErrorsAlarm").samples, 0);
    for gauge in ["CrlNextUpdateWarningAlarm", "CrlNextUpdatePageAlarm", "TruststoreExpiryAlarm"] {
        let e = verdict(&evals, gauge);
        assert!(e.samples >= 1 && e.value.is_some_and(|v| v > e.threshold), "{e}");
    }
    assert_eq!(verdict(&evals, "QuotaDenialsAlarm").value, Some(2.0));
}

/// The truststore object cannot be read when an instance starts: certificate callers get 401 for want of trust
/// material. That is the authorizer's own failure (`AuthorizerErrors`) and a failed read (`TrustRefreshFailures`),
/// each paged. The same lines under another stack's name, or written without the `Stack` dimension, page nobody:
/// the alarms read one exact series.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_truststore_raises_authorizer_errors_and_trust_refresh_failures() {
    let set = alarms();
    let authz = Authz::start(AuthzSetup { truststore_down: true, ..AuthzSetup::healthy() }).await;
    authz.send_n(10, &mtls(&authz.certs.good), Answer::Unauthorized).await;
    for _ in 0..5 {
        assert_eq!(authz.send(&bearer(&authz.partner_token())).await, Answer::Allow, "partners are still served");
    }
    let evals =
        verdicts("truststore unreadable", &set, &[&authz.emf], &["AuthorizerErrorsAlarm", "TrustRefreshFailuresAlarm"]);
    // One failed read at the cold start (the next comes with the refresh TRUST_REFRESH_SECONDS later, so each
    // minute with requests has one), and the cold start's trust_refresh_failed next to one no_trust_material each.
    assert_eq!(verdict(&evals, "TrustRefreshFailuresAlarm").value, Some(1.0));
    assert_eq!(verdict(&evals, "AuthorizerErrorsAlarm").value, Some(11.0));

    let elsewhere = template_as("another-stack").alarms().unwrap();
    verdicts("truststore unreadable, read as another stack", &elsewhere, &[&authz.emf], &[]);

    let unlabelled =
        Authz::start(AuthzSetup { truststore_down: true, stack_dimension: false, ..AuthzSetup::healthy() }).await;
    unlabelled.send_n(10, &mtls(&unlabelled.certs.good), Answer::Unauthorized).await;
    let evals = verdicts("truststore unreadable, lines without Stack", &set, &[&unlabelled.emf], &[]);
    assert_eq!(verdict(&evals, "AuthorizerErrorsAlarm").samples, 0, "the {{Service}} series is not the alarm's");
}

/// The CRL in use lapses in a day (inside the three-day warning, outside the six-hour page), then in an hour:
/// certificates are still accepted, only the gauge tells. Once it has lapsed, every certificate of its CA is refused
/// (`stale_crl`, an `AuthorizerErrors` each) and the refresh that loaded it counts as failed (a CRL published past
/// its nextUpdate), so those page too.
#[tokio::test(flavor = "multi_thread")]
async fn a_crl_near_its_next_update_warns_then_pages() {
    let set = alarms();
    for (scenario, ahead, answer, firing) in [
        ("CRL nextUpdate in a day", 86_400, Answer::Allow, &["CrlNextUpdateWarningAlarm"][..]),
        (
            "CRL nextUpdate in an hour",
            3_600,
            Answer::Allow,
            &["CrlNextUpdateWarningAlarm", "CrlNextUpdatePageAlarm"][..],
        ),
        (
            "CRL nextUpdate passed ten minutes ago",
            -600,
            Answer::Unauthorized,
            &[
                "CrlNextUpdateWarningAlarm",
                "CrlNextUpdatePageAlarm",
                "AuthorizerErrorsAlarm",
                "TrustRefreshFailuresAlarm",
            ][..],
        ),
    ] {
        let authz = Authz::start(AuthzSetup { crl_next_update: ahead, ..AuthzSetup::healthy() }).await;
        authz.send_n(5, &mtls(&authz.certs.good), answer).await;
        let evals = verdicts(scenario, &set, &[&authz.emf], firing);
        // The gauge is the seconds left at the cold start's refresh, a moment before the evaluation.
        let e = verdict(&evals, "CrlNextUpdateWarningAlarm");
        assert!(e.value.is_some_and(|v| v <= ahead as f64 && v > ahead as f64 - 60.0), "{e}");
    }
}

/// The truststore's CA expires in ten days (inside the 30-day warning); at 31 days it does not warn yet.
#[tokio::test(flavor = "multi_thread")]
async fn a_ca_certificate_near_its_end_raises_truststore_expiry() {
    let set = alarms();
    for (scenario, days, firing) in
        [("CA expires in 10 days", 10, &["TruststoreExpiryAlarm"][..]), ("CA expires in 31 days", 31, &[][..])]
    {
        let ca = ca_expiring_in("Ageing Root CA", Duration::from_secs(days * 86_400));
        let authz = Authz::start(AuthzSetup { ca, ..AuthzSetup::healthy() }).await;
        authz.send_n(5, &mtls(&authz.certs.good), Answer::Allow).await;
        verdicts(scenario, &set, &[&authz.emf], firing);
    }
}

/// A partner's JWKS endpoint fails while an instance has no keys for it: each partner request is refused for want
/// of keys (`AuthorizerErrors`, keys_unavailable) and the fetch is counted as failed. The refetch cooldown
/// (JWKS_REFETCH_COOLDOWN_SECONDS, 60 s in the template) allows one attempt a minute however many requests come, so
/// a period of five minutes holds one to five failures per instance: one reaches the default threshold, and three
/// periods in a row (fifteen minutes of partner traffic) raise the alarm.
///
/// An instance that already holds the partner's keys keeps verifying with them and fetches nothing until they are
/// JWKS_MAX_AGE_SECONDS old (an hour): the outage pages nobody while no caller is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_partner_jwks_endpoint_raises_jwks_fetch_failures() {
    let set = alarms();
    let cold = Authz::start(AuthzSetup { jwks_down: true, ..AuthzSetup::healthy() }).await;
    for _ in 0..20 {
        assert_eq!(cold.send(&bearer(&cold.partner_token())).await, Answer::Unauthorized);
    }
    let evals = verdicts(
        "partner JWKS failing, no keys cached",
        &set,
        &[&cold.emf],
        &["JwksFetchFailuresAlarm", "AuthorizerErrorsAlarm"],
    );
    assert_eq!(verdict(&evals, "JwksFetchFailuresAlarm").value, Some(1.0), "one attempt per cooldown");
    assert_eq!(cold.jwks.fetches(), 1);
    assert_eq!(verdict(&evals, "AuthorizerErrorsAlarm").value, Some(20.0));

    let warm = Authz::start(AuthzSetup::healthy()).await;
    warm.send_n(1, &bearer(&warm.partner_token()), Answer::Allow).await;
    warm.jwks.set_down(true);
    warm.emf.clear();
    for _ in 0..20 {
        assert_eq!(warm.send(&bearer(&warm.partner_token())).await, Answer::Allow);
    }
    verdicts("partner JWKS failing, keys cached", &set, &[&warm.emf], &[]);
    assert_eq!(warm.jwks.fetches(), 1, "no fetch while the cached keys are younger than JWKS_MAX_AGE_SECONDS");
}

/// Cognito answers 5xx, times out, or throttles: each refused request is one `UpstreamErrors` (the breaker opens
/// after five failed attempts and refuses fast, still counted). Five a minute reach the default threshold; four
/// do not.
#[tokio::test(flavor = "multi_thread")]
async fn cognito_failing_raises_upstream_errors() {
    let set = alarms();
    let unavailable = (503, "temporarily_unavailable");

    let broker = Broker::start(BrokerSetup::default()).await;
    broker.standin.faults().fail_all(503);
    broker.post_n(4, "reporting", GRANT, unavailable).await;
    verdicts("Cognito 503, four requests", &set, &[&broker.emf], &[]);
    broker.post_n(1, "reporting", GRANT, unavailable).await;
    let evals = verdicts("Cognito 503, five requests", &set, &[&broker.emf], &["UpstreamErrorsAlarm"]);
    assert_eq!(verdict(&evals, "UpstreamErrorsAlarm").value, Some(5.0));

    // Timeouts, with a shorter attempt timeout than the template's 3 s so the test does not wait for it.
    let slow = Broker::start(BrokerSetup {
        overrides: vec![("UPSTREAM_TIMEOUT_MS", "200"), ("UPSTREAM_CONNECT_TIMEOUT_MS", "100")],
        ..BrokerSetup::default()
    })
    .await;
    slow.standin.faults().set_delay(Duration::from_millis(800));
    slow.post_n(5, "reporting", GRANT, unavailable).await;
    verdicts("Cognito timing out", &set, &[&slow.emf], &["UpstreamErrorsAlarm"]);

    let throttled = Broker::start(BrokerSetup::default()).await;
    throttled.standin.faults().throttle_all(ThrottleStyle::TooManyRequests);
    throttled.post_n(5, "reporting", GRANT, unavailable).await;
    verdicts("Cognito throttling", &set, &[&throttled.emf], &["UpstreamErrorsAlarm"]);
}

/// Cognito refuses the broker's stored client secret (rotated at Cognito, not in SSM): one refusal pages. Only the
/// first request reaches Cognito (one `UpstreamErrors`, far from its threshold); the broker then refuses the secret
/// it knows Cognito refuses without sending it again, counting each refusal as `UpstreamInvalidClient` alone.
#[tokio::test(flavor = "multi_thread")]
async fn cognito_refusing_the_brokers_secret_raises_upstream_invalid_client() {
    let set = alarms();
    let broker = Broker::start(BrokerSetup::default()).await;
    broker.rotate_secret_behind_the_brokers_back("reporting-client");
    broker.post_n(3, "reporting", GRANT, (502, "server_error")).await;
    broker.post_n(3, "batch", GRANT, (200, "-")).await;
    let evals = verdicts("Cognito refuses the stored secret", &set, &[&broker.emf], &["UpstreamInvalidClientAlarm"]);
    assert_eq!(verdict(&evals, "UpstreamInvalidClientAlarm").value, Some(3.0));
    assert_eq!(verdict(&evals, "UpstreamErrorsAlarm").value, Some(1.0));
    assert_eq!(
        broker.standin.token_requests_for("reporting-client"),
        1,
        "one request reached Cognito: the secret re-read from the store was the refused one, so it was not sent again"
    );
}

/// A request reaches the broker without the authorizer's context (the gateway misconfigured or bypassed).
#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_authorizer_context_raises_missing_authorizer_context() {
    let set = alarms();
    let broker = Broker::start(BrokerSetup::default()).await;
    let bypass = ProxyRequestBuilder::new("reporting", GRANT).without_authorizer().build();
    assert_eq!(broker.send(bypass).await, (500, "server_error".to_owned()));
    broker.post_n(5, "reporting", GRANT, (200, "-")).await;
    verdicts("no authorizer context", &set, &[&broker.emf], &["MissingAuthorizerContextAlarm"]);
}

/// A caller keeps asking past its quota: refusals below the threshold (50 per five minutes by default) page
/// nobody, the threshold-th does.
#[tokio::test(flavor = "multi_thread")]
async fn a_caller_past_its_quota_raises_quota_denials_at_the_threshold() {
    let set = alarms();
    let threshold = set.alarm("QuotaDenialsAlarm").expect("simulated").threshold as usize;
    let broker = Broker::start(BrokerSetup::default()).await;
    let exhausted = (429, "temporarily_unavailable");
    broker.post_n(3, "batch", GRANT, (200, "-")).await;
    broker.post_n(threshold - 1, "batch", GRANT, exhausted).await;
    verdicts("quota: one refusal short of the threshold", &set, &[&broker.emf], &[]);
    broker.post_n(1, "batch", GRANT, exhausted).await;
    let evals = verdicts("quota: at the threshold", &set, &[&broker.emf], &["QuotaDenialsAlarm"]);
    assert_eq!(verdict(&evals, "QuotaDenialsAlarm").value, Some(threshold as f64));
}

/// Cognito issues tokens that live two hours to a caller allowed one: the broker refuses them and pages.
#[tokio::test(flavor = "multi_thread")]
async fn an_over_long_cognito_token_raises_token_lifetime() {
    let set = alarms();
    let broker =
        Broker::start(BrokerSetup { token_validity: Duration::from_secs(7_200), ..BrokerSetup::default() }).await;
    broker.post_n(2, "reporting", GRANT, (502, "server_error")).await;
    verdicts("Cognito token lifetime too long", &set, &[&broker.emf], &["TokenLifetimeAlarm"]);
}

/// Someone invokes the broker directly with a caller context of their own making: one without a MAC, one whose MAC
/// is made with a key of their own under the real key id, and a context the authorizer really signed (for the
/// partner) with the caller swapped for another. Each is refused with 500, reaches no Cognito, and the first one in a
/// minute pages; none of them is a missing context. Contexts the authorizer signed, next to them, are granted
/// (`ordinary_traffic_pages_nobody` keeps the alarm quiet under everything else).
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_caller_context_raises_forged_context() {
    let set = alarms();
    let broker = Broker::start(BrokerSetup::default()).await;
    broker.post_n(5, "reporting", GRANT, (200, "-")).await;
    verdicts("signed contexts only", &set, &[&broker.emf], &[]);

    let refused = (500, "server_error".to_owned());
    let unsigned = ProxyRequestBuilder::new("reporting", GRANT).unsigned().build();
    assert_eq!(broker.send(unsigned).await, refused);
    let evals = verdicts("one direct invoke without a MAC", &set, &[&broker.emf], &["ForgedContextAlarm"]);
    assert_eq!(verdict(&evals, "ForgedContextAlarm").value, Some(1.0));

    let own_key = KeySet::single(tb_devkit::fixtures::CONTEXT_KEY_ID, vec![7u8; 32]).expect("a key set");
    let guessed = ProxyRequestBuilder::new("batch", GRANT).signed_with(Arc::new(own_key)).build();
    assert_eq!(broker.send(guessed).await, refused);
    let mut swapped = ProxyRequestBuilder::new("partner-acme", GRANT).build();
    for key in [KEY_CALLER_ID, "principalId"] {
        swapped.request_context.authorizer.fields.insert(key.to_owned(), "reporting".into());
    }
    assert_eq!(broker.send(swapped).await, refused);
    broker.post_n(2, "reporting", GRANT, (200, "-")).await;

    let evals = verdicts("three forged contexts", &set, &[&broker.emf], &["ForgedContextAlarm"]);
    assert_eq!(verdict(&evals, "ForgedContextAlarm").value, Some(3.0));
    assert_eq!(verdict(&evals, "MissingAuthorizerContextAlarm").samples, 0, "a forged context is not a missing one");
    assert_eq!(broker.standin.token_requests(), 7, "only the signed requests reached Cognito");
    // The breakdown says why each was refused.
    let mut reasons: Vec<String> = points(&[&broker.emf])
        .into_iter()
        .filter(|p| p.metric == "ForgedAuthorizerContext")
        .filter_map(|p| p.dimensions.get("Reason").cloned())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["mismatch", "mismatch", "missing"]);
}

/// A fleet token cache item that does not open (here its ciphertext altered in the table): the broker that reads it
/// issues a fresh token and pages, once. Shared tokens served from a sound table page nobody.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_fleet_cache_item_raises_fleet_cache_damaged() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let set = alarms();
    let sdk = tb_devkit::moto::sdk_config_at(&tb_devkit::moto::endpoint(), tb_devkit::moto::REGION).await;
    let table = tb_devkit::moto::unique("alarm-tokens");
    tb_devkit::moto::create_token_cache_table(&sdk, &table).await;
    let key = tb_devkit::moto::create_kms_key(&sdk).await;
    let first = Broker::start(BrokerSetup::default()).await.with_fleet_cache(&sdk, &table, &key);
    first.post_n(2, "fleet", GRANT, (200, "-")).await;
    let second = Broker::start(BrokerSetup::default()).await.with_fleet_cache(&sdk, &table, &key);
    second.post_n(2, "fleet", GRANT, (200, "-")).await;
    verdicts("a token shared through the fleet cache", &set, &[&first.emf, &second.emf], &[]);

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let mut item = ddb.scan().table_name(&table).send().await.unwrap().items.unwrap().pop().unwrap();
    let mut sealed = item["sealed"].as_b().unwrap().as_ref().to_vec();
    sealed[0] ^= 1;
    item.insert("sealed".into(), AttributeValue::B(sealed.into()));
    ddb.put_item().table_name(&table).set_item(Some(item)).send().await.unwrap();
    let third = Broker::start(BrokerSetup::default()).await.with_fleet_cache(&sdk, &table, &key);
    third.post_n(2, "fleet", GRANT, (200, "-")).await;
    let evals = verdicts("an altered item", &set, &[&third.emf], &["FleetCacheDamagedAlarm"]);
    assert_eq!(verdict(&evals, "FleetCacheDamagedAlarm").value, Some(1.0), "the item was overwritten at once");
}

/// The fleet token cache fails (its table unreachable): tokens are still issued, and each instance counts the
/// failure once per retry interval, so a failure that lasts fills every period and raises the ticket alarm.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_fleet_cache_raises_fleet_cache_unavailable() {
    let set = alarms();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let sdk = tb_devkit::moto::sdk_config_at(&closed, tb_devkit::moto::REGION).await;
    let broker = Broker::start(BrokerSetup::default()).await.with_fleet_cache(&sdk, "unreachable", "unreachable");
    broker.post_n(3, "fleet", GRANT, (200, "-")).await;
    let evals = verdicts("the fleet cache's table unreachable", &set, &[&broker.emf], &["FleetCacheUnavailableAlarm"]);
    assert_eq!(verdict(&evals, "FleetCacheUnavailableAlarm").value, Some(1.0), "counted once, then skipped");
}
