//! The trust-material health metrics, from the authorizer built the way the Lambda builds it: the gauges an alarm
//! reads before a CRL or a CA certificate lapses (`CrlSecondsToNextUpdate`, `TruststoreSecondsToExpiry`), the
//! failures of a trust refresh by object (`TrustRefreshFailures`), and the failures of a partner's JWKS fetch by
//! issuer (`JwksFetchFailures`). Every line also carries the stack's `Stack` dimension next to `Service`.

mod common;

use common::*;
use tb_authorizer::{metric_names as names, ISSUER_DIMENSION, OBJECT_DIMENSION, REASON_DIMENSION};
use tb_shared::telemetry::STACK_DIMENSION;

const STACK: &str = "tb-health-test";

/// Slack for comparing a gauge with the true value: CRL times have whole seconds, and a loaded machine takes a
/// moment between computing the expectation and the refresh.
const TOLERANCE_SECONDS: f64 = 5.0;

/// The world of the handler tests, its trust material re-read on every request, with metrics written by a sink
/// that carries the stack's dimension as the Lambda's does, into the capture returned.
fn world_with_stack() -> (World, CaptureWriter) {
    let emf = CaptureWriter::default();
    let sink = emf.clone();
    let w = world_with(&[("TRUST_REFRESH_SECONDS", "0")], move |_, _, mut deps| {
        deps.metrics = MetricsSink::to_writer("TokenBroker", sink).with_dimension(STACK_DIMENSION, STACK);
        deps
    });
    (w, emf)
}

/// One metric line: its dimension names (sorted, as EMF lists them), the dimension values, and the line.
struct Line {
    dimensions: Vec<String>,
    line: Value,
}

impl Line {
    fn value(&self, name: &str) -> Option<f64> {
        self.line.get(name).and_then(Value::as_f64)
    }
    fn unit_of(&self, name: &str) -> Option<String> {
        let defs = self.line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array()?;
        defs.iter().find(|d| d["Name"] == name).and_then(|d| d["Unit"].as_str()).map(str::to_owned)
    }
}

/// Every EMF line captured so far; each must carry `Service` and `Stack` in its one dimension set.
fn lines(emf: &CaptureWriter) -> Vec<Line> {
    let text = emf.contents();
    let mut out = Vec::new();
    for l in text.lines() {
        let line: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not an EMF line ({e}): {l}"));
        let sets = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"].as_array().expect("a dimension list").clone();
        assert_eq!(sets.len(), 1, "one dimension set per line: {line}");
        let dimensions: Vec<String> =
            sets[0].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
        assert!(dimensions.iter().any(|d| d == "Service") && dimensions.iter().any(|d| d == "Stack"), "{line}");
        assert_eq!(line["Stack"], STACK, "{line}");
        assert_eq!(line["Service"], "authorizer", "{line}");
        out.push(Line { dimensions, line });
    }
    out
}

/// The lines holding `name`.
fn with_metric<'a>(lines: &'a [Line], name: &str) -> Vec<&'a Line> {
    lines.iter().filter(|l| l.value(name).is_some()).collect()
}

/// For a metric emitted twice per occurrence (the alarm's series, then the breakdown by `dimension`): the values of
/// `dimension`, one per occurrence, after checking that every occurrence has both lines with their exact shape.
fn counted_twice(lines: &[Line], name: &str, dimension: &str) -> Vec<String> {
    let found = with_metric(lines, name);
    let mut total = 0.0;
    let mut by_value = Vec::new();
    for l in &found {
        assert_eq!(l.unit_of(name).as_deref(), Some("Count"), "{}", l.line);
        assert_eq!(l.value(name), Some(1.0), "{}", l.line);
        match l.line.get(dimension).and_then(Value::as_str) {
            Some(v) => {
                let mut expected = vec![dimension.to_owned(), "Service".to_owned(), "Stack".to_owned()];
                expected.sort();
                assert_eq!(l.dimensions, expected, "{}", l.line);
                by_value.push(v.to_owned());
            }
            None => {
                assert_eq!(l.dimensions, ["Service", "Stack"], "{}", l.line);
                total += 1.0;
            }
        }
    }
    assert_eq!(total as usize, by_value.len(), "each {name} is counted once for the alarm and once by {dimension}");
    by_value
}

