//! The namespace of the claims the trigger writes. Cognito lets a pre-token-generation trigger add or override
//! almost any claim of the access token; a resource server that trusts `sub`, `client_id` or `scope` must never see
//! one of them replaced with caller-context data. Every claim the trigger writes (apart from RFC 8705's `cnf`, which
//! it writes on purpose) is therefore `{prefix}{name}`, and a prefix is only accepted when none of the names it
//! produces is a standard or Cognito-reserved claim.

use std::fmt;
use std::str::FromStr;

use tb_shared::context::{KEY_AUTH_METHOD, KEY_CALLER_ID, KEY_CREDENTIAL_FINGERPRINT, KEY_POLICY_VERSION};

/// The prefix used when `CLAIM_PREFIX` is not set.
pub const DEFAULT_PREFIX: &str = "tb:";
/// Longest prefix: claim names stay short, and a resource server can name them in its configuration.
pub const MAX_PREFIX_LEN: usize = 32;

/// The caller-context keys the trigger writes under the prefix, in the order of the contract.
pub const CLAIM_SUFFIXES: [&str; 4] = [KEY_CALLER_ID, KEY_AUTH_METHOD, KEY_CREDENTIAL_FINGERPRINT, KEY_POLICY_VERSION];

/// Claims of RFC 7519, OpenID Connect, RFC 8705 and Cognito's access and ID tokens that a trigger must never write
/// through a prefix (Cognito refuses some of them; the others a resource server relies on).
pub const RESERVED_CLAIMS: [&str; 22] = [
    "acr",
    "amr",
    "aud",
    "at_hash",
    "auth_time",
    "azp",
    "client_id",
    "cnf",
    "event_id",
    "exp",
    "iat",
    "identities",
    "iss",
    "jti",
    "nbf",
    "nonce",
    "origin_jti",
    "scope",
    "sub",
    "token_use",
    "username",
    "version",
];

/// Namespaces owned by Cognito or AWS: any claim name starting with one of these (case-insensitively) is theirs.
const RESERVED_NAMESPACES: [&str; 3] = ["cognito", "aws", "amzn"];

/// Whether `name` is a claim the trigger must never write through its prefix: a [`RESERVED_CLAIMS`] entry or a name
/// in a Cognito or AWS namespace (`cognito:groups`, `cognito:username`, ...).
pub fn is_reserved_claim(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_CLAIMS.contains(&lower.as_str()) || RESERVED_NAMESPACES.iter().any(|ns| lower.starts_with(ns))
}

/// Why a prefix was refused. Names the rule; the prefix itself is configuration, not a secret, but is not repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Empty: the claims would be `callerId` and friends, in nobody's namespace.
    #[error("the claim prefix is empty")]
    Empty,
    /// Longer than [`MAX_PREFIX_LEN`].
    #[error("the claim prefix is longer than {MAX_PREFIX_LEN} characters")]
    TooLong,
    /// A character outside `A-Z a-z 0-9 _ - . :`, or not starting with a letter.
    #[error("the claim prefix must start with a letter and hold only A-Z a-z 0-9 _ - . :")]
    BadChar,
    /// Not ending in a separator (`:` `_` `-` `.`), so the namespace would run into the claim name.
    #[error("the claim prefix must end with one of : _ - .")]
    NoSeparator,
    /// A Cognito or AWS namespace, or a prefix that makes a reserved claim name.
    #[error("the claim prefix would write into a standard or Cognito-reserved claim or namespace")]
    Reserved,
}

/// A checked claim prefix: every `{prefix}{suffix}` it produces is outside the standard and Cognito-reserved claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPrefix(String);

