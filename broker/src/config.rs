//! The broker function's configuration, read from the environment once at cold start.
//!
//! | variable | required | default | meaning |
//! |---|---|---|---|
//! | `POLICY_FILE` | yes | | path of the policy document bundled with the deployment |
//! | `QUOTA_TABLE` | yes | | DynamoDB table holding the quota counters |
//! | `SSM_PREFIX` | yes | | SSM path under which each app client's SecureString lives (`{prefix}/{cognito_client}`) |
//! | `CREDENTIALS_TTL_SECONDS` | no | 300 | how long credentials are served from memory before SSM is asked again |
//! | `CREDENTIALS_MAX_STALE_SECONDS` | no | 3600 | how long past the TTL cached credentials still serve while SSM fails |
//! | `UPSTREAM_CONNECT_TIMEOUT_MS` | no | 500 | TCP + TLS connect timeout towards Cognito |
//! | `UPSTREAM_TIMEOUT_MS` | no | 3000 | one attempt's total timeout; always cut to the Lambda's remaining time |
//! | `BREAKER_FAILURE_THRESHOLD` | no | 5 | consecutive failed attempts that open the circuit breaker |
//! | `BREAKER_OPEN_SECONDS` | no | 30 | how long the breaker fails fast before one probe is let through |
//! | `METRICS_NAMESPACE` | no | `TokenBroker` | CloudWatch namespace of the EMF metrics |
//! | `CALLER_HASH_KEY` | when the policy sets `hash_caller_ids` | | HMAC key for caller ids in logs (≥ 16 bytes) |
//! | `LOG_LEVEL` | no | `info` | read by `tb_shared::telemetry::init_lambda_logging`; `trace` is lowered to `debug` |
//!
//! Anything missing or unparsable stops the cold start with a message naming the variable, so a bad deployment
//! fails its first invocation loudly instead of serving with a surprise default.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// Shortest accepted caller-hash key: shorter keys make the hash guessable offline.
const MIN_HASH_KEY_BYTES: usize = 16;

/// Typed configuration. `Debug` hides the hash key (it is a [`SecretString`]).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub policy_file: PathBuf,
    pub quota_table: String,
    pub ssm_prefix: String,
    pub credentials_ttl: Duration,
    pub credentials_max_stale: Duration,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub breaker_failure_threshold: u32,
    pub breaker_open: Duration,
    pub metrics_namespace: String,
    pub caller_hash_key: Option<SecretString>,
}

/// A configuration problem, naming the variable. Never contains a value (one of them is a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl BrokerConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads from any lookup, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |var: &'static str| -> Result<String, ConfigError> {
            match get(var) {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
                _ => Err(ConfigError { var, reason: "is required".into() }),
            }
        };
        let number = |var: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            let Some(raw) = get(var).filter(|v| !v.trim().is_empty()) else {
                return Ok(default);
            };
            let n: u64 =
                raw.trim().parse().map_err(|_| ConfigError { var, reason: "must be a whole number".into() })?;
            if n < min || n > max {
                return Err(ConfigError { var, reason: format!("must be between {min} and {max}") });
            }
            Ok(n)
        };
        let connect_ms = number("UPSTREAM_CONNECT_TIMEOUT_MS", 500, 50, 30_000)?;
        let timeout_ms = number("UPSTREAM_TIMEOUT_MS", 3000, 100, 60_000)?;
        if connect_ms > timeout_ms {
            return Err(ConfigError {
                var: "UPSTREAM_CONNECT_TIMEOUT_MS",
                reason: "must not exceed UPSTREAM_TIMEOUT_MS".into(),
            });
        }
        let caller_hash_key = match get("CALLER_HASH_KEY").filter(|v| !v.is_empty()) {
            None => None,
            Some(k) if k.len() < MIN_HASH_KEY_BYTES => {
                return Err(ConfigError {
                    var: "CALLER_HASH_KEY",
                    reason: format!("must be at least {MIN_HASH_KEY_BYTES} bytes"),
                })
            }
            Some(k) => Some(SecretString::from(k)),
        };
        let metrics_namespace = get("METRICS_NAMESPACE")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "TokenBroker".into());
        if metrics_namespace.len() > 255 || metrics_namespace.contains(':') {
            return Err(ConfigError { var: "METRICS_NAMESPACE", reason: "is not a valid CloudWatch namespace".into() });
        }
        Ok(BrokerConfig {
            policy_file: PathBuf::from(required("POLICY_FILE")?),
            quota_table: required("QUOTA_TABLE")?,
            ssm_prefix: required("SSM_PREFIX")?.trim_end_matches('/').to_owned(),
            credentials_ttl: Duration::from_secs(number("CREDENTIALS_TTL_SECONDS", 300, 1, 86_400)?),
            credentials_max_stale: Duration::from_secs(number("CREDENTIALS_MAX_STALE_SECONDS", 3600, 0, 86_400)?),
            upstream_connect_timeout: Duration::from_millis(connect_ms),
            upstream_timeout: Duration::from_millis(timeout_ms),
            breaker_failure_threshold: number("BREAKER_FAILURE_THRESHOLD", 5, 1, 1000)? as u32,
            breaker_open: Duration::from_secs(number("BREAKER_OPEN_SECONDS", 30, 1, 3600)?),
            metrics_namespace,
            caller_hash_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BrokerConfig::from_lookup(|k| m.get(k).cloned())
    }

    const BASE: [(&str, &str); 3] = [("POLICY_FILE", "/p.yaml"), ("QUOTA_TABLE", "q"), ("SSM_PREFIX", "/tb/")];

    #[test]
    fn defaults_apply_and_required_are_named() {
        let c = with(&BASE).unwrap();
        assert_eq!(c.ssm_prefix, "/tb");
        assert_eq!(c.upstream_timeout, Duration::from_millis(3000));
        assert_eq!(c.breaker_failure_threshold, 5);
        assert!(c.caller_hash_key.is_none());
        assert_eq!(with(&BASE[1..]).unwrap_err().var, "POLICY_FILE");
    }

    #[test]
    fn bad_values_are_refused_without_echoing_them() {
        let mut v = BASE.to_vec();
        v.push(("UPSTREAM_TIMEOUT_MS", "soon"));
        assert_eq!(with(&v).unwrap_err().var, "UPSTREAM_TIMEOUT_MS");
        let mut v = BASE.to_vec();
        v.push(("CALLER_HASH_KEY", "short-secret"));
        let e = with(&v).unwrap_err();
        assert_eq!(e.var, "CALLER_HASH_KEY");
        assert!(!e.to_string().contains("short-secret"));
        let mut v = BASE.to_vec();
        v.extend([("UPSTREAM_CONNECT_TIMEOUT_MS", "5000"), ("UPSTREAM_TIMEOUT_MS", "1000")]);
        assert_eq!(with(&v).unwrap_err().var, "UPSTREAM_CONNECT_TIMEOUT_MS");
        let mut v = BASE.to_vec();
        v.push(("CALLER_HASH_KEY", "0123456789abcdef-long-enough"));
        assert!(!format!("{:?}", with(&v).unwrap()).contains("long-enough"));
    }
}
