//! The policy document: one YAML file, read by both functions, that says who the callers are, how each is
//! recognised, what it may ask for, and which partner JWT issuers are trusted.
//!
//! The document is bundled with each deployment (`POLICY_FILE`), not fetched from S3 or SSM at run time: a policy
//! change then goes through the same review, build and rollback as code, both functions of one deployment always
//! agree on it, and a cold start needs no network call that could fail open. Its SHA-256 is the policy version that
//! the authorizer hands to the broker and that every log line carries.
//!
//! Parsing is strict: unknown keys, duplicate callers, one identity mapped to two callers, default scopes outside
//! the allowed ones and similar mistakes stop the load with an error naming file, caller, field and reason.

mod raw;
mod validate;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::ids::{CallerId, ScopeSet};

pub use validate::PolicyError;

/// Longest accepted policy file. A policy is a few KiB; a larger file is a mistake, not a policy.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// A validated policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    /// First 16 hex digits of the SHA-256 of the document's bytes.
    pub version: String,
    /// Whether logs carry a keyed hash of the caller id instead of the id itself.
    pub hash_caller_ids: bool,
    /// The weakest client-certificate key accepted (`settings.min_rsa_key_bits`, `settings.min_ec_key_bits`).
    pub key_floor: KeyFloor,
    callers: Vec<Caller>,
    by_id: HashMap<CallerId, usize>,
    by_identity: HashMap<IdentityKey, usize>,
    issuers: Vec<JwtIssuer>,
}

/// One registered caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The name the caller goes by in logs, metrics, quota counters and the authorizer's context.
    pub id: CallerId,
    /// A disabled caller is recognised but refused (403), so an operator can switch it off without losing its
    /// identity mapping.
    pub enabled: bool,
    /// Every credential that proves this caller; any one of them is enough.
    pub identities: Vec<Identity>,
    /// Name of the Cognito app client whose credentials the broker uses; the SSM parameter is
    /// `{prefix}/{cognito_client}`.
    pub cognito_client: String,
    /// The scopes this caller may ask for; a request naming any other is refused.
    pub allowed_scopes: ScopeSet,
    /// The scopes granted when a request names none (empty: such a request is refused); within `allowed_scopes`.
    pub default_scopes: ScopeSet,
    /// Grant limits: a grant counts against every window at once and is refused if any is full. Empty only when
    /// the document says `quotas: unlimited` in so many words; an absent `quotas` is a load error.
    pub quotas: Vec<QuotaWindow>,
    /// Longest access-token lifetime this caller may receive. Cognito's own validity is set per app client; a
    /// longer token from upstream is refused (see the broker's docs).
    pub max_token_lifetime: Duration,
    /// Serve a still-fresh token from the broker's in-memory cache instead of calling Cognito again.
    pub token_reuse: bool,
    /// Share reused tokens with every instance of the broker through its fleet token cache (DynamoDB, sealed with
    /// KMS data keys), so the fleet asks Cognito once per token life rather than once per instance. Needs
    /// `token_reuse`: the in-memory cache stays in front.
    pub fleet_token_reuse: bool,
    /// Bind every token this caller gets to its client certificate (RFC 8705 §3): the token carries the
    /// certificate's `x5t#S256` thumbprint in `cnf`, and a resource server accepts it only over mutual TLS with that
    /// certificate. Only for callers whose every identity is a certificate identity.
    pub bind_token_to_certificate: bool,
    /// The API key value of the caller's usage plan, returned as `usageIdentifierKey`.
    pub usage_plan_key: Option<UsagePlanKey>,
}

/// An API Gateway API key value. It only meters usage, but it is still a credential-like string: `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UsagePlanKey(String);

impl UsagePlanKey {
    /// Wraps a validated key value.
    pub(crate) fn new(v: String) -> Self {
        UsagePlanKey(v)
    }
    /// The value, for the authorizer's `usageIdentifierKey` only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for UsagePlanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsagePlanKey(<redacted>)")
    }
}

/// How a caller is recognised. Never by serial number alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Exact URI SAN (e.g. a SPIFFE id); the certificate must carry exactly one URI SAN.
    SanUri(String),
    /// Exact DNS SAN (case-insensitive, stored lowercase).
    SanDns(String),
    /// Subject CN together with the issuer's CN, for PKIs without SANs.
    SubjectCn {
        /// The certificate's subject CN, exactly.
        cn: String,
        /// The CN of the CA certificate that issued it in the verified chain, so a same-named certificate from
        /// another CA does not match.
        issuer_cn: String,
        /// SHA-256 of that CA certificate's SubjectPublicKeyInfo, lowercase hex: binds the issuer by key, for
        /// truststores where two CAs share a CN.
        issuer_spki_sha256: Option<String>,
    },
    /// SHA-256 of the whole DER certificate, lowercase hex.
    CertSha256(String),
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex: survives re-issuance with the same key.
    SpkiSha256(String),
    /// A partner JWT: `iss` equals `issuer` and the issuer's subject claim equals `subject`.
    Jwt {
        /// The issuer, as listed under the policy's `issuers`.
        issuer: String,
        /// The partner's value of the issuer's subject claim.
        subject: String,
    },
}

