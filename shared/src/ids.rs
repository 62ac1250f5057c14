//! Newtypes for the identifiers that cross trust boundaries. Parsed once at the edge with length and character
//! limits, so nothing downstream handles an unchecked string.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest caller id accepted. Caller ids appear in logs, metrics dimensions and DynamoDB keys.
pub const MAX_CALLER_ID_LEN: usize = 64;
/// Longest single scope accepted (Cognito allows 256 for a resource server id + scope name).
pub const MAX_SCOPE_LEN: usize = 256;
/// Most scopes one request may name; Cognito's own limit per app client is 100.
pub const MAX_SCOPES: usize = 50;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier was empty.
    #[error("must not be empty")]
    Empty,
    /// The identifier exceeded the limit given, in characters.
    #[error("longer than {0} characters")]
    TooLong(usize),
    /// The identifier contained a character outside the allowed set, which is named.
    #[error("contains a character outside {0}")]
    BadChar(&'static str),
    /// A scope list named more scopes than the limit given.
    #[error("more than {0} scopes")]
    TooMany(usize),
    /// A scope list had a leading, trailing or doubled space.
    #[error("scope list is not single-space separated")]
    BadSeparator,
}

/// A registered caller's id: `[A-Za-z0-9._-]{1,64}`. Safe to put in logs, metric dimensions and table keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CallerId(String);

impl CallerId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for CallerId {
    type Error = IdError;
    fn try_from(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_CALLER_ID_LEN {
            return Err(IdError::TooLong(MAX_CALLER_ID_LEN));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return Err(IdError::BadChar("A-Z a-z 0-9 . _ -"));
        }
        Ok(CallerId(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for CallerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CallerId::try_from(s.as_str()).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallerId({})", self.0)
    }
}

/// One OAuth scope: RFC 6749 `scope-token` (printable ASCII except space, `"` and `\`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// The scope as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Scope {
    type Error = IdError;
    fn try_from(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_SCOPE_LEN {
            return Err(IdError::TooLong(MAX_SCOPE_LEN));
        }
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if !s.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)) {
            return Err(IdError::BadChar("RFC 6749 scope-token characters"));
        }
        Ok(Scope(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::try_from(s.as_str()).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({})", self.0)
    }
}

/// A set of scopes, ordered so that equal sets compare, hash and print identically (the token-reuse cache key
/// and the upstream `scope` parameter depend on that).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Parses an RFC 6749 `scope` parameter: scope-tokens separated by single spaces. Duplicates collapse.
    pub fn parse_param(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let mut set = BTreeSet::new();
        for (i, part) in s.split(' ').enumerate() {
            if i >= MAX_SCOPES {
                return Err(IdError::TooMany(MAX_SCOPES));
            }
            if part.is_empty() {
                return Err(IdError::BadSeparator);
            }
            set.insert(Scope::try_from(part)?);
        }
        Ok(ScopeSet(set))
    }

    /// Builds a set from already-parsed scopes.
    pub fn from_scopes<I: IntoIterator<Item = Scope>>(it: I) -> Self {
        ScopeSet(it.into_iter().collect())
    }

    /// True when every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    /// Scopes of `self` not in `other`.
    pub fn difference<'a>(&'a self, other: &'a ScopeSet) -> impl Iterator<Item = &'a Scope> + 'a {
        self.0.difference(&other.0)
    }

    /// Iterates in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Number of scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The RFC 6749 form: sorted, single-space separated.
    pub fn to_param(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(s.as_str());
        }
        out
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({})", self.to_param())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn caller_id_limits() {
        assert!(CallerId::try_from("order-processing").is_ok());
        assert_eq!(CallerId::try_from(""), Err(IdError::Empty));
        assert!(CallerId::try_from("a b").is_err());
        assert!(CallerId::try_from("x".repeat(65).as_str()).is_err());
        assert!(CallerId::try_from("ünïcode").is_err());
    }

    #[test]
    fn scope_param_grammar() {
        let s = ScopeSet::parse_param("customer-api/write customer-api/read").unwrap();
        assert_eq!(s.to_param(), "customer-api/read customer-api/write");
        assert!(ScopeSet::parse_param("a  b").is_err());
        assert!(ScopeSet::parse_param(" a").is_err());
        assert!(ScopeSet::parse_param("a\tb").is_err());
        assert!(ScopeSet::parse_param("a\"b").is_err());
        assert!(ScopeSet::parse_param("").is_err());
        let many = vec!["s"; 51].join(" ");
        assert!(ScopeSet::parse_param(&many).is_err());
    }

    proptest! {
        #[test]
        fn scope_parse_never_panics_and_round_trips(s in "\\PC{0,300}") {
            if let Ok(set) = ScopeSet::parse_param(&s) {
                let again = ScopeSet::parse_param(&set.to_param()).unwrap();
                prop_assert_eq!(set, again);
            }
        }

        #[test]
        fn caller_id_never_panics(s in "\\PC{0,100}") {
            let _ = CallerId::try_from(s.as_str());
        }
    }
}
