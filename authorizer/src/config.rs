//! The authorizer's configuration, read once at cold start through [`tb_shared::env`] (the rules both functions
//! share: empty means unset, whole numbers in a range, secrets with a floor). A bad value stops the function at init
//! with a message naming the variable, rather than failing (or worse, passing) requests later.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `POLICY_FILE` | path of the policy document bundled with the function | required |
//! | `TRUSTSTORE_URI` | `s3://bucket/key` or a file path of the CA bundle (PEM); required when the policy has certificate callers | none |
//! | `TRUSTSTORE_VERSION` | S3 version id to pin (the one the custom domain uses) | latest |
//! | `CRL_URI` | `s3://bucket/key` or a file path of a CRL bundle (PEM or DER) | none: no revocation checking |
//! | `TRUST_REFRESH_SECONDS` | how often the truststore and CRL ETags are checked (0..3600) | 60 |
//! | `DECISION_CACHE_TTL_SECONDS` | longest reuse of a decision (0..3600) | 60 |
//! | `DECISION_CACHE_MAX_ENTRIES` | size bound of the decision cache (1..1000000) | 10000 |
//! | `JWKS_REFETCH_COOLDOWN_SECONDS` | least time between two JWKS fetches caused by unknown `kid`s (0..3600) | 60 |
//! | `JWKS_MAX_AGE_SECONDS` | age at which a partner's keys are re-fetched, so a withdrawn key stops verifying (60..86400) | 3600 |
//! | `JWKS_MAX_STALE_SECONDS` | how long past that age keys still verify while every refresh fails; then the partner's tokens are refused (0..86400) | 3600 |
//! | `CONTEXT_KEY_PARAMETER` | name of the SSM SecureString holding the context-MAC key set; required in Lambda (`Deps::from_config`), where the function cannot start without it | none |
//! | `CONTEXT_KEYS_TTL_SECONDS` | age at which the key set is read again (10..3600) | 300 |
//! | `CONTEXT_KEYS_MAX_STALE_SECONDS` | how long past that age the last key set still signs while reads fail; then no Allow can be answered (0..86400) | 3600 |
//! | `CONTEXT_MAC_TTL_SECONDS` | lifetime of the MAC on an Allow's context; at least API Gateway's authorizer cache TTL (1..3600) | 300 |
//! | `CALLER_HASH_KEY` | key for hashed caller ids in logs, when the policy asks for hashing (≥ 16 bytes) | none |
//! | `METRICS_NAMESPACE` | CloudWatch namespace of EMF metrics | `TokenBroker` |
//! | `STACK_NAME` | value of the `Stack` dimension on every EMF line, so two stacks in one account never share a series (≤ 128 printable ASCII characters; the template passes the stack's name) | `token-broker` |
//! | `LOG_LEVEL` | `error`, `warn`, `info`, `debug` (`trace` is lowered to `debug`) | `info` |

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use tb_shared::context::KeyRingConfig;
use tb_shared::env::{ConfigError, Env};

use crate::jwt::JwtConfig;

/// Where an object (truststore, CRLs) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectLocation {
    /// An S3 object, optionally pinned to a version.
    S3 {
        /// `s3://bucket/key`.
        uri: String,
        /// The S3 version id, or the latest version when `None`.
        version: Option<String>,
    },
    /// A file (the local stack, or a file bundled with the function).
    File(PathBuf),
}

