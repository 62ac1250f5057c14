//! The authorizer's metric names and dimensions, in one place so the deployment template's alarms (its
//! `Mappings.Emf.Metric` table, checked against these names by a test) and the dashboards agree with the code.
//!
//! Every `Unauthorized` is a Lambda function error (API Gateway only answers 401 when the authorizer fails with the
//! message `Unauthorized`), so the function's own `Errors` metric counts every caller without credentials and
//! cannot tell an outage from an ordinary refusal. [`names::AUTHORIZER_ERRORS`] is that distinction: it is emitted
//! only when the authorizer could not decide as it should (the [`outage`] reasons), never for bad credentials.
//!
//! ## Metrics
//!
//! Namespace: `METRICS_NAMESPACE` (default `TokenBroker`). Every line carries `Service` = `authorizer` and `Stack` =
//! `STACK_NAME` (default `token-broker`), so two stacks in one account never share a series; the dimension sets
//! below list both.
//!
//! | metric | unit | dimensions | when | meaning |
//! |---|---|---|---|---|
//! | `Allows` | Count | Service, Stack | per request | a known, enabled caller was allowed |
//! | `Denials` | Count | Service, Stack | per request | a verified credential was refused (403); the line's `reason` property says why |
//! | `Unauthorized` | Count | Service, Stack | per request | no usable credential (401): an answer to the caller, not an error of the service |
//! | `Unauthorized` | Count | Service, Stack, Reason | per 401, a second line | the same, by [`unauthorized`] reason (`no_credential`, `malformed_authorization`, `certificates_not_accepted`, `invalid_certificate`, `jwt_not_accepted`, `invalid_jwt`, `context_keys_unavailable`) |
//! | `DecisionCacheHits` | Count | Service, Stack | per request answered from the decision cache | |
//! | `DecisionLatency` | Microseconds | Service, Stack | per request | time to decide |
//! | `AuthorizerErrors` | Count | Service, Stack | per outage occurrence | the authorizer could not decide as it should: alarm on it |
//! | `AuthorizerErrors` | Count | Service, Stack, Reason | the same occurrence, a second line | by [`outage`] reason |
//! | `TruststoreSecondsToExpiry` | Seconds | Service, Stack | every trust refresh (cold start, then every `TRUST_REFRESH_SECONDS` while requests arrive) with a truststore loaded | seconds until the earliest `notAfter` among the truststore's CA certificates; negative once past |
//! | `CrlSecondsToNextUpdate` | Seconds | Service, Stack | every trust refresh with CRLs in use (never without `CRL_URI`) | seconds until the earliest `nextUpdate` among the CRLs in use; negative once past, when certificates of that CA are refused (`stale_crl`) |
//! | `TrustRefreshFailures` | Count | Service, Stack | per trust object per refresh that failed | the object could not be read, did not parse, or (CRLs) was refused against the truststore or arrived already past its nextUpdate; the last good material stays in use |
//! | `TrustRefreshFailures` | Count | Service, Stack, Object | the same failure, a second line | by [`trust_object`] (`truststore`, `crl`) |
//! | `JwksFetchFailures` | Count | Service, Stack | per failed fetch of a partner's JWKS | unreachable, error status, too large, or not a JWKS; the partner's previous keys stay in use for a bounded time |
//! | `JwksFetchFailures` | Count | Service, Stack, Issuer | the same failure, a second line | by issuer: the policy's `issuer` value without its scheme, query or fragment ([`issuer_dimension`]) |
//!
//! The gauges are written where the refresh runs: inside the request that found it due (or the cold start), so an
//! idle function writes none; alarms on them treat missing data as "not breaching" and rely on the failure
//! counts and `AuthorizerErrors` for a function that is being called and failing.
//!
//! `TrustRefreshFailures` is not an `AuthorizerErrors` by itself: while the last good material serves, callers are
//! answered as they should be. A read that fails (or a bundle the loader refuses) is also reported as
//! `AuthorizerErrors` with reason `trust_refresh_failed`, and the outage it causes, if any, with its own reason
//! (`no_trust_material`, `stale_crl`, `revocation_unknown`).

