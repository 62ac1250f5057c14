//! One reader of the functions' environment, so the authorizer and the broker apply the same rules to the same
//! variables (the deployment template passes several of them, such as `CALLER_HASH_KEY`, to both):
//!
//! - a value is trimmed; an empty value means "not set", so the default applies (a template that passes `""` for
//!   an optional setting behaves like one that leaves it out);
//! - numbers are whole, within a stated range, and the error names the range but never echoes the value;
//! - secrets are [`SecretString`]s with a minimum length;
//! - anything wrong stops the cold start with a [`ConfigError`] naming the variable.
//!
//! The source of values is injectable ([`Env::from_lookup`], [`Env::from_pairs`]): the Lambda reads the process
//! environment, the local stack and the tests hand in a map that mirrors the template's `Environment` block.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// Shortest accepted `CALLER_HASH_KEY`: shorter keys make hashed caller ids guessable offline.
pub const MIN_HASH_KEY_BYTES: usize = 16;

/// Default CloudWatch namespace of both functions' metrics.
pub const DEFAULT_METRICS_NAMESPACE: &str = "TokenBroker";

/// Default `STACK_NAME`: the value of the `Stack` metric dimension when the deployment does not say.
pub const DEFAULT_STACK_NAME: &str = "token-broker";

/// Longest accepted `STACK_NAME` (CloudFormation's own limit for a stack name).
pub const MAX_STACK_NAME_LEN: usize = 128;

/// A configuration value that cannot be used. Names the variable and the rule, never the value (one of them is a
/// key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable {var}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it, in words an operator can act on.
    pub reason: String,
}

impl ConfigError {
    /// An error about `var`.
    pub fn new(var: &'static str, reason: impl Into<String>) -> Self {
        ConfigError { var, reason: reason.into() }
    }
}

type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Where configuration values come from.
pub struct Env<'a> {
    get: Lookup<'a>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Env<'static> {
    /// The process environment (what the Lambda runtime sets from the template).
    pub fn process() -> Self {
        Env { get: Box::new(|k| std::env::var(k).ok()) }
    }

    /// A fixed set of variables (the local stack's and the tests' stand-in for the template's block).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let map: HashMap<String, String> = pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Env { get: Box::new(move |k| map.get(k).cloned()) }
    }
}

