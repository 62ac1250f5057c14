//! The trigger's EMF metrics. Only client-credentials events are counted (user sign-ins are not the broker's).
//!
//! Namespace `METRICS_NAMESPACE` (default `TokenBroker`); every line carries `Service` = `trigger` and `Stack` =
//! `STACK_NAME`.
//!
//! | metric | unit | dimensions | when | meaning |
//! |---|---|---|---|---|
//! | `ClaimsAdded` | Count | Service, Stack | every client-credentials event (0 or 1) | verified caller claims were written into the token |
//! | `ClaimsRefused` | Count | Service, Stack | every client-credentials event (0 or 1) | the token was failed: page when it is not the broker's own misconfiguration, someone holds an app client's secret and asks Cognito directly |
//! | `ClaimsRefused` | Count | Service, Stack, Reason | per refusal, a second line | by [`crate::Refusal::reason`], or `context_keys_unavailable` |
//!
//! Caller ids and client ids are never dimensions (unbounded cardinality).

use tb_shared::telemetry::{MetricsSink, Unit, SERVICE_DIMENSION};

/// Metric names, public so the template's alarms and the tests agree on them.
pub mod names {
    /// Verified caller claims were written into a client-credentials token.
    pub const CLAIMS_ADDED: &str = "ClaimsAdded";
    /// A client-credentials token was failed.
    pub const CLAIMS_REFUSED: &str = "ClaimsRefused";
}

/// The `Service` dimension value of every trigger metric line.
pub const SERVICE: &str = "trigger";
/// The dimension carrying the refusal reason.
pub const REASON_DIMENSION: &str = "Reason";

/// Writes the lines of one client-credentials event: the totals, and the reason when it was refused.
pub(crate) fn flush(sink: &MetricsSink, request_id: &str, refusal: Option<&'static str>) {
    let count = |b: bool| if b { 1.0 } else { 0.0 };
    let mut m = sink.start();
    m.dimension(SERVICE_DIMENSION, SERVICE).property("requestId", request_id);
    m.put(names::CLAIMS_ADDED, Unit::Count, count(refusal.is_none()));
    m.put(names::CLAIMS_REFUSED, Unit::Count, count(refusal.is_some()));
    m.flush();
    if let Some(reason) = refusal {
        let mut by_reason = sink.start();
        by_reason
            .dimension(SERVICE_DIMENSION, SERVICE)
            .dimension(REASON_DIMENSION, reason)
            .property("requestId", request_id)
            .put(names::CLAIMS_REFUSED, Unit::Count, 1.0);
        by_reason.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tb_shared::telemetry::{CaptureWriter, STACK_DIMENSION};

    fn lines(refusal: Option<&'static str>) -> Vec<Value> {
        let cap = CaptureWriter::default();
        let sink = MetricsSink::to_writer("T", cap.clone()).with_dimension(STACK_DIMENSION, "tb-test");
        flush(&sink, "r-1", refusal);
        cap.contents().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn an_added_token_writes_one_line() {
        let l = lines(None);
        assert_eq!(l.len(), 1);
        assert_eq!((l[0]["ClaimsAdded"].clone(), l[0]["ClaimsRefused"].clone()), (json!(1.0), json!(0.0)));
        assert_eq!(l[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Service", "Stack"]]));
        assert_eq!((l[0]["Service"].clone(), l[0]["Stack"].clone()), (json!("trigger"), json!("tb-test")));
    }

    #[test]
    fn a_refusal_writes_its_reason_on_a_second_line() {
        let l = lines(Some("mac_mismatch"));
        assert_eq!(l.len(), 2);
        assert_eq!((l[0]["ClaimsAdded"].clone(), l[0]["ClaimsRefused"].clone()), (json!(0.0), json!(1.0)));
        assert_eq!(l[1]["Reason"], "mac_mismatch");
        assert_eq!(l[1]["ClaimsRefused"], 1.0);
        assert_eq!(l[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Reason", "Service", "Stack"]]));
        assert!(l[1].get("ClaimsAdded").is_none());
    }
}
