//! The broker function's configuration, read once at cold start through [`tb_shared::env`] (the rules both
//! functions share: empty means unset, whole numbers in a range, secrets with a floor).
//!
//! | variable | required | default | meaning |
//! |---|---|---|---|
//! | `POLICY_FILE` | yes | | path of the policy document bundled with the deployment |
//! | `QUOTA_TABLE` | yes | | DynamoDB table holding the quota counters |
//! | `SSM_PREFIX` | yes | | SSM path under which each app client's SecureString lives (`{prefix}/{cognito_client}`) |
//! | `CREDENTIALS_TTL_SECONDS` | no | 300 | how long credentials are served from memory before SSM is asked again (1..86400) |
//! | `CREDENTIALS_MAX_STALE_SECONDS` | no | 3600 | how long past the TTL cached credentials still serve while SSM fails (0..86400) |
//! | `AWS_OPERATION_TIMEOUT_MS` | no | 1500 | budget of one DynamoDB or SSM operation, retries included (100..30000) |
//! | `UPSTREAM_CONNECT_TIMEOUT_MS` | no | 500 | TCP + TLS connect timeout towards Cognito (50..30000) |
//! | `UPSTREAM_TIMEOUT_MS` | no | 3000 | one attempt's total timeout; always cut to the Lambda's remaining time (100..60000) |
//! | `BREAKER_FAILURE_THRESHOLD` | no | 5 | consecutive failed attempts that open the circuit breaker (1..1000) |
//! | `BREAKER_OPEN_SECONDS` | no | 30 | how long the breaker fails fast before one probe is let through (1..3600) |
//! | `METRICS_NAMESPACE` | no | `TokenBroker` | CloudWatch namespace of the EMF metrics |
//! | `STACK_NAME` | no | `token-broker` | value of the `Stack` dimension on every EMF line, so two stacks in one account never share a series (≤ 128 printable ASCII characters; the template passes the stack's name) |
//! | `CALLER_HASH_KEY` | when the policy sets `hash_caller_ids` | | HMAC key for caller ids in logs (≥ 16 bytes) |
//! | `CONTEXT_KEY_PARAMETER` | yes, in Lambda ([`crate::Deps::from_aws`]) | | SSM SecureString holding the context-MAC key set the authorizer signs with |
//! | `CONTEXT_KEYS_TTL_SECONDS` | no | 300 | how long the key set is used before SSM is asked again (10..3600) |
//! | `CONTEXT_KEYS_MAX_STALE_SECONDS` | no | 3600 | how long past the TTL the key set still serves while SSM fails (0..86400); after that every request is a 503 |
//! | `TOKEN_CACHE_TABLE` | for callers with `fleet_token_reuse` | | DynamoDB table of the fleet token cache; unset, the cache is off and such callers refuse the cold start |
//! | `TOKEN_CACHE_KMS_KEY` | with `TOKEN_CACHE_TABLE` | | KMS key (id, ARN or alias) of the fleet cache's data keys |
//! | `TOKEN_CACHE_TIMEOUT_MS` | no | 400 | budget of one fleet-cache table or KMS operation, retries included (50..5000) |
//! | `TOKEN_CACHE_LEASE_MS` | no | 4000 | how long one instance holds a key while it fetches (100..30000) |
//! | `TOKEN_CACHE_WAIT_MS` | no | 4500 | how long other instances wait for that fetch before fetching themselves (0..10000); a lookup also ends where the grant still has `UPSTREAM_TIMEOUT_MS` + `AWS_OPERATION_TIMEOUT_MS` + 0.5 s before the Lambda deadline |
//! | `TOKEN_CACHE_RETRY_SECONDS` | no | 30 | how long the fleet cache is skipped after a table or KMS failure (1..600) |
//! | `LOG_LEVEL` | no | `info` | read by `tb_shared::telemetry::init_lambda_logging`; `trace` is lowered to `debug` |
//!
//! Anything missing or unparsable stops the cold start with a message naming the variable, so a bad deployment
//! fails its first invocation loudly instead of serving with a surprise default.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use tb_shared::context::KeyRingConfig;
use tb_shared::env::{ConfigError, Env};

use crate::credentials::CacheConfig;
use crate::fleet::FleetSettings;
use crate::upstream::UpstreamSettings;

/// The variable naming the SSM parameter of the context-MAC key set (shared with the authorizer).
pub(crate) const CONTEXT_KEY_PARAMETER: &str = "CONTEXT_KEY_PARAMETER";

