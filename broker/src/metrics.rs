//! The broker's EMF metrics: what one invocation contributes, flushed as at most two lines at its end.
//!
//! Line one has the dimension set `{Service, Stack}` and carries the totals operators alarm on. Line two, only for a
//! refusal, has `{Service, Stack, Reason}` so denials can be graphed by reason without multiplying every other
//! metric by the number of reasons. Reasons are the fixed names of [`crate::error::BrokerError::code`]; caller ids
//! are never a dimension (unbounded cardinality, and they may be hashed in logs for a reason). A refused context MAC
//! adds a third line, `ForgedAuthorizerContext` by `Reason` = [`tb_shared::context::MacError::reason`].
//!
//! ## Metrics
//!
//! Namespace: `METRICS_NAMESPACE` (default `TokenBroker`). Every line carries `Service` = `broker` and `Stack` =
//! `STACK_NAME` (default `token-broker`, the sink's default dimension), so two stacks in one account never share a
//! series.
//!
//! | metric | unit | dimensions | when | meaning |
//! |---|---|---|---|---|
//! | `Grants` | Count | Service, Stack | every request (0 or 1) | a token was handed out, fresh or reused |
//! | `Denials` | Count | Service, Stack | every request (0 or 1) | the request was refused, for any reason |
//! | `Denials` | Count | Service, Stack, Reason | per refusal, a second line | by the refusal's code (`invalid_scope`, `quota_exhausted`, `upstream_unavailable`, ...) |
//! | `QuotaExhausted` | Count | Service, Stack | per request over its quota (429) | |
//! | `UpstreamLatency` | Milliseconds | Service, Stack | per request that called Cognito | time of the Cognito call(s) |
//! | `UpstreamErrors` | Count | Service, Stack | per request with failed Cognito attempts | timeouts, 5xx, throttling, refusals of our secret, unusable answers |
//! | `BreakerOpen` | Count | Service, Stack | per request refused or cut short because the circuit breaker is open | Cognito failed `BREAKER_FAILURE_THRESHOLD` attempts in a row and the broker fails fast (503) for `BREAKER_OPEN_SECONDS` |
//! | `TokenReuseHits` | Count | Service, Stack | per token served from the reuse cache | in memory or from the fleet cache |
//! | `FleetCacheHits` | Count | Service, Stack | per token served from the fleet token cache | another instance (or this one, earlier) had fetched it |
//! | `FleetCacheUnavailable` | Count | Service, Stack | per request whose fleet-cache read, lease or KMS call failed | the cache is skipped for `TOKEN_CACHE_RETRY_SECONDS`; tokens are still issued |
//! | `FleetCacheWaitedOut` | Count | Service, Stack | per request that waited `TOKEN_CACHE_WAIT_MS` for another instance's fetch in vain and fetched itself | Cognito slower than the wait, or a holder that crashed |
//! | `FleetCacheDamagedItems` | Count | Service, Stack | per request that found an item that does not open for it | overwritten with the new token; many mean a tampered table or a key problem |
//! | `UpstreamInvalidClient` | Count | Service, Stack | Cognito refused our client secret even after a refresh | page: the stored secret is wrong |
//! | `TokenLifetimeExceeded` | Count | Service, Stack | Cognito issued a token longer-lived than the caller may hold | lower the app client's access-token validity |
//! | `MissingAuthorizerContext` | Count | Service, Stack | a request came without an authorizer context | the gateway is misconfigured or bypassed |
//! | `CredentialRefreshes` | Count | Service, Stack | credentials were re-read after Cognito refused them | |
//! | `ForgedAuthorizerContext` | Count | Service, Stack | a request whose authorizer context's MAC did not verify (500) | page: the broker was invoked directly with a context of someone's making, or the authorizer and the broker disagree on the context key |
//! | `ForgedAuthorizerContext` | Count | Service, Stack, Reason | per such request, its own line | by why the MAC was refused: `missing`, `malformed`, `unknown_key`, `expired`, `mismatch` |
//! | `ContextKeysUnavailable` | Count | Service, Stack | a request refused (503) because the context-key set could not be read and the last one read is past `CONTEXT_KEYS_MAX_STALE_SECONDS` | |

use std::time::Duration;

use tb_shared::telemetry::{MetricsSink, Unit, SERVICE_DIMENSION};

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
    /// A request was refused, or its retry cut short, because the upstream circuit breaker is open: Cognito failed
    /// too often in a row and the broker fails fast.
    pub const BREAKER_OPEN: &str = "BreakerOpen";
    /// A request's authorizer context carried no valid MAC: the broker was invoked directly with a context of
    /// someone's making (or the two functions disagree on the key). Page someone.
    pub const FORGED_CONTEXT: &str = "ForgedAuthorizerContext";
    /// A request was refused because the context-key set could not be read and the last one is past its stale bound.
    pub const CONTEXT_KEYS_UNAVAILABLE: &str = "ContextKeysUnavailable";

    /// A token was served from the fleet token cache.
    pub const FLEET_HITS: &str = "FleetCacheHits";
    /// The fleet token cache failed (table or KMS) and is skipped for a while.
    pub const FLEET_UNAVAILABLE: &str = "FleetCacheUnavailable";
    /// An instance waited for another's fetch in vain and fetched by itself.
    pub const FLEET_WAITED_OUT: &str = "FleetCacheWaitedOut";
    /// A fleet-cache item did not open for the request that read it (and is overwritten).
    pub const FLEET_DAMAGED: &str = "FleetCacheDamagedItems";

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
        BREAKER_OPEN,
        FORGED_CONTEXT,
        CONTEXT_KEYS_UNAVAILABLE,
        FLEET_HITS,
        FLEET_UNAVAILABLE,
        FLEET_WAITED_OUT,
        FLEET_DAMAGED,
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
    pub breaker_open: bool,
    /// Why the context MAC was refused ([`tb_shared::context::MacError::reason`]), when it was.
    pub forged_context: Option<&'static str>,
    pub context_keys_unavailable: bool,
    pub fleet_hit: bool,
    pub fleet_unavailable: bool,
    pub fleet_waited_out: bool,
    pub fleet_damaged: bool,
}