impl ClaimPrefix {
    /// Checks `s` against the rules above.
    pub fn parse(s: &str) -> Result<ClaimPrefix, PrefixError> {
        if s.is_empty() {
            return Err(PrefixError::Empty);
        }
        if s.len() > MAX_PREFIX_LEN {
            return Err(PrefixError::TooLong);
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
        if !s.as_bytes()[0].is_ascii_alphabetic() || !s.bytes().all(allowed) {
            return Err(PrefixError::BadChar);
        }
        if !s.ends_with([':', '_', '-', '.']) {
            return Err(PrefixError::NoSeparator);
        }
        let prefix = ClaimPrefix(s.to_owned());
        if is_reserved_claim(s) || CLAIM_SUFFIXES.iter().any(|suffix| is_reserved_claim(&prefix.claim(suffix))) {
            return Err(PrefixError::Reserved);
        }
        Ok(prefix)
    }

    /// The prefix as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The claim name of `suffix` under this prefix.
    pub fn claim(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.0)
    }
}

impl Default for ClaimPrefix {
    fn default() -> Self {
        ClaimPrefix(DEFAULT_PREFIX.to_owned())
    }
}

impl FromStr for ClaimPrefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        ClaimPrefix::parse(s)
    }
}

impl fmt::Display for ClaimPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_is_tb_and_passes_its_own_rules() {
        assert_eq!(ClaimPrefix::default().as_str(), "tb:");
        assert_eq!(ClaimPrefix::parse(DEFAULT_PREFIX), Ok(ClaimPrefix::default()));
        assert_eq!(ClaimPrefix::default().claim("callerId"), "tb:callerId");
    }

    #[test]
    fn good_prefixes_are_accepted() {
        for p in ["tb:", "broker_", "x-", "acme.tb:", "T9:", &format!("{}:", "a".repeat(MAX_PREFIX_LEN - 1))] {
            assert!(ClaimPrefix::parse(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn bad_prefixes_are_refused_by_rule() {
        let cases: [(&str, PrefixError); 16] = [
            ("", PrefixError::Empty),
            (&"a".repeat(MAX_PREFIX_LEN + 1), PrefixError::TooLong),
            ("tb", PrefixError::NoSeparator),
            ("tb:x", PrefixError::NoSeparator),
            (":", PrefixError::BadChar),
            ("1tb:", PrefixError::BadChar),
            ("_tb:", PrefixError::BadChar),
            ("tb/", PrefixError::BadChar),
            ("t b:", PrefixError::BadChar),
            ("tb\u{e9}:", PrefixError::BadChar),
            ("cognito:", PrefixError::Reserved),
            ("Cognito:", PrefixError::Reserved),
            ("cognito_x:", PrefixError::Reserved),
            ("aws:", PrefixError::Reserved),
            ("AWS.", PrefixError::Reserved),
            ("amzn-", PrefixError::Reserved),
        ];
        for (p, want) in cases {
            assert_eq!(ClaimPrefix::parse(p), Err(want), "{p:?}");
        }
        // The message names the rule, not the prefix.
        let e = ClaimPrefix::parse("secretish_value/").unwrap_err().to_string();
        assert!(!e.contains("secretish"), "{e}");
    }

    #[test]
    fn reserved_claims_are_recognised() {
        for c in RESERVED_CLAIMS {
            assert!(is_reserved_claim(c), "{c}");
            assert!(is_reserved_claim(&c.to_ascii_uppercase()), "{c}");
        }
        for c in ["cognito:groups", "cognito:username", "cognito:roles", "aws:x"] {
            assert!(is_reserved_claim(c), "{c}");
        }
        for c in ["tb:callerId", "callerId", "subject", "tb:sub"] {
            assert!(!is_reserved_claim(c), "{c}");
        }
    }

    proptest! {
        /// Whatever prefix is configured, either it is refused or none of the claim names it makes is reserved.
        #[test]
        fn an_accepted_prefix_never_names_a_reserved_claim(p in "[a-zA-Z0-9_.:\\-]{0,40}") {
            if let Ok(prefix) = ClaimPrefix::parse(&p) {
                for suffix in CLAIM_SUFFIXES {
                    prop_assert!(!is_reserved_claim(&prefix.claim(suffix)));
                }
                prop_assert!(!is_reserved_claim(prefix.as_str()));
            }
        }
    }
}
