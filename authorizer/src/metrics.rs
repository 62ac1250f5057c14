//! The authorizer's metric names and its `Service` dimension, in one place so the deployment template's alarms
//! (its `Mappings.Emf.Metric` table, checked against these names by a test) and the dashboards agree with the code.

/// The `Service` dimension value of every authorizer metric line.
pub const SERVICE: &str = "authorizer";

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
    /// The authorizer could not answer as it should (e.g. an unusable `methodArn`): alarm.
    pub const AUTHORIZER_ERRORS: &str = "AuthorizerErrors";

    /// Every name above, for the test that checks the template against the code.
    pub const ALL: &[&str] = &[ALLOWS, DENIALS, UNAUTHORIZED, DECISION_CACHE_HITS, DECISION_LATENCY, AUTHORIZER_ERRORS];
}
