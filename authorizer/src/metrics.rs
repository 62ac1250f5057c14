//! The authorizer's metric names and its `Service` dimension, in one place so the deployment template's alarms
//! (its `Mappings.Emf.Metric` table, checked against these names by a test) and the dashboards agree with the code.
//!
//! Every `Unauthorized` is a Lambda function error (API Gateway only answers 401 when the authorizer fails with the
//! message `Unauthorized`), so the function's own `Errors` metric counts every caller without credentials and
//! cannot tell an outage from an ordinary refusal. [`names::AUTHORIZER_ERRORS`] is that distinction: it is emitted
//! only when the authorizer could not decide as it should (the [`outage`] reasons), never for bad credentials.

use std::sync::LazyLock;

use tb_shared::telemetry::{MetricsSink, Unit};

use crate::decision::UnauthorizedReason;
use crate::jwt::JwtError;
use crate::mtls::CertError;

/// The `Service` dimension value of every authorizer metric line.
pub const SERVICE: &str = "authorizer";

/// The dimension that says why [`names::AUTHORIZER_ERRORS`] was emitted; its values are the [`outage`] reasons.
pub const REASON_DIMENSION: &str = "Reason";

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

    /// Every name above, for the test that checks the template against the code.
    pub const ALL: &[&str] = &[ALLOWS, DENIALS, UNAUTHORIZED, DECISION_CACHE_HITS, DECISION_LATENCY, AUTHORIZER_ERRORS];
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

    /// Every reason above.
    pub const ALL: &[&str] =
        &[NO_TRUST_MATERIAL, KEYS_UNAVAILABLE, STALE_CRL, REVOCATION_UNKNOWN, TRUST_REFRESH_FAILED, BAD_METHOD_ARN];
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
        _ => None,
    }
}

/// Emits one [`names::AUTHORIZER_ERRORS`] for `reason`: the alarm's series (dimension `Service`) and the
/// breakdown (dimensions `Service` and `Reason`).
pub(crate) fn authorizer_error(sink: &MetricsSink, reason: &'static str, request_id: Option<&str>) {
    let mut total = sink.start();
    total.dimension("Service", SERVICE).put(names::AUTHORIZER_ERRORS, Unit::Count, 1.0);
    let mut by_reason = sink.start();
    by_reason.dimension("Service", SERVICE).dimension(REASON_DIMENSION, reason).put(
        names::AUTHORIZER_ERRORS,
        Unit::Count,
        1.0,
    );
    if let Some(id) = request_id {
        total.property("requestId", id);
        by_reason.property("requestId", id);
    }
    total.flush();
    by_reason.flush();
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

    #[test]
    fn each_error_is_counted_for_the_alarm_and_by_reason() {
        let cap = tb_shared::telemetry::CaptureWriter::default();
        let sink = MetricsSink::to_writer("TokenBroker", cap.clone());
        authorizer_error(&sink, outage::STALE_CRL, Some("r-1"));
        let lines: Vec<serde_json::Value> = cap.contents().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        let dims: Vec<_> = lines.iter().map(|l| l["_aws"]["CloudWatchMetrics"][0]["Dimensions"].clone()).collect();
        assert_eq!(dims, [serde_json::json!([["Service"]]), serde_json::json!([["Reason", "Service"]])]);
        assert!(lines[0].get(REASON_DIMENSION).is_none(), "the alarm's line has no Reason: {}", lines[0]);
        assert_eq!(lines[1][REASON_DIMENSION], "stale_crl");
        assert!(lines.iter().all(|l| l[names::AUTHORIZER_ERRORS] == 1.0 && l["requestId"] == "r-1"));
    }
}