impl<'a> Env<'a> {
    /// Any lookup function.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Env { get: Box::new(get) }
    }

    /// The trimmed value of `var`, or `None` when it is unset or empty.
    pub fn optional(&self, var: &str) -> Option<String> {
        (self.get)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// The trimmed value of `var`, which must be set and non-empty.
    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.optional(var).ok_or_else(|| ConfigError::new(var, "is required"))
    }

    /// A whole number in `range`, `default` when unset.
    pub fn number(&self, var: &'static str, default: u64, range: RangeInclusive<u64>) -> Result<u64, ConfigError> {
        let Some(raw) = self.optional(var) else { return Ok(default) };
        let out_of_range =
            || ConfigError::new(var, format!("must be a whole number between {} and {}", range.start(), range.end()));
        let n: u64 = raw.parse().map_err(|_| out_of_range())?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(out_of_range())
        }
    }

    /// A duration in whole seconds (`range` in seconds).
    pub fn seconds(
        &self,
        var: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(var, default, range).map(Duration::from_secs)
    }

    /// A duration in whole milliseconds (`range` in milliseconds).
    pub fn millis(&self, var: &'static str, default: u64, range: RangeInclusive<u64>) -> Result<Duration, ConfigError> {
        self.number(var, default, range).map(Duration::from_millis)
    }

    /// A secret of at least `min_len` bytes, `None` when unset. The value is kept as given (not trimmed): whitespace
    /// can be part of a key.
    pub fn secret(&self, var: &'static str, min_len: usize) -> Result<Option<SecretString>, ConfigError> {
        match (self.get)(var).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) if v.len() < min_len => Err(ConfigError::new(var, format!("must be at least {min_len} bytes"))),
            Some(v) => Ok(Some(SecretString::from(v))),
        }
    }

    /// `POLICY_FILE`: the policy document bundled with the deployment. Required: a function that silently fell back
    /// to some default path would refuse or, worse, admit callers by a document nobody reviewed.
    pub fn policy_file(&self) -> Result<PathBuf, ConfigError> {
        self.required("POLICY_FILE").map(PathBuf::from)
    }

    /// `CALLER_HASH_KEY`: the HMAC key for caller ids in logs, when the policy asks for hashing.
    pub fn caller_hash_key(&self) -> Result<Option<SecretString>, ConfigError> {
        self.secret("CALLER_HASH_KEY", MIN_HASH_KEY_BYTES)
    }

    /// `METRICS_NAMESPACE`: a valid CloudWatch namespace, [`DEFAULT_METRICS_NAMESPACE`] when unset.
    pub fn metrics_namespace(&self) -> Result<String, ConfigError> {
        let ns = self.optional("METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.into());
        if ns.len() > 255 || ns.contains(':') || !ns.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(ConfigError::new("METRICS_NAMESPACE", "is not a valid CloudWatch namespace"));
        }
        Ok(ns)
    }

    /// `CONTEXT_KEY_PARAMETER`: the SSM parameter (name or ARN) of the context-MAC key set, checked against SSM's
    /// naming rules so a typo is an init error that says so rather than an access error from SSM. `None` when unset:
    /// in-process builds hand a key source over directly; where a function reads its keys from SSM it is required.
    pub fn context_key_parameter(&self) -> Result<Option<String>, ConfigError> {
        const VAR: &str = "CONTEXT_KEY_PARAMETER";
        const MAX_LEN: usize = 2048;
        let Some(name) = self.optional(VAR) else { return Ok(None) };
        // `:` for a parameter ARN (a parameter shared from another account is named by its ARN).
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b':');
        if name.len() > MAX_LEN || !name.bytes().all(allowed) {
            return Err(ConfigError::new(VAR, "is not an SSM parameter name or ARN (letters, digits, _ . - / :)"));
        }
        Ok(Some(name))
    }

    /// `CONTEXT_KEYS_TTL_SECONDS` (default 300, 10..=3600) and `CONTEXT_KEYS_MAX_STALE_SECONDS` (default 3600,
    /// 0..=86400): how both functions keep the context-MAC key set fresh. One reader, so the authorizer and the broker
    /// can never disagree on how long a retired key is still honoured.
    pub fn context_key_ring(&self) -> Result<crate::context::KeyRingConfig, ConfigError> {
        let defaults = crate::context::KeyRingConfig::default();
        Ok(crate::context::KeyRingConfig {
            ttl: self.seconds("CONTEXT_KEYS_TTL_SECONDS", defaults.ttl.as_secs(), 10..=3600)?,
            max_stale: self.seconds("CONTEXT_KEYS_MAX_STALE_SECONDS", defaults.max_stale.as_secs(), 0..=86_400)?,
            ..defaults
        })
    }

    /// `STACK_NAME`: the deployment's stack name, the value of the `Stack` dimension on every metric line
    /// ([`crate::telemetry::STACK_DIMENSION`]); [`DEFAULT_STACK_NAME`] when unset. At most
    /// [`MAX_STACK_NAME_LEN`] printable ASCII characters: a CloudWatch dimension value must not hold control
    /// characters, and an alarm has to be able to name it exactly.
    pub fn stack_name(&self) -> Result<String, ConfigError> {
        let name = self.optional("STACK_NAME").unwrap_or_else(|| DEFAULT_STACK_NAME.into());
        if name.len() > MAX_STACK_NAME_LEN {
            return Err(ConfigError::new("STACK_NAME", format!("must be at most {MAX_STACK_NAME_LEN} characters")));
        }
        if !name.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(ConfigError::new("STACK_NAME", "must be printable ASCII (no control characters)"));
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn empty_means_unset_and_values_are_trimmed() {
        let env = Env::from_pairs([("A", "  "), ("B", " 7 "), ("C", "")]);
        assert_eq!(env.optional("A"), None);
        assert_eq!(env.number("A", 3, 0..=10).unwrap(), 3);
        assert_eq!(env.number("B", 3, 0..=10).unwrap(), 7);
        assert_eq!(env.required("C").unwrap_err().var, "C");
        assert!(env.secret("C", 1).unwrap().is_none());
    }

    #[test]
    fn numbers_outside_the_range_or_unparsable_are_refused_without_the_value() {
        let env = Env::from_pairs([("N", "11"), ("M", "soon"), ("Z", "-1")]);
        for var in ["N", "M", "Z"] {
            let e = env.number(var, 1, 0..=10).unwrap_err();
            assert!(e.to_string().contains("between 0 and 10"), "{e}");
            assert!(!e.to_string().contains("soon"));
        }
        assert_eq!(env.seconds("N", 1, 0..=11).unwrap(), Duration::from_secs(11));
        assert_eq!(env.millis("N", 1, 0..=11).unwrap(), Duration::from_millis(11));
    }

    #[test]
    fn hash_key_has_a_floor_and_never_shows() {
        let short = Env::from_pairs([("CALLER_HASH_KEY", "fifteen-bytes!!")]);
        let e = short.caller_hash_key().unwrap_err();
        assert_eq!(e.var, "CALLER_HASH_KEY");
        assert!(!e.to_string().contains("fifteen"));
        let ok = Env::from_pairs([("CALLER_HASH_KEY", "sixteen-bytes!!!")]);
        let key = ok.caller_hash_key().unwrap().unwrap();
        assert_eq!(key.expose_secret(), "sixteen-bytes!!!");
        assert!(!format!("{key:?}").contains("sixteen"));
    }

    #[test]
    fn policy_file_is_required_and_namespace_is_checked() {
        assert_eq!(Env::from_pairs::<&str, &str>([]).policy_file().unwrap_err().var, "POLICY_FILE");
        assert_eq!(Env::from_pairs::<&str, &str>([]).metrics_namespace().unwrap(), DEFAULT_METRICS_NAMESPACE);
        let bad = Env::from_pairs([("METRICS_NAMESPACE", "a:b")]);
        assert_eq!(bad.metrics_namespace().unwrap_err().var, "METRICS_NAMESPACE");
    }

    #[test]
    fn stack_name_has_a_default_and_is_checked() {
        assert_eq!(Env::from_pairs::<&str, &str>([]).stack_name().unwrap(), DEFAULT_STACK_NAME);
        assert_eq!(Env::from_pairs([("STACK_NAME", "  ")]).stack_name().unwrap(), DEFAULT_STACK_NAME);
        assert_eq!(Env::from_pairs([("STACK_NAME", " prod-eu ")]).stack_name().unwrap(), "prod-eu");
        let longest = "s".repeat(MAX_STACK_NAME_LEN);
        assert_eq!(Env::from_pairs([("STACK_NAME", longest.as_str())]).stack_name().unwrap(), longest);
        let too_long = "s".repeat(MAX_STACK_NAME_LEN + 1);
        for bad in [too_long.as_str(), "prod\neu", "prod\u{7f}", "pr\u{e9}d", "a\tb"] {
            let e = Env::from_pairs([("STACK_NAME", bad)]).stack_name().unwrap_err();
            assert_eq!(e.var, "STACK_NAME", "{bad:?}");
            assert!(e.to_string().contains("STACK_NAME"), "{e}");
        }
    }
}