use std::sync::LazyLock;
use std::time::SystemTime;

use tb_shared::telemetry::{Metrics, MetricsSink, Unit, SERVICE_DIMENSION};

use crate::decision::UnauthorizedReason;
use crate::jwt::JwtError;
use crate::mtls::CertError;

/// The `Service` dimension value of every authorizer metric line.
pub const SERVICE: &str = "authorizer";

/// The dimension that says why [`names::AUTHORIZER_ERRORS`] was emitted (its values are the [`outage`] reasons),
/// or why a request was [`names::UNAUTHORIZED`] (the [`unauthorized`] reasons).
pub const REASON_DIMENSION: &str = "Reason";

/// The dimension naming the trust object behind a [`names::TRUST_REFRESH_FAILURES`]: a [`trust_object`] value.
pub const OBJECT_DIMENSION: &str = "Object";

/// The dimension naming the partner issuer behind a [`names::JWKS_FETCH_FAILURES`]: see [`issuer_dimension`].
pub const ISSUER_DIMENSION: &str = "Issuer";

/// Metric names the authorizer emits.
pub mod names {
    /// A caller was allowed.
    pub const ALLOWS: &str = "Allows";
    /// A known credential was refused (unknown, disabled or revoked caller): 403.
    pub const DENIALS: &str = "Denials";
    /// No usable credential: 401. An answer to the caller, not an error of the service.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// A decision came from the decision cache.
    pub const DECISION_CACHE_HITS: &str = "DecisionCacheHits";
    /// Time to decide, in microseconds.
    pub const DECISION_LATENCY: &str = "DecisionLatency";
    /// The authorizer could not answer as it should, for one of the [`outage`](super::outage) reasons: alarm.
    /// Emitted twice per occurrence: once with the `Service` dimension only (what the alarm reads, so a reason added
    /// later is alarmed without touching the template) and once with `Service` and `Reason` (the breakdown).
    pub const AUTHORIZER_ERRORS: &str = "AuthorizerErrors";
    /// Seconds from the refresh until the earliest nextUpdate of the CRLs in use (negative once past): a gauge
    /// written at every trust refresh, so an alarm can warn before a CRL lapses and certificates are refused.
    pub const CRL_SECONDS_TO_NEXT_UPDATE: &str = "CrlSecondsToNextUpdate";
    /// Seconds from the refresh until the earliest notAfter of the truststore's CA certificates (negative once
    /// past): a gauge written at every trust refresh.
    pub const TRUSTSTORE_SECONDS_TO_EXPIRY: &str = "TruststoreSecondsToExpiry";
    /// A trust object (truststore or CRL bundle) could not be read, parsed or used at a refresh or the cold start.
    /// Emitted twice per occurrence: `Service` alone (the alarm's series) and with `Object` (the breakdown).
    pub const TRUST_REFRESH_FAILURES: &str = "TrustRefreshFailures";
    /// A partner's JWKS could not be fetched or was not a JWKS. Emitted twice per occurrence: `Service` alone (the
    /// alarm's series) and with `Issuer` (the breakdown).
    pub const JWKS_FETCH_FAILURES: &str = "JwksFetchFailures";

    /// Every name above, for the test that checks the template against the code.
    pub const ALL: &[&str] = &[
        ALLOWS,
        DENIALS,
        UNAUTHORIZED,
        DECISION_CACHE_HITS,
        DECISION_LATENCY,
        AUTHORIZER_ERRORS,
        CRL_SECONDS_TO_NEXT_UPDATE,
        TRUSTSTORE_SECONDS_TO_EXPIRY,
        TRUST_REFRESH_FAILURES,
        JWKS_FETCH_FAILURES,
    ];
}