/// The lookup key for an identity; two callers may not share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentityKey {
    /// A URI SAN, exactly as written.
    SanUri(String),
    /// A DNS SAN, lowercase.
    SanDns(String),
    /// A subject CN under a given issuer CN.
    SubjectCn {
        /// The certificate's subject CN.
        cn: String,
        /// The CN of the certificate's issuer.
        issuer_cn: String,
    },
    /// A whole-certificate SHA-256, lowercase hex.
    CertSha256(String),
    /// A public-key SHA-256, lowercase hex.
    SpkiSha256(String),
    /// A partner's subject under one issuer.
    Jwt {
        /// The token's `iss`.
        issuer: String,
        /// The value of the issuer's subject claim.
        subject: String,
    },
}

impl Identity {
    /// The key under which this identity is indexed.
    pub fn key(&self) -> IdentityKey {
        match self {
            Identity::SanUri(v) => IdentityKey::SanUri(v.clone()),
            Identity::SanDns(v) => IdentityKey::SanDns(v.to_ascii_lowercase()),
            Identity::SubjectCn { cn, issuer_cn, .. } => {
                IdentityKey::SubjectCn { cn: cn.clone(), issuer_cn: issuer_cn.clone() }
            }
            Identity::CertSha256(v) => IdentityKey::CertSha256(v.to_ascii_lowercase()),
            Identity::SpkiSha256(v) => IdentityKey::SpkiSha256(v.to_ascii_lowercase()),
            Identity::Jwt { issuer, subject } => IdentityKey::Jwt { issuer: issuer.clone(), subject: subject.clone() },
        }
    }
}

/// One quota window: at most `limit` grants per fixed window of `length`, aligned to the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaWindow {
    /// Stable name used in the counter key and in logs (`minute`, `hour`, `day` or `<n>s`).
    pub name: String,
    /// How long one window lasts; the count starts again at each multiple of it since the epoch.
    pub length: Duration,
    /// Grants allowed in one window; the next request is refused with 429 until the window ends.
    pub limit: u64,
}

/// A trusted partner JWT issuer.
#[derive(Debug, Clone)]
pub struct JwtIssuer {
    /// The `iss` value a token must carry, compared exactly.
    pub issuer: String,
    /// Where the issuer's signing keys are fetched; https, or http on loopback for development.
    pub jwks_url: String,
    /// A token's `aud` must name at least one of these.
    pub audiences: Vec<String>,
    /// Only asymmetric algorithms are accepted at load.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Oldest accepted token, counted from its `iat`, whatever its `exp` says.
    pub max_token_age: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Claim whose value identifies the partner (default `sub`).
    pub subject_claim: String,
    /// Claim that must name one of `audiences` (default `aud`). Amazon Cognito access tokens carry no `aud`; their
    /// `client_id` plays that part, so a Cognito partner is registered with `audience_claim: client_id`.
    pub audience_claim: String,
    /// Claims that must be present, beyond the ones always required (`iss`, `exp`, `iat`, the audience claim and
    /// the subject claim), for operators who want, say, `nbf` or `jti` on every token.
    pub required_claims: Vec<String>,
}

/// The weakest leaf key a client certificate may have. Below it the certificate is an unusable credential (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFloor {
    /// Smallest RSA modulus, in bits (at least 2048).
    pub min_rsa_bits: u32,
    /// Smallest elliptic-curve size, in bits: 256 (P-256; Ed25519 counts as 256), 384 or 521.
    pub min_ec_bits: u32,
}

impl KeyFloor {
    /// RSA-2048 and P-256: the floor of current CA/Browser Forum and NIST guidance. A policy can only raise it.
    pub const DEFAULT: KeyFloor = KeyFloor { min_rsa_bits: 2048, min_ec_bits: 256 };
}

impl Default for KeyFloor {
    fn default() -> Self {
        KeyFloor::DEFAULT
    }
}

/// The asymmetric JWS algorithms a partner issuer may be configured with. HMAC and `none` are not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// Parses the JOSE name; anything symmetric or unknown is refused.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| PolicyError::Io { file: file.clone(), reason: e.to_string() })?;
        Policy::from_bytes(&file, &bytes)
    }

    /// Parses and validates a policy document; `file` names it in errors.
    pub fn from_bytes(file: &str, bytes: &[u8]) -> Result<Policy, PolicyError> {
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::Io {
                file: file.to_owned(),
                reason: format!("larger than {MAX_POLICY_BYTES} bytes"),
            });
        }
        let raw: raw::RawPolicy = serde_norway::from_slice(bytes)
            .map_err(|e| PolicyError::Syntax { file: file.to_owned(), reason: e.to_string() })?;
        let digest = Sha256::digest(bytes);
        let version = hex::encode(&digest[..8]);
        validate::build(file, raw, version)
    }

    /// Every caller, in document order.
    pub fn callers(&self) -> &[Caller] {
        &self.callers
    }

    /// A caller by id.
    pub fn caller(&self, id: &CallerId) -> Option<&Caller> {
        self.by_id.get(id).map(|&i| &self.callers[i])
    }

    /// The caller that owns an identity, if any.
    pub fn caller_for(&self, key: &IdentityKey) -> Option<&Caller> {
        self.by_identity.get(key).map(|&i| &self.callers[i])
    }

    /// Every configured JWT issuer.
    pub fn issuers(&self) -> &[JwtIssuer] {
        &self.issuers
    }

    /// The issuer whose `issuer` string equals `iss` exactly.
    pub fn issuer(&self, iss: &str) -> Option<&JwtIssuer> {
        self.issuers.iter().find(|i| i.issuer == iss)
    }

    /// Whether any caller is recognised by a certificate rule.
    pub fn has_certificate_callers(&self) -> bool {
        self.callers.iter().flat_map(|c| &c.identities).any(|i| !matches!(i, Identity::Jwt { .. }))
    }
}

#[cfg(test)]
mod tests;