/// The authorizer's configuration. `Debug` hides the hash key (it is a [`SecretString`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// The policy document.
    pub policy_file: PathBuf,
    /// The CA bundle; `None` when the deployment has no certificate callers.
    pub truststore: Option<ObjectLocation>,
    /// The CRL bundle; `None` turns revocation checking off.
    pub crls: Option<ObjectLocation>,
    /// How often trust material is re-read (by ETag).
    pub trust_refresh: Duration,
    /// Longest reuse of a decision.
    pub decision_cache_ttl: Duration,
    /// Size bound of the decision cache.
    pub decision_cache_max_entries: u64,
    /// Least time between two JWKS fetches caused by unknown `kid`s.
    pub jwks_refetch_cooldown: Duration,
    /// Age at which a partner's keys are re-fetched.
    pub jwks_max_age: Duration,
    /// How long past `jwks_max_age` keys whose refresh keeps failing still verify.
    pub jwks_max_stale: Duration,
    /// The SSM SecureString holding the context-MAC key set (`None` in builds that pass their own key source).
    pub context_key_parameter: Option<String>,
    /// How the key set is kept fresh in a warm instance.
    pub context_keys: KeyRingConfig,
    /// Lifetime of the MAC on an Allow's context. The gateway replays a cached context for up to its authorizer
    /// cache TTL, so this must be at least that long or a cached Allow would reach the broker expired.
    pub context_mac_ttl: Duration,
    /// Key for hashed caller ids in logs.
    pub caller_hash_key: Option<SecretString>,
    /// CloudWatch namespace of the metrics.
    pub metrics_namespace: String,
    /// The `Stack` dimension of every metric line.
    pub stack_name: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads the configuration from any [`Env`] (the local stack and tests pass a map).
    pub fn read(env: &Env<'_>) -> Result<Config, ConfigError> {
        let location = |var: &'static str, version_var: Option<&'static str>| -> Result<_, ConfigError> {
            let Some(v) = env.optional(var) else { return Ok(None) };
            if let Some(rest) = v.strip_prefix("s3://") {
                if !rest.contains('/') || rest.starts_with('/') || rest.ends_with('/') {
                    return Err(ConfigError::new(var, "expected s3://bucket/key"));
                }
                let version = version_var.and_then(|vv| env.optional(vv));
                Ok(Some(ObjectLocation::S3 { uri: v, version }))
            } else if v.contains("://") {
                Err(ConfigError::new(var, "only s3:// URIs or file paths are supported"))
            } else {
                Ok(Some(ObjectLocation::File(PathBuf::from(v))))
            }
        };
        Ok(Config {
            policy_file: env.policy_file()?,
            truststore: location("TRUSTSTORE_URI", Some("TRUSTSTORE_VERSION"))?,
            crls: location("CRL_URI", None)?,
            trust_refresh: env.seconds("TRUST_REFRESH_SECONDS", 60, 0..=3600)?,
            decision_cache_ttl: env.seconds("DECISION_CACHE_TTL_SECONDS", 60, 0..=3600)?,
            decision_cache_max_entries: env.number("DECISION_CACHE_MAX_ENTRIES", 10_000, 1..=1_000_000)?,
            jwks_refetch_cooldown: env.seconds("JWKS_REFETCH_COOLDOWN_SECONDS", 60, 0..=3600)?,
            // At least a minute: every warm instance re-fetches each partner's JWKS once per this period, and a
            // shorter one would turn the fleet into load on the partner's endpoint.
            jwks_max_age: env.seconds("JWKS_MAX_AGE_SECONDS", 3600, 60..=86_400)?,
            // The default rides out a partner's JWKS outage of up to an hour (beyond the hour of normal key age)
            // and caps how long a key the partner withdrew can keep verifying while its endpoint cannot be
            // reached (by accident or by an attacker's doing) at two hours in all. 0 refuses as soon as a due
            // refresh has failed.
            jwks_max_stale: env.seconds("JWKS_MAX_STALE_SECONDS", 3600, 0..=86_400)?,
            context_key_parameter: env.context_key_parameter()?,
            context_keys: env.context_key_ring()?,
            context_mac_ttl: env.seconds("CONTEXT_MAC_TTL_SECONDS", 300, 1..=3600)?,
            caller_hash_key: env.caller_hash_key()?,
            metrics_namespace: env.metrics_namespace()?,
            stack_name: env.stack_name()?,
        })
    }
}

impl Config {
    /// `CONTEXT_KEY_PARAMETER`, required where the function reads its keys from SSM.
    pub fn required_context_key_parameter(&self) -> Result<&str, ConfigError> {
        self.context_key_parameter.as_deref().ok_or_else(|| {
            ConfigError::new("CONTEXT_KEY_PARAMETER", "is required: without the context key no Allow can be signed")
        })
    }