/// The `Reason` values of [`names::AUTHORIZER_ERRORS`]: the authorizer's own trouble, each refusing callers whose
/// credentials may well be valid. `docs/runbooks/alarms.md` says what each means and what to do.
pub mod outage {
    /// No truststore has been loaded (the cold-start read failed and no refresh has succeeded since): every
    /// certificate caller gets 401.
    pub const NO_TRUST_MATERIAL: &str = "no_trust_material";
    /// A partner issuer's JWKS could not be fetched and no keys are cached: that partner's callers get 401.
    pub const KEYS_UNAVAILABLE: &str = "keys_unavailable";
    /// A CRL needed for the chain is past its nextUpdate: certificates of that issuer get 401.
    pub const STALE_CRL: &str = "stale_crl";
    /// Revocation is required but an issuer in the chain has no CRL (or no CRL bundle loaded at all): 401.
    pub const REVOCATION_UNKNOWN: &str = "revocation_unknown";
    /// Reading the truststore or CRL bundle failed (unreachable, missing, or refused as unusable); the last good
    /// material stays in use, or certificates fail closed when there is none.
    pub const TRUST_REFRESH_FAILED: &str = "trust_refresh_failed";
    /// The event's `methodArn` is not an execute-api ARN, so no policy could be answered (a gateway
    /// misconfiguration, not a caller's mistake).
    pub const BAD_METHOD_ARN: &str = "bad_method_arn";
    /// The context-MAC key set is past its stale bound and cannot be read again (SSM unreachable or denied, the
    /// parameter gone or invalid): an Allow cannot be signed, so every caller the authorizer would allow gets 401.
    pub const CONTEXT_KEYS_UNAVAILABLE: &str = "context_keys_unavailable";

    /// Every reason above.
    pub const ALL: &[&str] = &[
        NO_TRUST_MATERIAL,
        KEYS_UNAVAILABLE,
        STALE_CRL,
        REVOCATION_UNKNOWN,
        TRUST_REFRESH_FAILED,
        BAD_METHOD_ARN,
        CONTEXT_KEYS_UNAVAILABLE,
    ];
}

/// The `Reason` values of the breakdown of [`names::UNAUTHORIZED`]: one per kind of missing or unusable credential,
/// fixed strings (never a refusal's detail text, which would multiply the series), the same as
/// [`UnauthorizedReason::code`] writes to the decision log.
pub mod unauthorized {
    /// Neither a client certificate nor a bearer token.
    pub const NO_CREDENTIAL: &str = "no_credential";
    /// An Authorization header that is not exactly one `Bearer <token>`.
    pub const MALFORMED_AUTHORIZATION: &str = "malformed_authorization";
    /// A certificate on a deployment without a truststore.
    pub const CERTIFICATES_NOT_ACCEPTED: &str = "certificates_not_accepted";
    /// A certificate that failed parsing or validation (outages among them are also `AuthorizerErrors`).
    pub const INVALID_CERTIFICATE: &str = "invalid_certificate";
    /// A token on a deployment without partner issuers.
    pub const JWT_NOT_ACCEPTED: &str = "jwt_not_accepted";
    /// A token that failed verification (outages among them are also `AuthorizerErrors`).
    pub const INVALID_JWT: &str = "invalid_jwt";
    /// A caller that would be allowed, refused because no context MAC can be made (always also an
    /// `AuthorizerErrors` with the same reason).
    pub const CONTEXT_KEYS_UNAVAILABLE: &str = "context_keys_unavailable";

    /// Every reason above.
    pub const ALL: &[&str] = &[
        NO_CREDENTIAL,
        MALFORMED_AUTHORIZATION,
        CERTIFICATES_NOT_ACCEPTED,
        INVALID_CERTIFICATE,
        JWT_NOT_ACCEPTED,
        INVALID_JWT,
        CONTEXT_KEYS_UNAVAILABLE,
    ];
}

