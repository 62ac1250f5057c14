//! The document exactly as written, before validation. Every struct denies unknown keys so a misspelt field is an
//! error at load rather than a silently ignored rule.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub version: u32,
    #[serde(default)]
    pub settings: RawSettings,
    #[serde(default)]
    pub callers: Vec<RawCaller>,
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    #[serde(default)]
    pub hash_caller_ids: bool,
    #[serde(default)]
    pub min_rsa_key_bits: Option<u32>,
    #[serde(default)]
    pub min_ec_key_bits: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCaller {
    pub id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub identities: Vec<RawIdentity>,
    pub cognito_client: String,
    pub allowed_scopes: Vec<String>,
    #[serde(default)]
    pub default_scopes: Vec<String>,
    /// Required: a list of windows, or the word `unlimited`. Absent is an error, so a forgotten quota cannot
    /// silently mean "no limit".
    #[serde(default)]
    pub quotas: Option<RawQuotas>,
    pub max_token_lifetime_seconds: u64,
    #[serde(default)]
    pub token_reuse: bool,
    #[serde(default)]
    pub fleet_token_reuse: bool,
    #[serde(default)]
    pub bind_token_to_certificate: bool,
    #[serde(default)]
    pub usage_plan_key: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub(super) enum RawIdentity {
    SanUri {
        value: String,
    },
    SanDns {
        value: String,
    },
    SubjectCn {
        cn: String,
        issuer_cn: String,
        #[serde(default)]
        issuer_spki_sha256: Option<String>,
    },
    CertSha256 {
        value: String,
    },
    SpkiSha256 {
        value: String,
    },
    Jwt {
        issuer: String,
        subject: String,
    },
}

/// `quotas:` is either a list of windows or the single word `unlimited`. Kept as a YAML value here and read in
/// validation, so a typo inside a window still gets the parser's own message (an untagged enum would lose it).
pub(super) type RawQuotas = serde_norway::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuota {
    /// `second`, `minute`, `hour`, `day`, or a whole number of seconds such as `900s`.
    pub per: String,
    pub limit: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    pub issuer: String,
    pub jwks_url: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub max_token_age_seconds: u64,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    #[serde(default)]
    pub subject_claim: Option<String>,
    #[serde(default)]
    pub audience_claim: Option<String>,
    #[serde(default)]
    pub required_claims: Vec<String>,
}

fn default_leeway() -> u64 {
    30
}