/// Typed configuration. `Debug` hides the hash key (it is a [`SecretString`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// The policy document.
    pub policy_file: PathBuf,
    /// The DynamoDB quota table.
    pub quota_table: String,
    /// SSM path of the app clients' credentials, without a trailing `/`.
    pub ssm_prefix: String,
    /// The credential cache: TTL and bounded staleness while SSM is down.
    pub credentials_cache: CacheConfig,
    /// Budget of one DynamoDB or SSM operation.
    pub aws_operation_timeout: Duration,
    /// Timeouts and circuit breaker of the Cognito client.
    pub upstream: UpstreamSettings,
    /// CloudWatch namespace of the metrics.
    pub metrics_namespace: String,
    /// The `Stack` dimension of every metric line.
    pub stack_name: String,
    /// Key for hashed caller ids in logs.
    pub caller_hash_key: Option<SecretString>,
    /// SSM parameter of the context-MAC key set. Optional here because in-process builds hand a key source in
    /// [`crate::Deps`]; [`crate::Deps::from_aws`], which the Lambda uses, refuses to start without it.
    pub context_key_parameter: Option<String>,
    /// How the context-MAC key set is refreshed in a warm instance.
    pub context_keys: KeyRingConfig,
    /// The fleet token cache, when `TOKEN_CACHE_TABLE` is set.
    pub token_cache: Option<FleetSettings>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads from any [`Env`] (the local stack and tests pass a map).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        // Defaults come from the adapters' own `Default`s, so a value is written once.
        let (cache, upstream) = (CacheConfig::default(), UpstreamSettings::default());
        let ms = |d: Duration| d.as_millis() as u64;
        let connect = env.millis("UPSTREAM_CONNECT_TIMEOUT_MS", ms(upstream.connect_timeout), 50..=30_000)?;
        let attempt = env.millis("UPSTREAM_TIMEOUT_MS", ms(upstream.attempt_timeout), 100..=60_000)?;
        if connect > attempt {
            return Err(ConfigError::new("UPSTREAM_CONNECT_TIMEOUT_MS", "must not exceed UPSTREAM_TIMEOUT_MS"));
        }
        let mut config = Config {
            policy_file: env.policy_file()?,
            quota_table: env.required("QUOTA_TABLE")?,
            ssm_prefix: env.required("SSM_PREFIX")?.trim_end_matches('/').to_owned(),
            credentials_cache: CacheConfig {
                ttl: env.seconds("CREDENTIALS_TTL_SECONDS", cache.ttl.as_secs(), 1..=86_400)?,
                max_stale: env.seconds("CREDENTIALS_MAX_STALE_SECONDS", cache.max_stale.as_secs(), 0..=86_400)?,
                ..cache
            },
            aws_operation_timeout: env.millis(
                "AWS_OPERATION_TIMEOUT_MS",
                ms(tb_shared::aws::DEFAULT_OPERATION_TIMEOUT),
                100..=30_000,
            )?,
            upstream: UpstreamSettings {
                connect_timeout: connect,
                attempt_timeout: attempt,
                breaker_failure_threshold: env.number(
                    "BREAKER_FAILURE_THRESHOLD",
                    u64::from(upstream.breaker_failure_threshold),
                    1..=1000,
                )? as u32,
                breaker_open_for: env.seconds("BREAKER_OPEN_SECONDS", upstream.breaker_open_for.as_secs(), 1..=3600)?,
            },
            metrics_namespace: env.metrics_namespace()?,
            stack_name: env.stack_name()?,
            caller_hash_key: env.caller_hash_key()?,
            context_key_parameter: env.context_key_parameter()?,
            context_keys: env.context_key_ring()?,
            token_cache: token_cache(env)?,
        };
        // A fleet-cache lookup leaves the grant the time it needs: the quota charge, one Cognito attempt and the
        // answer (the retry, when there is one, is cut to what is left, as without the cache).
        let fetch = config.upstream.attempt_timeout + config.aws_operation_timeout + Duration::from_millis(500);
        if let Some(t) = config.token_cache.as_mut() {
            t.fetch_reserve = fetch;
        }
        Ok(config)
    }
}

/// The fleet cache's settings: all or nothing, so a table without a key (or the reverse) is a clear error.
fn token_cache(env: &Env<'_>) -> Result<Option<FleetSettings>, ConfigError> {
    let (table, key) = (env.optional("TOKEN_CACHE_TABLE"), env.optional("TOKEN_CACHE_KMS_KEY"));
    let (table, key) = match (table, key) {
        (None, None) => return Ok(None),
        (Some(t), Some(k)) => (t, k),
        (Some(_), None) => return Err(ConfigError::new("TOKEN_CACHE_KMS_KEY", "is required with TOKEN_CACHE_TABLE")),
        (None, Some(_)) => return Err(ConfigError::new("TOKEN_CACHE_TABLE", "is required with TOKEN_CACHE_KMS_KEY")),
    };
    let d = FleetSettings::new(table, key);
    let ms = |d: Duration| d.as_millis() as u64;
    Ok(Some(FleetSettings {
        timeout: env.millis("TOKEN_CACHE_TIMEOUT_MS", ms(d.timeout), 50..=5_000)?,
        lease: env.millis("TOKEN_CACHE_LEASE_MS", ms(d.lease), 100..=30_000)?,
        wait: env.millis("TOKEN_CACHE_WAIT_MS", ms(d.wait), 0..=10_000)?,
        retry_after: env.seconds("TOKEN_CACHE_RETRY_SECONDS", d.retry_after.as_secs(), 1..=600)?,
        ..d
    }))
}

#[cfg(test)]
mod fleet_tests {
    use super::*;