/// The `Object` values of [`names::TRUST_REFRESH_FAILURES`].
pub mod trust_object {
    /// The CA bundle (`TRUSTSTORE_URI`).
    pub const TRUSTSTORE: &str = "truststore";
    /// The CRL bundle (`CRL_URI`).
    pub const CRL: &str = "crl";

    /// Every object above.
    pub const ALL: &[&str] = &[TRUSTSTORE, CRL];
}

/// The refusal texts that mean an outage. The decision carries a verifier's refusal as its `Display` text (it names
/// no credential content), so the texts are matched against the errors' own `Display`, never against copies.
static CERT_OUTAGES: LazyLock<[(String, &'static str); 3]> = LazyLock::new(|| {
    [
        (CertError::NoTrustMaterial.to_string(), outage::NO_TRUST_MATERIAL),
        (CertError::StaleCrl.to_string(), outage::STALE_CRL),
        (CertError::RevocationUnknown.to_string(), outage::REVOCATION_UNKNOWN),
    ]
});
static JWT_KEYS_UNAVAILABLE: LazyLock<String> = LazyLock::new(|| JwtError::KeysUnavailable.to_string());

/// The outage behind an `Unauthorized`, or `None` when it is an answer about the caller's credentials (missing,
/// malformed, forged, expired, untrusted).
pub(crate) fn outage_of(reason: &UnauthorizedReason) -> Option<&'static str> {
    match reason {
        UnauthorizedReason::InvalidCertificate(detail) => {
            CERT_OUTAGES.iter().find(|(text, _)| text == detail).map(|(_, code)| *code)
        }
        UnauthorizedReason::InvalidJwt(detail) if *detail == *JWT_KEYS_UNAVAILABLE => Some(outage::KEYS_UNAVAILABLE),
        UnauthorizedReason::ContextKeysUnavailable(_) => Some(outage::CONTEXT_KEYS_UNAVAILABLE),
        _ => None,
    }
}

/// A metric line with the authorizer's `Service` dimension (next to the sink's defaults, such as `Stack`).
fn line(sink: &MetricsSink) -> Metrics {
    let mut m = sink.start();
    m.dimension(SERVICE_DIMENSION, SERVICE);
    m
}

/// Emits one occurrence of `name` twice: on the alarm's series (`Service` and the sink's defaults) and on the
/// breakdown that adds `dimension` = `value`. The alarm reads the first, so a value added later (a new reason, a new
/// issuer) is alarmed without touching the template.
fn count_twice(sink: &MetricsSink, name: &str, dimension: &str, value: &str, request_id: Option<&str>) {
    let mut total = line(sink);
    total.put(name, Unit::Count, 1.0);
    let mut by_value = line(sink);
    by_value.dimension(dimension, value).put(name, Unit::Count, 1.0);
    if let Some(id) = request_id {
        total.property("requestId", id);
        by_value.property("requestId", id);
    }
    total.flush();
    by_value.flush();
}

/// Emits one [`names::AUTHORIZER_ERRORS`] for `reason`: the alarm's series (dimension `Service`) and the
/// breakdown (dimensions `Service` and `Reason`).
pub(crate) fn authorizer_error(sink: &MetricsSink, reason: &'static str, request_id: Option<&str>) {
    count_twice(sink, names::AUTHORIZER_ERRORS, REASON_DIMENSION, reason, request_id);
}

/// Emits the `Reason` breakdown of one [`names::UNAUTHORIZED`] (the total is on the request's own line).
pub(crate) fn unauthorized_by_reason(sink: &MetricsSink, reason: &UnauthorizedReason, request_id: &str) {
    let mut m = line(sink);
    m.dimension(REASON_DIMENSION, reason.code()).property("requestId", request_id).put(
        names::UNAUTHORIZED,
        Unit::Count,
        1.0,
    );
    m.flush();
}