    /// The JWT verifier's settings from this configuration (the token size cap is not configurable).
    pub fn jwt_config(&self) -> JwtConfig {
        JwtConfig {
            unknown_kid_cooldown: self.jwks_refetch_cooldown,
            jwks_max_age: self.jwks_max_age,
            jwks_max_stale: self.jwks_max_stale,
            ..JwtConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut all = vec![("POLICY_FILE", "/p.yaml")];
        all.extend_from_slice(pairs);
        Config::read(&Env::from_pairs(all.iter().copied()))
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
        assert_eq!(Config::read(&Env::from_pairs::<&str, &str>([])).unwrap_err().var, "POLICY_FILE");
        assert_eq!(cfg(&[("STACK_NAME", "prod\u{1b}[31m")]).unwrap_err().var, "STACK_NAME");
    }

    #[test]
    fn stack_name_defaults_and_is_read() {
        assert_eq!(cfg(&[]).unwrap().stack_name, tb_shared::env::DEFAULT_STACK_NAME);
        assert_eq!(cfg(&[("STACK_NAME", "tb-prod")]).unwrap().stack_name, "tb-prod");
    }

    #[test]
    fn jwks_ages_have_defaults_and_ranges() {
        let c = cfg(&[]).unwrap();
        assert_eq!((c.jwks_max_age, c.jwks_max_stale), (Duration::from_secs(3600), Duration::from_secs(3600)));
        let j = c.jwt_config();
        assert_eq!((j.jwks_max_age, j.jwks_max_stale), (c.jwks_max_age, c.jwks_max_stale));
        assert_eq!(j.unknown_kid_cooldown, Duration::from_secs(60));
        assert_eq!(j.max_token_bytes, JwtConfig::default().max_token_bytes);

        let c = cfg(&[
            ("JWKS_MAX_AGE_SECONDS", "60"),
            ("JWKS_MAX_STALE_SECONDS", "0"),
            ("JWKS_REFETCH_COOLDOWN_SECONDS", "5"),
        ])
        .unwrap();
        let j = c.jwt_config();
        assert_eq!((j.jwks_max_age, j.jwks_max_stale), (Duration::from_secs(60), Duration::ZERO));
        assert_eq!(j.unknown_kid_cooldown, Duration::from_secs(5));
        assert_eq!(cfg(&[("JWKS_MAX_AGE_SECONDS", "86400"), ("JWKS_MAX_STALE_SECONDS", "86400")]).map(|_| ()), Ok(()));

        for (var, value) in [
            ("JWKS_MAX_AGE_SECONDS", "59"),
            ("JWKS_MAX_AGE_SECONDS", "86401"),
            ("JWKS_MAX_AGE_SECONDS", "1h"),
            ("JWKS_MAX_STALE_SECONDS", "86401"),
            ("JWKS_MAX_STALE_SECONDS", "-1"),
        ] {
            let e = cfg(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{value}");
            assert!(!e.to_string().contains(value), "the error names the rule, not the value");
        }
    }

    #[test]
    fn context_key_settings_have_defaults_and_ranges() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.context_key_parameter, None);
        assert_eq!(c.required_context_key_parameter().unwrap_err().var, "CONTEXT_KEY_PARAMETER");
        assert_eq!(
            (c.context_keys.ttl, c.context_keys.max_stale),
            (Duration::from_secs(300), Duration::from_secs(3600))
        );
        assert_eq!(c.context_mac_ttl, Duration::from_secs(300));

        let c = cfg(&[
            ("CONTEXT_KEY_PARAMETER", "/token-broker/prod/context-keys"),
            ("CONTEXT_KEYS_TTL_SECONDS", "10"),
            ("CONTEXT_KEYS_MAX_STALE_SECONDS", "0"),
            ("CONTEXT_MAC_TTL_SECONDS", "3600"),
        ])
        .unwrap();
        assert_eq!(c.required_context_key_parameter().unwrap(), "/token-broker/prod/context-keys");
        assert_eq!((c.context_keys.ttl, c.context_keys.max_stale), (Duration::from_secs(10), Duration::ZERO));
        assert_eq!(c.context_mac_ttl, Duration::from_secs(3600));

        for (var, value) in [
            ("CONTEXT_KEYS_TTL_SECONDS", "9"),
            ("CONTEXT_KEYS_TTL_SECONDS", "3601"),
            ("CONTEXT_KEYS_MAX_STALE_SECONDS", "86401"),
            ("CONTEXT_MAC_TTL_SECONDS", "0"),
            ("CONTEXT_MAC_TTL_SECONDS", "3601"),
            ("CONTEXT_KEY_PARAMETER", "/token broker/keys"),
            ("CONTEXT_KEY_PARAMETER", "/token-broker/keys?version=2"),
        ] {
            assert_eq!(cfg(&[(var, value)]).unwrap_err().var, var, "{value}");
        }
    }

    #[test]
    fn caller_hash_key_shorter_than_the_floor_is_refused() {
        let fifteen = "k".repeat(tb_shared::env::MIN_HASH_KEY_BYTES - 1);
        let sixteen = "k".repeat(tb_shared::env::MIN_HASH_KEY_BYTES);
        let mut pairs = vec![("POLICY_FILE".to_owned(), "/p.yaml".to_owned())];
        pairs.push(("CALLER_HASH_KEY".to_owned(), fifteen.clone()));
        let e = Config::read(&Env::from_pairs(pairs.clone())).unwrap_err();
        assert_eq!(e.var, "CALLER_HASH_KEY");
        assert!(!e.to_string().contains(&fifteen), "the error never shows the key");
        pairs[1].1 = sixteen;
        assert!(Config::read(&Env::from_pairs(pairs)).unwrap().caller_hash_key.is_some());
    }
}