    #[test]
    fn the_fleet_cache_is_all_or_nothing_with_bounded_times() {
        let read = |extra: &[(&'static str, &'static str)]| {
            let mut v = vec![("POLICY_FILE", "/p.yaml"), ("QUOTA_TABLE", "q"), ("SSM_PREFIX", "/tb")];
            v.extend_from_slice(extra);
            Config::read(&Env::from_pairs(v))
        };
        assert_eq!(read(&[]).unwrap().token_cache, None);
        let c = read(&[("TOKEN_CACHE_TABLE", "tokens"), ("TOKEN_CACHE_KMS_KEY", "alias/tb")]).unwrap();
        let expected = FleetSettings {
            fetch_reserve: Duration::from_millis(3000 + 1500 + 500),
            ..FleetSettings::new("tokens", "alias/tb")
        };
        assert_eq!(c.token_cache, Some(expected));
        assert_eq!(read(&[("TOKEN_CACHE_TABLE", "tokens")]).unwrap_err().var, "TOKEN_CACHE_KMS_KEY");
        assert_eq!(read(&[("TOKEN_CACHE_KMS_KEY", "k")]).unwrap_err().var, "TOKEN_CACHE_TABLE");
        let both = [("TOKEN_CACHE_TABLE", "tokens"), ("TOKEN_CACHE_KMS_KEY", "k")];
        for (var, bad) in [
            ("TOKEN_CACHE_TIMEOUT_MS", "49"),
            ("TOKEN_CACHE_LEASE_MS", "30001"),
            ("TOKEN_CACHE_WAIT_MS", "soon"),
            ("TOKEN_CACHE_RETRY_SECONDS", "0"),
        ] {
            let mut v = both.to_vec();
            v.push((var, bad));
            assert_eq!(read(&v).unwrap_err().var, var, "{var}={bad}");
        }
        let mut v = both.to_vec();
        v.extend([("TOKEN_CACHE_LEASE_MS", "500"), ("TOKEN_CACHE_WAIT_MS", "0")]);
        let s = read(&v).unwrap().token_cache.unwrap();
        assert_eq!((s.lease, s.wait), (Duration::from_millis(500), Duration::ZERO));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        Config::read(&Env::from_pairs(pairs.iter().copied()))
    }

    const BASE: [(&str, &str); 3] = [("POLICY_FILE", "/p.yaml"), ("QUOTA_TABLE", "q"), ("SSM_PREFIX", "/tb/")];

    #[test]
    fn defaults_apply_and_required_are_named() {
        let c = with(&BASE).unwrap();
        assert_eq!(c.ssm_prefix, "/tb");
        assert_eq!(c.upstream, UpstreamSettings::default());
        assert_eq!(c.credentials_cache.max_stale, Duration::from_secs(3600));
        assert_eq!(c.credentials_cache, CacheConfig::default());
        assert_eq!(c.aws_operation_timeout, Duration::from_millis(1500));
        assert!(c.caller_hash_key.is_none());
        assert_eq!(c.stack_name, tb_shared::env::DEFAULT_STACK_NAME);
        assert_eq!(c.context_key_parameter, None, "required only where the SSM source is built");
        assert_eq!(c.context_keys.ttl, Duration::from_secs(300));
        assert_eq!(c.context_keys.max_stale, Duration::from_secs(3600));
        assert_eq!(with(&BASE[1..]).unwrap_err().var, "POLICY_FILE");
        let mut v = BASE.to_vec();
        v.push(("STACK_NAME", "tb-staging"));
        assert_eq!(with(&v).unwrap().stack_name, "tb-staging");
        v.push(("STACK_NAME", "tb\u{7}staging"));
        assert_eq!(with(&v).unwrap_err().var, "STACK_NAME");
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
        for (var, bad) in [
            ("CONTEXT_KEYS_TTL_SECONDS", "9"),
            ("CONTEXT_KEYS_TTL_SECONDS", "3601"),
            ("CONTEXT_KEYS_MAX_STALE_SECONDS", "86401"),
            ("CONTEXT_KEYS_MAX_STALE_SECONDS", "an hour"),
        ] {
            let mut v = BASE.to_vec();
            v.push((var, bad));
            assert_eq!(with(&v).unwrap_err().var, var, "{var}={bad}");
        }
        let mut v = BASE.to_vec();
        v.extend([
            ("CONTEXT_KEY_PARAMETER", " /tb/context-key "),
            ("CONTEXT_KEYS_TTL_SECONDS", "10"),
            ("CONTEXT_KEYS_MAX_STALE_SECONDS", "0"),
        ]);
        let c = with(&v).unwrap();
        assert_eq!(c.context_key_parameter.as_deref(), Some("/tb/context-key"));
        assert_eq!((c.context_keys.ttl, c.context_keys.max_stale), (Duration::from_secs(10), Duration::ZERO));
        let mut v = BASE.to_vec();
        v.push(("CALLER_HASH_KEY", "0123456789abcdef-long-enough"));
        assert!(!format!("{:?}", with(&v).unwrap()).contains("long-enough"));
    }
}