/// Emits one [`names::TRUST_REFRESH_FAILURES`] for `object` (a [`trust_object`] value).
pub(crate) fn trust_refresh_failure(sink: &MetricsSink, object: &'static str) {
    count_twice(sink, names::TRUST_REFRESH_FAILURES, OBJECT_DIMENSION, object, None);
}

/// Emits one [`names::JWKS_FETCH_FAILURES`] for the issuer whose dimension value is `issuer` (see
/// [`issuer_dimension`]).
pub(crate) fn jwks_fetch_failure(sink: &MetricsSink, issuer: &str) {
    count_twice(sink, names::JWKS_FETCH_FAILURES, ISSUER_DIMENSION, issuer, None);
}

/// Emits the trust-material gauges on one line: seconds from `now` until the truststore's earliest CA `notAfter`
/// and until the earliest CRL `nextUpdate`, each only when known (no truststore loaded, no CRLs in use: left out).
pub(crate) fn trust_gauges(
    sink: &MetricsSink,
    now: SystemTime,
    truststore_expiry: Option<SystemTime>,
    crl_next_update: Option<SystemTime>,
) {
    let mut m = line(sink);
    if let Some(t) = truststore_expiry {
        m.put(names::TRUSTSTORE_SECONDS_TO_EXPIRY, Unit::Seconds, seconds_between(now, t));
    }
    if let Some(t) = crl_next_update {
        m.put(names::CRL_SECONDS_TO_NEXT_UPDATE, Unit::Seconds, seconds_between(now, t));
    }
    m.flush();
}