/// Seconds from now to `t` (negative when past).
fn seconds_until(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// The earliest notAfter among the CA certificates of a PEM bundle.
fn earliest_not_after(pem: &str) -> SystemTime {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(cert.validity().not_after.timestamp() as u64)
}

fn assert_near(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: no value"));
    assert!((got - want).abs() <= TOLERANCE_SECONDS, "{what}: got {got}, want {want} (±{TOLERANCE_SECONDS})");
}

/// The cold start reports the loaded material's gauges once, on a line of their own with `Service` and `Stack`.
#[tokio::test(flavor = "multi_thread")]
async fn the_cold_start_reports_how_long_the_loaded_material_lasts() {
    let (w, emf) = world_with_stack();
    let lines = lines(&emf);
    let gauges = with_metric(&lines, names::TRUSTSTORE_SECONDS_TO_EXPIRY);
    assert_eq!(gauges.len(), 1, "one refresh at cold start");
    let g = gauges[0];
    assert_eq!(g.dimensions, ["Service", "Stack"]);
    assert_eq!(g.unit_of(names::TRUSTSTORE_SECONDS_TO_EXPIRY).as_deref(), Some("Seconds"));
    assert_eq!(g.unit_of(names::CRL_SECONDS_TO_NEXT_UPDATE).as_deref(), Some("Seconds"));
    assert_near(g.value(names::TRUSTSTORE_SECONDS_TO_EXPIRY), seconds_until(earliest_not_after(w.ca.cert_pem())), "CA");
    // The world's CRL has its nextUpdate an hour after the world was made.
    assert_near(g.value(names::CRL_SECONDS_TO_NEXT_UPDATE), 3600.0, "CRL");
    assert!(with_metric(&lines, names::TRUST_REFRESH_FAILURES).is_empty());
}

/// A CRL whose nextUpdate is near is reported within seconds of the true value at the next refresh, and one that
/// arrives already past it is a negative gauge and a failed refresh of the `crl` object; so is a CRL bundle the
/// loader refuses, and a truststore that cannot be read is one of the `truststore` object.
#[tokio::test(flavor = "multi_thread")]
async fn crl_gauge_follows_the_bundle_and_unusable_objects_are_failures_by_object() {
    let (w, emf) = world_with_stack();
    let pem = w.cert("order-processing").pem.clone();
    let now = SystemTime::now();

    // Ninety seconds left: an alarm on "less than a day" would have fired long ago.
    let next_update = now + Duration::from_secs(90);
    w.crls.set(w.ca.crl(&[], now - hours(1), next_update).unwrap().pem.into_bytes());
    emf.clear();
    assert!(answer(&w, &mtls_event(&pem)).await.is_ok());
    let l = lines(&emf);
    let gauges = with_metric(&l, names::CRL_SECONDS_TO_NEXT_UPDATE);
    assert_eq!(gauges.len(), 1);
    assert_eq!(gauges[0].dimensions, ["Service", "Stack"]);
    assert_near(gauges[0].value(names::CRL_SECONDS_TO_NEXT_UPDATE), seconds_until(next_update), "near nextUpdate");
    assert!(gauges[0].value(names::CRL_SECONDS_TO_NEXT_UPDATE).is_some_and(|v| v > 0.0 && v <= 90.0));
    assert_eq!(counted_twice(&l, names::TRUST_REFRESH_FAILURES, OBJECT_DIMENSION), Vec::<String>::new());

    // Published already stale: it is loaded (certificates of the CA are refused as stale_crl), the gauge goes
    // negative, and the refresh counts as a failure of the CRL object.
    let stale_since = now - Duration::from_secs(600);
    w.crls.set(w.ca.crl(&[], now - hours(2), stale_since).unwrap().pem.into_bytes());
    emf.clear();
    assert_eq!(answer(&w, &mtls_event(&pem)).await, Err(Unauthorized));
    let l = lines(&emf);
    assert_near(
        with_metric(&l, names::CRL_SECONDS_TO_NEXT_UPDATE)[0].value(names::CRL_SECONDS_TO_NEXT_UPDATE),
        seconds_until(stale_since),
        "stale CRL",
    );
    assert_eq!(counted_twice(&l, names::TRUST_REFRESH_FAILURES, OBJECT_DIMENSION), ["crl"]);
    assert_eq!(counted_twice(&l, names::AUTHORIZER_ERRORS, REASON_DIMENSION), ["stale_crl"]);

    // A fresh CRL again: no failure, a positive gauge.
    w.crls.set(w.ca.crl(&[], now - hours(1), now + hours(1)).unwrap().pem.into_bytes());
    emf.clear();
    assert!(answer(&w, &mtls_event(&pem)).await.is_ok());
    let l = lines(&emf);
    assert_eq!(counted_twice(&l, names::TRUST_REFRESH_FAILURES, OBJECT_DIMENSION), Vec::<String>::new());

    // A CRL signed by another key under the CA's name is refused against the truststore (the one in use stays).
    w.crls.set(w.ca.crl_signed_with_wrong_key(&[], now - hours(1), now + hours(2)).unwrap().pem.into_bytes());
    emf.clear();
    assert!(answer(&w, &mtls_event(&pem)).await.is_ok());
    let l = lines(&emf);
    assert_eq!(counted_twice(&l, names::TRUST_REFRESH_FAILURES, OBJECT_DIMENSION), ["crl"]);
    assert_near(
        with_metric(&l, names::CRL_SECONDS_TO_NEXT_UPDATE)[0].value(names::CRL_SECONDS_TO_NEXT_UPDATE),
        3600.0,
        "the CRL in use, not the refused one",
    );

    // A bundle the loader refuses (a certificate where CRLs belong): a failed read of the CRL object, which is also
    // an AuthorizerErrors trust_refresh_failed.
    w.crls.set(w.ca.cert_pem().as_bytes().to_vec());
    emf.clear();
    assert!(answer(&w, &mtls_event(&pem)).await.is_ok());
    let l = lines(&emf);
    assert_eq!(counted_twice(&l, names::TRUST_REFRESH_FAILURES, OBJECT_DIMENSION), ["crl"]);
    assert_eq!(counted_twice(&l, names::AUTHORIZER_ERRORS, REASON_DIMENSION), ["trust_refresh_failed"]);

    // The truststore cannot be read: a failure of the truststore object; the last good one still serves, and its
    // gauge is still reported.
    w.crls.set(w.ca.crl(&[], now - hours(1), now + hours(1)).unwrap().pem.into_bytes());
    w.trust.set_unavailable(true);
    emf.clear();
    assert!(answer(&w, &mtls_event(&pem)).await.is_ok());
    let l = lines(&emf);
    assert_eq!(counted_twice(&l, names::TRUST_REFRESH_FAILURES, OBJECT_DIMENSION), ["truststore"]);
    assert_eq!(with_metric(&l, names::TRUSTSTORE_SECONDS_TO_EXPIRY).len(), 1);
}

/// Without a CRL bundle configured there is no CRL gauge at all (not a zero an alarm would read as "lapsed").
#[tokio::test(flavor = "multi_thread")]
async fn no_crl_bundle_no_crl_gauge() {
    let emf = CaptureWriter::default();
    let sink = emf.clone();
    let w = world_with(&[("TRUST_REFRESH_SECONDS", "0")], move |_, s, mut deps| {
        deps.trust = Trust::Sources(TrustSources { truststore: Arc::new(s.trust.clone()), crls: None });
        deps.metrics = MetricsSink::to_writer("TokenBroker", sink).with_dimension(STACK_DIMENSION, STACK);
        deps
    });
    assert!(answer(&w, &mtls_event(&w.cert("order-processing").pem)).await.is_ok());
    let l = lines(&emf);
    assert_eq!(with_metric(&l, names::TRUSTSTORE_SECONDS_TO_EXPIRY).len(), 2, "cold start and the request's refresh");
    assert!(with_metric(&l, names::CRL_SECONDS_TO_NEXT_UPDATE).is_empty());
}

/// A partner's JWKS endpoint that fails is one `JwksFetchFailures` per fetch attempt, by issuer (the policy's
/// issuer without its scheme), next to the `keys_unavailable` outage; nothing of the token reaches a metric.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_jwks_endpoint_is_counted_by_issuer() {
    let (w, emf) = world_with_stack();
    w.jwks.set_down(true);
    let token = w.partner_token("acme-billing-sync");
    assert_eq!(answer(&w, &jwt_event(&token)).await, Err(Unauthorized));
    let l = lines(&emf);
    assert_eq!(counted_twice(&l, names::JWKS_FETCH_FAILURES, ISSUER_DIMENSION), ["idp.acme.example"]);
    assert_eq!(counted_twice(&l, names::AUTHORIZER_ERRORS, REASON_DIMENSION), ["keys_unavailable"]);
    let text = emf.contents();
    assert!(!text.contains(&token) && !text.contains("acme-billing-sync"), "no token or subject in metrics");

    // An endpoint that answers with something that is not a JWKS is a failed fetch too.
    let (w, emf) = world_with_stack();
    w.jwks.set(JWKS_URL, b"<html>maintenance</html>".to_vec());
    assert_eq!(answer(&w, &jwt_event(&w.partner_token("acme-billing-sync"))).await, Err(Unauthorized));
    assert_eq!(counted_twice(&lines(&emf), names::JWKS_FETCH_FAILURES, ISSUER_DIMENSION), ["idp.acme.example"]);
}