impl InvocationMetrics {
    /// Writes the EMF line(s). `request_id` is a searchable property, not a dimension.
    pub(crate) fn flush(&self, sink: &MetricsSink, request_id: &str) {
        let mut m = sink.start();
        m.dimension(SERVICE_DIMENSION, SERVICE).property("requestId", request_id);
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
        if self.breaker_open {
            m.put(names::BREAKER_OPEN, Unit::Count, 1.0);
        }
        if self.forged_context.is_some() {
            m.put(names::FORGED_CONTEXT, Unit::Count, 1.0);
        }
        if self.context_keys_unavailable {
            m.put(names::CONTEXT_KEYS_UNAVAILABLE, Unit::Count, 1.0);
        }
        for (on, name) in [
            (self.fleet_hit, names::FLEET_HITS),
            (self.fleet_unavailable, names::FLEET_UNAVAILABLE),
            (self.fleet_waited_out, names::FLEET_WAITED_OUT),
            (self.fleet_damaged, names::FLEET_DAMAGED),
        ] {
            if on {
                m.put(name, Unit::Count, 1.0);
            }
        }
        m.flush();
        if let Some(reason) = self.denial_reason {
            let mut by_reason = sink.start();
            by_reason
                .dimension(SERVICE_DIMENSION, SERVICE)
                .dimension("Reason", reason)
                .property("requestId", request_id)
                .put(names::DENIALS, Unit::Count, 1.0);
            by_reason.flush();
        }
        if let Some(reason) = self.forged_context {
            let mut by_reason = sink.start();
            by_reason
                .dimension(SERVICE_DIMENSION, SERVICE)
                .dimension("Reason", reason)
                .property("requestId", request_id)
                .put(names::FORGED_CONTEXT, Unit::Count, 1.0);
            by_reason.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tb_shared::telemetry::{CaptureWriter, STACK_DIMENSION};

    /// A sink as the Lambda builds it (with the stack's dimension), and the lines one invocation writes to it.
    fn flushed(m: InvocationMetrics) -> Vec<Value> {
        let cap = CaptureWriter::default();
        let sink = MetricsSink::to_writer("T", cap.clone()).with_dimension(STACK_DIMENSION, "tb-test");
        m.flush(&sink, "r-1");
        let text = cap.contents();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn names_and_units(line: &Value) -> Vec<(String, String)> {
        let defs = line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        defs.iter().map(|d| (d["Name"].as_str().unwrap().to_owned(), d["Unit"].as_str().unwrap().to_owned())).collect()
    }

    #[test]
    fn denial_writes_a_reason_line() {
        let lines = flushed(InvocationMetrics { denial_reason: Some("invalid_scope"), ..Default::default() });
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["Denials"], 1.0);
        assert_eq!(lines[0]["Grants"], 0.0);
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Service", "Stack"]]));
        assert_eq!(lines[1]["Reason"], "invalid_scope");
        assert_eq!(lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Reason", "Service", "Stack"]]));
        assert!(lines.iter().all(|l| l["Stack"] == "tb-test" && l["Service"] == "broker"), "{lines:?}");
    }

    #[test]
    fn a_forged_context_is_counted_in_total_and_by_mac_reason() {
        let lines = flushed(InvocationMetrics {
            denial_reason: Some("forged_authorizer_context"),
            forged_context: Some("mismatch"),
            ..Default::default()
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0][names::FORGED_CONTEXT], 1.0);
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Service", "Stack"]]));
        assert_eq!(lines[1]["Reason"], "forged_authorizer_context");
        assert!(lines[1].get(names::FORGED_CONTEXT).is_none(), "the denial line carries Denials only");
        assert_eq!(lines[2]["Reason"], "mismatch");
        assert_eq!(lines[2][names::FORGED_CONTEXT], 1.0);
        assert_eq!(names_and_units(&lines[2]), [("ForgedAuthorizerContext".to_owned(), "Count".to_owned())]);
        assert_eq!(lines[2]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Reason", "Service", "Stack"]]));
        assert!(lines.iter().all(|l| l["Stack"] == "tb-test" && l["Service"] == "broker"), "{lines:?}");
        let granted = flushed(InvocationMetrics { granted: true, ..Default::default() });
        assert_eq!(granted.len(), 1);
        assert!(granted[0].get(names::FORGED_CONTEXT).is_none());
        assert!(names::ALL.contains(&names::FORGED_CONTEXT) && names::ALL.contains(&names::CONTEXT_KEYS_UNAVAILABLE));
    }

    #[test]
    fn an_open_breaker_is_counted_on_the_first_line_only_when_it_refused() {
        let lines = flushed(InvocationMetrics {
            denial_reason: Some("upstream_unavailable"),
            upstream_errors: 1,
            breaker_open: true,
            ..Default::default()
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0][names::BREAKER_OPEN], 1.0);
        assert!(names_and_units(&lines[0]).contains(&("BreakerOpen".to_owned(), "Count".to_owned())));
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Service", "Stack"]]));
        assert!(lines[1].get(names::BREAKER_OPEN).is_none(), "the reason line carries Denials only");
        let closed = flushed(InvocationMetrics { granted: true, ..Default::default() });
        assert!(closed[0].get(names::BREAKER_OPEN).is_none(), "{}", closed[0]);
        assert!(names::ALL.contains(&names::BREAKER_OPEN));
    }
}