/// Seconds from `now` to `then`, negative when `then` is past.
fn seconds_between(now: SystemTime, then: SystemTime) -> f64 {
    match then.duration_since(now) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Longest `Issuer` dimension value.
const MAX_ISSUER_DIMENSION: usize = 128;

/// The `Issuer` dimension value of a policy issuer: its `issuer` string without the scheme, and cut before any
/// `?` or `#` (an issuer is a URL by convention, and a query string has no place in a metric's name), with every
/// byte that is not printable ASCII replaced by `_` and at most 128 characters kept. It comes from the policy only,
/// never from a token, so there are as many values as configured issuers.
pub fn issuer_dimension(issuer: &str) -> String {
    let rest = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let value: String = rest
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' })
        .take(MAX_ISSUER_DIMENSION)
        .collect();
    if value.is_empty() {
        "unnamed".to_owned()
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_authorizers_own_trouble_is_an_outage() {
        let cert = |e: CertError| UnauthorizedReason::InvalidCertificate(e.to_string());
        let jwt = |e: JwtError| UnauthorizedReason::InvalidJwt(e.to_string());
        assert_eq!(outage_of(&cert(CertError::NoTrustMaterial)), Some(outage::NO_TRUST_MATERIAL));
        assert_eq!(outage_of(&cert(CertError::StaleCrl)), Some(outage::STALE_CRL));
        assert_eq!(outage_of(&cert(CertError::RevocationUnknown)), Some(outage::REVOCATION_UNKNOWN));
        assert_eq!(outage_of(&jwt(JwtError::KeysUnavailable)), Some(outage::KEYS_UNAVAILABLE));
        let keys = UnauthorizedReason::ContextKeysUnavailable("context key store unavailable: timed out".into());
        assert_eq!(outage_of(&keys), Some(outage::CONTEXT_KEYS_UNAVAILABLE));
        for caller_side in [
            cert(CertError::Expired),
            cert(CertError::UntrustedIssuer),
            cert(CertError::NoClientAuthEku),
            cert(CertError::MalformedDer),
            jwt(JwtError::BadSignature),
            jwt(JwtError::Expired),
            jwt(JwtError::UnknownKid),
            jwt(JwtError::UnknownIssuer),
            UnauthorizedReason::NoCredential,
            UnauthorizedReason::MalformedAuthorization,
            UnauthorizedReason::CertificatesNotAccepted,
            UnauthorizedReason::JwtNotAccepted,
        ] {
            assert_eq!(outage_of(&caller_side), None, "{caller_side:?}");
        }
    }

    use serde_json::{json, Value};
    use std::time::Duration;
    use tb_shared::telemetry::{CaptureWriter, STACK_DIMENSION};

    /// A sink as the Lambda builds it (with the stack's dimension) and what it captured.
    fn sink() -> (MetricsSink, CaptureWriter) {
        let cap = CaptureWriter::default();
        (MetricsSink::to_writer("TokenBroker", cap.clone()).with_dimension(STACK_DIMENSION, "tb-test"), cap)
    }

    fn lines(cap: &CaptureWriter) -> Vec<Value> {
        cap.contents().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn dims(line: &Value) -> Value {
        line["_aws"]["CloudWatchMetrics"][0]["Dimensions"].clone()
    }

    /// `(name, unit)` of every metric definition of a line.
    fn defs(line: &Value) -> Vec<(String, String)> {
        let defs = line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        defs.iter().map(|d| (d["Name"].as_str().unwrap().to_owned(), d["Unit"].as_str().unwrap().to_owned())).collect()
    }

    #[test]
    fn each_error_is_counted_for_the_alarm_and_by_reason() {
        let (sink, cap) = sink();
        authorizer_error(&sink, outage::STALE_CRL, Some("r-1"));
        let lines = lines(&cap);
        assert_eq!(lines.len(), 2);
        let dims: Vec<_> = lines.iter().map(dims).collect();
        assert_eq!(dims, [json!([["Service", "Stack"]]), json!([["Reason", "Service", "Stack"]])]);
        assert!(lines[0].get(REASON_DIMENSION).is_none(), "the alarm's line has no Reason: {}", lines[0]);
        assert_eq!(lines[1][REASON_DIMENSION], "stale_crl");
        assert!(lines.iter().all(|l| l[names::AUTHORIZER_ERRORS] == 1.0 && l["requestId"] == "r-1"));
        assert!(lines.iter().all(|l| l["Stack"] == "tb-test" && l["Service"] == "authorizer"));
    }

    #[test]
    fn an_unauthorized_is_broken_down_by_a_fixed_reason_never_by_its_detail() {
        let (sink, cap) = sink();
        let secretish = UnauthorizedReason::InvalidJwt("token ey.J.x from 10.0.0.1".into());
        unauthorized_by_reason(&sink, &secretish, "r-2");
        unauthorized_by_reason(&sink, &UnauthorizedReason::NoCredential, "r-3");
        let lines = lines(&cap);
        assert_eq!(lines.len(), 2);
        for l in &lines {
            assert_eq!(dims(l), json!([["Reason", "Service", "Stack"]]));
            assert_eq!(defs(l), [("Unauthorized".to_owned(), "Count".to_owned())]);
            assert_eq!(l[names::UNAUTHORIZED], 1.0);
        }
        assert_eq!(
            (lines[0]["Reason"].as_str(), lines[1]["Reason"].as_str()),
            (Some("invalid_jwt"), Some("no_credential"))
        );
        assert!(!cap.contents().contains("ey.J"), "the detail never reaches a metric");
    }

    #[test]
    fn unauthorized_reasons_are_the_codes_of_every_variant() {
        let every = [
            UnauthorizedReason::NoCredential,
            UnauthorizedReason::MalformedAuthorization,
            UnauthorizedReason::CertificatesNotAccepted,
            UnauthorizedReason::InvalidCertificate("x".into()),
            UnauthorizedReason::JwtNotAccepted,
            UnauthorizedReason::InvalidJwt("y".into()),
            UnauthorizedReason::ContextKeysUnavailable("z".into()),
        ];
        let codes: Vec<&str> = every.iter().map(UnauthorizedReason::code).collect();
        assert_eq!(codes, unauthorized::ALL);
    }

    #[test]
    fn trust_and_jwks_failures_are_counted_for_the_alarm_and_by_object_or_issuer() {
        let (sink, cap) = sink();
        trust_refresh_failure(&sink, trust_object::CRL);
        jwks_fetch_failure(&sink, "idp.acme.example");
        let lines = lines(&cap);
        assert_eq!(lines.len(), 4);
        assert_eq!(dims(&lines[0]), json!([["Service", "Stack"]]));
        assert_eq!(dims(&lines[1]), json!([["Object", "Service", "Stack"]]));
        assert_eq!(lines[1][OBJECT_DIMENSION], "crl");
        assert_eq!(dims(&lines[2]), json!([["Service", "Stack"]]));
        assert_eq!(dims(&lines[3]), json!([["Issuer", "Service", "Stack"]]));
        assert_eq!(lines[3][ISSUER_DIMENSION], "idp.acme.example");
        for l in &lines[..2] {
            assert_eq!(defs(l), [("TrustRefreshFailures".to_owned(), "Count".to_owned())]);
        }
        for l in &lines[2..] {
            assert_eq!(defs(l), [("JwksFetchFailures".to_owned(), "Count".to_owned())]);
        }
        assert!(lines.iter().all(|l| l["Stack"] == "tb-test" && l.get("requestId").is_none()));
    }

    #[test]
    fn trust_gauges_are_signed_seconds_and_left_out_when_unknown() {
        let (sink, cap) = sink();
        let now = SystemTime::now();
        trust_gauges(&sink, now, Some(now + Duration::from_secs(86_400)), Some(now - Duration::from_millis(1500)));
        trust_gauges(&sink, now, Some(now + Duration::from_secs(10)), None);
        trust_gauges(&sink, now, None, None);
        let lines = lines(&cap);
        assert_eq!(lines.len(), 2, "a line with no gauge is not written");
        assert_eq!(dims(&lines[0]), json!([["Service", "Stack"]]));
        let seconds = |n: &str| (n.to_owned(), "Seconds".to_owned());
        assert_eq!(defs(&lines[0]), [seconds("TruststoreSecondsToExpiry"), seconds("CrlSecondsToNextUpdate")]);
        assert_eq!(lines[0]["TruststoreSecondsToExpiry"], 86_400.0);
        assert_eq!(lines[0]["CrlSecondsToNextUpdate"], -1.5);
        assert_eq!(defs(&lines[1]), [seconds("TruststoreSecondsToExpiry")]);
        assert!(lines[1].get("CrlSecondsToNextUpdate").is_none());
    }

    #[test]
    fn the_issuer_dimension_is_bounded_and_carries_no_query() {
        assert_eq!(issuer_dimension("https://idp.acme.example"), "idp.acme.example");
        assert_eq!(
            issuer_dimension("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"),
            "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"
        );
        assert_eq!(issuer_dimension("https://idp.example/t?tenant=1&k=secret#frag"), "idp.example/t");
        assert_eq!(issuer_dimension("urn:acme\u{7}\u{e9}"), "urn:acme__");
        assert_eq!(issuer_dimension("https://?x"), "unnamed");
        let long = format!("https://{}", "a".repeat(1000));
        assert_eq!(issuer_dimension(&long).len(), 128);
    }

    #[test]
    fn every_name_and_value_is_listed() {
        assert_eq!(names::ALL.len(), 10);
        for n in [
            names::CRL_SECONDS_TO_NEXT_UPDATE,
            names::TRUSTSTORE_SECONDS_TO_EXPIRY,
            names::TRUST_REFRESH_FAILURES,
            names::JWKS_FETCH_FAILURES,
        ] {
            assert!(names::ALL.contains(&n), "{n}");
        }
        assert_eq!(trust_object::ALL, ["truststore", "crl"]);
    }
}
