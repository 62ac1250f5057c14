//! Typed configuration, read once at cold start from the environment. A bad value stops the function at init
//! with a message naming the variable, rather than failing (or worse, passing) requests later.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `POLICY_FILE` | path of the policy document bundled with the function | `policy.yaml` next to the binary's working directory |
//! | `TRUSTSTORE_URI` | `s3://bucket/key` or a file path of the CA bundle (PEM); required when the policy has certificate callers | none |
//! | `TRUSTSTORE_VERSION` | S3 version id to pin (the one the custom domain uses) | latest |
//! | `CRL_URI` | `s3://bucket/key` or a file path of a CRL bundle (PEM or DER) | none: no revocation checking |
//! | `TRUST_REFRESH_SECONDS` | how often the truststore and CRL ETags are checked | 60 |
//! | `DECISION_CACHE_TTL_SECONDS` | longest reuse of a decision | 60 |
//! | `DECISION_CACHE_MAX_ENTRIES` | size bound of the decision cache | 10000 |
//! | `JWKS_REFETCH_COOLDOWN_SECONDS` | least time between two JWKS fetches caused by unknown `kid`s | 60 |
//! | `CALLER_HASH_KEY` | key for hashed caller ids in logs, when the policy asks for hashing | none |
//! | `METRICS_NAMESPACE` | CloudWatch namespace of EMF metrics | `TokenBroker` |
//! | `LOG_LEVEL` | `error`, `warn`, `info`, `debug` (`trace` is lowered to `debug`) | `info` |

use std::path::PathBuf;
use std::time::Duration;

/// Where an object (truststore, CRLs) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectLocation {
    S3 { uri: String, version: Option<String> },
    File(PathBuf),
}

/// The authorizer's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy_file: PathBuf,
    pub truststore: Option<ObjectLocation>,
    pub crls: Option<ObjectLocation>,
    pub trust_refresh: Duration,
    pub decision_cache_ttl: Duration,
    pub decision_cache_max_entries: u64,
    pub jwks_refetch_cooldown: Duration,
    pub caller_hash_key: Option<Vec<u8>>,
    pub metrics_namespace: String,
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let secs = |var: &'static str, default: u64, max: u64| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n <= max => Ok(Duration::from_secs(n)),
                    _ => Err(ConfigError { var, reason: format!("expected whole seconds 0..={max}") }),
                },
            }
        };
        let location =
            |var: &'static str, version_var: Option<&'static str>| -> Result<Option<ObjectLocation>, ConfigError> {
                let Some(v) = get(var).filter(|v| !v.trim().is_empty()) else { return Ok(None) };
                let v = v.trim().to_owned();
                if let Some(rest) = v.strip_prefix("s3://") {
                    if !rest.contains('/') || rest.starts_with('/') || rest.ends_with('/') {
                        return Err(ConfigError { var, reason: "expected s3://bucket/key".into() });
                    }
                    let version = version_var.and_then(&get).filter(|s| !s.is_empty());
                    Ok(Some(ObjectLocation::S3 { uri: v, version }))
                } else if v.contains("://") {
                    Err(ConfigError { var, reason: "only s3:// URIs or file paths are supported".into() })
                } else {
                    Ok(Some(ObjectLocation::File(PathBuf::from(v))))
                }
            };
        let max_entries = match get("DECISION_CACHE_MAX_ENTRIES") {
            None => 10_000,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or(ConfigError { var: "DECISION_CACHE_MAX_ENTRIES", reason: "expected 1..=1000000".into() })?,
        };
        Ok(Config {
            policy_file: PathBuf::from(get("POLICY_FILE").unwrap_or_else(|| "policy.yaml".into())),
            truststore: location("TRUSTSTORE_URI", Some("TRUSTSTORE_VERSION"))?,
            crls: location("CRL_URI", None)?,
            trust_refresh: secs("TRUST_REFRESH_SECONDS", 60, 3600)?,
            decision_cache_ttl: secs("DECISION_CACHE_TTL_SECONDS", 60, 3600)?,
            decision_cache_max_entries: max_entries,
            jwks_refetch_cooldown: secs("JWKS_REFETCH_COOLDOWN_SECONDS", 60, 3600)?,
            caller_hash_key: get("CALLER_HASH_KEY").filter(|k| !k.is_empty()).map(String::into_bytes),
            metrics_namespace: get("METRICS_NAMESPACE").unwrap_or_else(|| "TokenBroker".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_locations() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.trust_refresh, Duration::from_secs(60));
        assert!(c.truststore.is_none());
        let c = cfg(&[
            ("TRUSTSTORE_URI", "s3://b/trust/ca.pem"),
            ("TRUSTSTORE_VERSION", "v1"),
            ("CRL_URI", "/tmp/crl.pem"),
        ])
        .unwrap();
        assert_eq!(
            c.truststore,
            Some(ObjectLocation::S3 { uri: "s3://b/trust/ca.pem".into(), version: Some("v1".into()) })
        );
        assert_eq!(c.crls, Some(ObjectLocation::File("/tmp/crl.pem".into())));
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert_eq!(cfg(&[("TRUST_REFRESH_SECONDS", "soon")]).unwrap_err().var, "TRUST_REFRESH_SECONDS");
        assert_eq!(cfg(&[("TRUSTSTORE_URI", "s3://bucket-only")]).unwrap_err().var, "TRUSTSTORE_URI");
        assert_eq!(cfg(&[("CRL_URI", "https://x/crl")]).unwrap_err().var, "CRL_URI");
        assert_eq!(cfg(&[("DECISION_CACHE_MAX_ENTRIES", "0")]).unwrap_err().var, "DECISION_CACHE_MAX_ENTRIES");
    }
}
