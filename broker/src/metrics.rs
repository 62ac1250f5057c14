//! The broker's EMF metrics: what one invocation contributes, flushed as at most two lines at its end.
//!
//! Line one has the dimension set `{Service}` and carries the totals operators alarm on. Line two, only for a
//! refusal, has `{Service, Reason}` so denials can be graphed by reason without multiplying every other metric by
//! the number of reasons. Reasons are the fixed names of [`crate::error::BrokerError::reason`]; caller ids are never
//! a dimension (unbounded cardinality, and they may be hashed in logs for a reason).

use std::time::Duration;

use tb_shared::telemetry::{MetricsSink, Unit};

/// Metric names, public so dashboards, alarms (infra) and tests agree on them.
pub mod names {
    /// A token was handed out (fresh or reused).
    pub const GRANTS: &str = "Grants";
    /// A request was refused (any reason; the second line carries the reason).
    pub const DENIALS: &str = "Denials";
    /// A caller hit its quota (429).
    pub const QUOTA_EXHAUSTED: &str = "QuotaExhausted";
    /// Time of the Cognito call, in milliseconds.
    pub const UPSTREAM_LATENCY: &str = "UpstreamLatency";
    /// Failed Cognito attempts (timeouts, 5xx, throttling).
    pub const UPSTREAM_ERRORS: &str = "UpstreamErrors";
    /// A token was served from the reuse cache.
    pub const REUSE_HITS: &str = "TokenReuseHits";
    /// Cognito refused our own client secret even after a refresh: page someone.
    pub const INVALID_CLIENT_ALARM: &str = "UpstreamInvalidClient";
    /// Cognito issued a token longer-lived than a caller may hold: the app client's validity needs lowering.
    pub const LIFETIME_ALARM: &str = "TokenLifetimeExceeded";
    /// A request arrived without an authorizer context: the gateway is misconfigured or bypassed.
    pub const MISSING_CONTEXT_ALARM: &str = "MissingAuthorizerContext";
    /// Credentials were re-read after Cognito refused them.
    pub const CREDENTIAL_REFRESHES: &str = "CredentialRefreshes";

    /// Every name above, for the test that checks the template against the code.
    pub const ALL: &[&str] = &[
        GRANTS,
        DENIALS,
        QUOTA_EXHAUSTED,
        UPSTREAM_LATENCY,
        UPSTREAM_ERRORS,
        REUSE_HITS,
        INVALID_CLIENT_ALARM,
        LIFETIME_ALARM,
        MISSING_CONTEXT_ALARM,
        CREDENTIAL_REFRESHES,
    ];
}

/// The `Service` dimension value of every broker metric line.
pub const SERVICE: &str = "broker";

/// One invocation's metrics.
#[derive(Debug, Default)]
pub(crate) struct InvocationMetrics {
    pub granted: bool,
    pub denial_reason: Option<&'static str>,
    pub quota_exhausted: bool,
    pub upstream_latency: Option<Duration>,
    pub upstream_errors: u32,
    pub reuse_hit: bool,
    pub invalid_client_alarm: bool,
    pub lifetime_alarm: bool,
    pub missing_context_alarm: bool,
    pub credential_refreshes: u32,
}

impl InvocationMetrics {
    /// Writes the EMF line(s). `request_id` is a searchable property, not a dimension.
    pub(crate) fn flush(&self, sink: &MetricsSink, request_id: &str) {
        let mut m = sink.start();
        m.dimension("Service", SERVICE).property("requestId", request_id);
        let count = |b: bool| if b { 1.0 } else { 0.0 };
        m.put(names::GRANTS, Unit::Count, count(self.granted));
        m.put(names::DENIALS, Unit::Count, count(self.denial_reason.is_some()));
        if self.quota_exhausted {
            m.put(names::QUOTA_EXHAUSTED, Unit::Count, 1.0);
        }
        if let Some(l) = self.upstream_latency {
            m.put(names::UPSTREAM_LATENCY, Unit::Milliseconds, l.as_secs_f64() * 1000.0);
        }
        if self.upstream_errors > 0 {
            m.put(names::UPSTREAM_ERRORS, Unit::Count, f64::from(self.upstream_errors));
        }
        if self.reuse_hit {
            m.put(names::REUSE_HITS, Unit::Count, 1.0);
        }
        if self.invalid_client_alarm {
            m.put(names::INVALID_CLIENT_ALARM, Unit::Count, 1.0);
        }
        if self.lifetime_alarm {
            m.put(names::LIFETIME_ALARM, Unit::Count, 1.0);
        }
        if self.missing_context_alarm {
            m.put(names::MISSING_CONTEXT_ALARM, Unit::Count, 1.0);
        }
        if self.credential_refreshes > 0 {
            m.put(names::CREDENTIAL_REFRESHES, Unit::Count, f64::from(self.credential_refreshes));
        }
        m.flush();
        if let Some(reason) = self.denial_reason {
            let mut by_reason = sink.start();
            by_reason.dimension("Service", SERVICE).dimension("Reason", reason).property("requestId", request_id).put(
                names::DENIALS,
                Unit::Count,
                1.0,
            );
            by_reason.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tb_shared::telemetry::CaptureWriter;

    #[test]
    fn denial_writes_a_reason_line() {
        let cap = CaptureWriter::default();
        let sink = MetricsSink::to_writer("T", cap.clone());
        InvocationMetrics { denial_reason: Some("invalid_scope"), ..Default::default() }.flush(&sink, "r-1");
        let text = cap.contents();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["Denials"], 1.0);
        assert_eq!(lines[0]["Grants"], 0.0);
        assert_eq!(lines[1]["Reason"], "invalid_scope");
        assert_eq!(lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Reason", "Service"]]));
    }
}
