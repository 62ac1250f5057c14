//! The trigger function's configuration, read once at cold start through [`tb_shared::env`] (the rules all functions
//! share: empty means unset, whole numbers in a range, errors name the variable and never the value).
//!
//! | variable | required | default | meaning |
//! |---|---|---|---|
//! | `CLAIM_PREFIX` | no | `tb:` | prefix of the claim names written into access tokens ([`ClaimPrefix`] rules) |
//! | `CONTEXT_KEY_PARAMETER` | yes, in Lambda ([`crate::Deps::from_sdk_config`]) | | SSM SecureString holding the context-MAC key set (the one the broker signs its client metadata with) |
//! | `CONTEXT_KEYS_TTL_SECONDS` | no | 300 | how long the key set is used before SSM is asked again (10..3600) |
//! | `CONTEXT_KEYS_MAX_STALE_SECONDS` | no | 3600 | how long past the TTL the key set still serves while SSM fails (0..86400); after that every client-credentials token is refused |
//! | `AWS_OPERATION_TIMEOUT_MS` | no | 1000 | budget of one SSM read, retries included (100..4000): Cognito gives a trigger 5 s in all |
//! | `CALLER_HASH_KEY` | no | | when set, caller ids in the decision log are a keyed hash, as in the broker's logs (≥ 16 bytes) |
//! | `METRICS_NAMESPACE` | no | `TokenBroker` | CloudWatch namespace of the EMF metrics |
//! | `STACK_NAME` | no | `token-broker` | value of the `Stack` dimension on every EMF line |
//! | `LOG_LEVEL` | no | `info` | read by `tb_shared::telemetry::init_lambda_logging` |

use std::time::Duration;

use secrecy::SecretString;
use tb_shared::context::KeyRingConfig;
use tb_shared::env::{ConfigError, Env};

use crate::prefix::ClaimPrefix;

/// The variable naming the SSM parameter of the context-MAC key set (shared with the other functions).
pub(crate) const CONTEXT_KEY_PARAMETER: &str = "CONTEXT_KEY_PARAMETER";
/// The variable holding the claim prefix.
pub const CLAIM_PREFIX: &str = "CLAIM_PREFIX";

/// Typed configuration. `Debug` hides the hash key (it is a [`SecretString`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// Prefix of the claims written into tokens.
    pub claim_prefix: ClaimPrefix,
    /// SSM parameter of the context-MAC key set; required where the SSM source is built.
    pub context_key_parameter: Option<String>,
    /// How the key set is kept fresh.
    pub context_keys: KeyRingConfig,
    /// Budget of one SSM read.
    pub aws_operation_timeout: Duration,
    /// Key for hashed caller ids in logs.
    pub caller_hash_key: Option<SecretString>,
    /// CloudWatch namespace of the metrics.
    pub metrics_namespace: String,
    /// The `Stack` dimension of every metric line.
    pub stack_name: String,
}

impl Config {
    /// From the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from(&Env::process())
    }

    /// From any variable source (the tests' stand-in for the template's `Environment` block).
    pub fn from(env: &Env<'_>) -> Result<Config, ConfigError> {
        let claim_prefix = match env.optional(CLAIM_PREFIX) {
            None => ClaimPrefix::default(),
            Some(p) => ClaimPrefix::parse(&p).map_err(|e| ConfigError::new(CLAIM_PREFIX, e.to_string()))?,
        };
        Ok(Config {
            claim_prefix,
            context_key_parameter: env.context_key_parameter()?,
            context_keys: env.context_key_ring()?,
            aws_operation_timeout: env.millis("AWS_OPERATION_TIMEOUT_MS", 1000, 100..=4000)?,
            caller_hash_key: env.caller_hash_key()?,
            metrics_namespace: env.metrics_namespace()?,
            stack_name: env.stack_name()?,
        })
    }

    /// `CONTEXT_KEY_PARAMETER`, which the Lambda cannot start without.
    pub fn required_context_key_parameter(&self) -> Result<&str, ConfigError> {
        self.context_key_parameter.as_deref().ok_or_else(|| {
            ConfigError::new(
                CONTEXT_KEY_PARAMETER,
                "is required: the SSM SecureString of the key set the broker signs its client metadata with",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn defaults() {
        let c = Config::from(&Env::from_pairs::<&str, &str>([])).unwrap();
        assert_eq!(c.claim_prefix, ClaimPrefix::default());
        assert_eq!(c.context_key_parameter, None);
        assert_eq!(c.required_context_key_parameter().unwrap_err().var, CONTEXT_KEY_PARAMETER);
        assert_eq!(
            (c.context_keys.ttl, c.context_keys.max_stale),
            (Duration::from_secs(300), Duration::from_secs(3600))
        );
        assert_eq!(c.aws_operation_timeout, Duration::from_millis(1000));
        assert!(c.caller_hash_key.is_none());
        assert_eq!((c.metrics_namespace.as_str(), c.stack_name.as_str()), ("TokenBroker", "token-broker"));
    }

    #[test]
    fn values_are_read() {
        let c = Config::from(&Env::from_pairs([
            (CLAIM_PREFIX, " acme_ "),
            (CONTEXT_KEY_PARAMETER, "/tb/prod/context-keys"),
            ("CONTEXT_KEYS_TTL_SECONDS", "60"),
            ("AWS_OPERATION_TIMEOUT_MS", "2500"),
            ("CALLER_HASH_KEY", "sixteen-bytes!!!"),
            ("STACK_NAME", "tb-prod"),
        ]))
        .unwrap();
        assert_eq!(c.claim_prefix.as_str(), "acme_");
        assert_eq!(c.required_context_key_parameter().unwrap(), "/tb/prod/context-keys");
        assert_eq!(c.context_keys.ttl, Duration::from_secs(60));
        assert_eq!(c.aws_operation_timeout, Duration::from_millis(2500));
        assert_eq!(c.caller_hash_key.unwrap().expose_secret(), "sixteen-bytes!!!");
        assert_eq!(c.stack_name, "tb-prod");
    }

    #[test]
    fn bad_values_name_the_variable_not_the_value() {
        for (var, value) in [
            (CLAIM_PREFIX, "cognito:"),
            (CLAIM_PREFIX, "no-separator"),
            (CONTEXT_KEY_PARAMETER, "has space"),
            ("AWS_OPERATION_TIMEOUT_MS", "5000"),
            ("CONTEXT_KEYS_TTL_SECONDS", "5"),
            ("CALLER_HASH_KEY", "short-key-value"),
        ] {
            let e = Config::from(&Env::from_pairs([(var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{value}");
            assert!(!e.to_string().contains(value), "{e}");
        }
    }
}
